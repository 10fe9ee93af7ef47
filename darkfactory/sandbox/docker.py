"""``docker``: one warm container per sandbox; every command is an ``exec`` in it.

The container (Docker SDK, a real engine) is created when the sandbox is and removed by
``close()``. What a command sees: the image's file system read-only; a tmpfs at ``/tmp``
(emptied before every command, so no command sees what the one before left there); the
workspace read-write at ``/workspace`` (its ``.git`` read-only, if it is a directory when
the sandbox is made) and each ``Mount`` at its target; nothing else of the host. No network
(``network_mode=none``: only a loopback of its own), every capability dropped,
``no-new-privileges``, a non-root user, no host environment variable: a command gets
exactly ``_proc.minimal_env`` (plus ``SandboxSpec.pythonpath`` on ``PYTHONPATH``).

Limits: the container's memory cgroup (``limits.memory_mb``, swap the same, so none),
``limits.pids`` processes (plus the few of the sandbox itself), ``limits.cpus`` CPUs (CFS
quota); per command, RLIMIT_CPU, RLIMIT_FSIZE and no core dumps, the wall-clock timeout,
the output cap and the disk quota (``limits.disk_mb``: the workspace and the read-write
mounts, measured from the host while the command runs), enforced here. After every
command the host scrubs those places (``_scrub.py``: setuid and setgid bits stripped,
device nodes, FIFOs and sockets removed).

Who commands run as: the user running Dark Factory (its uid and gid, so the files commands
write are that user's). When that is root, never root: the workspace's owner if that is not
root. A workspace root owns is refused, unless ``SandboxSpec.hand_over`` says it is a
directory Dark Factory made for a run (``runner.open_run``): then commands run as
``nobody`` (uid and gid 65534, a user that owns nothing on the host, rather than 1000,
often a real login), and since root creates files in the workspace between commands (the
file tools), before every command the workspace's content (except ``.git``) is handed to
that user (chowned, without following symlinks, only what is not theirs yet); the
workspace directory itself keeps its owner (git refuses a repository owned by someone
else) and is made group-writable for the user's group; read-write mounts are handed over
the same way when the container is made. Root on the host keeps full access to all of it,
and git in the workspace keeps working. Without ``hand_over`` no file ever changes owner:
handing over a directory that is not a run's (``sandbox exec --workspace /tmp``) would
give every file under it to nobody. (A run begun on docker and resumed on bwrap, whose
commands run as root without privileges, finds the files docker's commands wrote owned by
nobody.)

Every command runs under a small shell script (``_SHIM``, a shell starts in a millisecond)
that sends SIGKILL to every other process of the sandbox user (``kill(-1)``: anything an
earlier command left), empties ``/tmp``, sets the rlimits, starts the command with exactly
the minimal environment (``env -i``) and ``oom_score_adj`` 1000 (so the kernel's OOM killer
picks the command, not the script), waits for it, and then again kills every other process
of the user: nothing a command starts outlives it, not even a ``setsid`` daemon. A timeout
or too much output cannot be killed through the exec API, and another exec may find no
process left to start, so the container's pid 1 does the same ``kill(-1)`` when the engine
sends it SIGUSR1. If the memory cgroup's OOM-kill counter rose during a failed command, the
script adds a last line to stderr (``darkfactory-sandbox: memory limit ...``) and the
result says ``killed="memory"``. Commands of one sandbox run one at a time.

A bind mount holds the directory it was made with. When one of the mounted directories is
replaced on the host (``rmtree`` then ``copytree``, as freezing the acceptance tests does),
or a ``.git`` appears in the workspace (to be mounted read-only), the next command first
gets a fresh container (a quarter of a second); ``/tmp`` does not survive it anyway.

The container never outlives its owner: it is labelled with the owner's host, pid and
start time, its pid 1 waits on a stdin the owner keeps attached (``StdinOnce``) and exits
when that connection closes, which the kernel does when the owner dies however it dies
(even SIGKILL), and ``auto_remove`` then removes it. ``close()`` is also called at exit,
and on the first sandbox of a process the containers whose owner is gone are removed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import selectors
import signal
import socket
import stat
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from darkfactory.errors import InputError, SandboxUnavailable
from darkfactory.sandbox._proc import classify, minimal_env
from darkfactory.sandbox._scrub import Guard, Place
from darkfactory.sandbox.base import ExecResult, Killed, Mount, SandboxSpec, mounted_path
from darkfactory.sandbox.image import (
    DEFAULT_IMAGE,
    SANDBOX_UID,
    _short,
    docker_client,
    image_problem,
)

WORKDIR = "/workspace"
PYTHON = "python3"
PATH = "/usr/local/bin:/usr/bin:/bin"
READ_ONLY_IN_WORKSPACE = (".git",)
#: Targets a mount may not replace or sit under.
RESERVED = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/proc", "/dev", "/sys")
LABEL = "darkfactory.sandbox"
OWNER_LABEL = "darkfactory.owner"
#: Processes of the sandbox itself (pid 1, the shim, its rm) on top of ``limits.pids``.
OWN_PIDS = 4
#: How long to keep reading after a kill, for the last bytes.
DRAIN_GRACE_S = 2.0
_CHUNK = 65536
_MARKER = re.compile(r"(?:^|\n)darkfactory-sandbox: memory limit [^\n]*\n?\Z")

#: pid 1 of every container: ignores SIGINT (init gets only the signals it handles), lets
#: the kernel reap orphans (SIGCHLD ignored), on SIGUSR1 sends SIGKILL to every other
#: process of its user (``_kill_all``), and ends when the owner's stdin closes.
_INIT = """\
import os, signal, sys
def kill_all(*_):
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, kill_all)
while sys.stdin.buffer.read(65536):
    pass
"""

#: The first program of every command (see the module doc): a POSIX shell script, since a
#: shell starts in a millisecond and Python in tens of them. Only builtins run, apart from
#: ``rm`` (when /tmp is not empty) and ``env -i``, which starts the command with exactly
#: the environment given. argv: MEMORY_MB CPU_S FSIZE_BLOCKS NAME=VALUE... COMMAND...
_SHIM = r"""
mem=$1 cpu=$2 fsize=$3
shift 3
kill -9 -1 2>/dev/null  # nothing an earlier command left may run alongside this one
clean() {
    set --
    for p in /tmp/* /tmp/.[!.]* /tmp/..?*; do
        if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "$p"; fi
    done
    if [ $# -gt 0 ]; then rm -rf -- "$@"; fi
}
oom() {
    OOM=-1
    for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
        [ -r "$f" ] || continue
        while read -r k v; do [ "$k" = oom_kill ] && OOM=$v; done < "$f"
        return
    done
}
clean
oom
before=$OOM
umask 022
ulimit -c 0
ulimit -S -t "$cpu"
ulimit -H -t $((cpu + 1))
ulimit -f "$fsize"
(echo 1000 > /proc/self/oom_score_adj; exec env -i "$@")
status=$?
kill -9 -1 2>/dev/null  # whatever the command left running, wherever it went
if [ "$status" -ne 0 ]; then
    oom
    if [ "$before" -ge 0 ] && [ "$OOM" -gt "$before" ]; then
        printf '\ndarkfactory-sandbox: memory limit (%s MB) reached: %s\n' "$mem" \
            "the kernel's OOM killer ended a process of the command" >&2
    fi
fi
exit "$status"
"""

_live: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()
_stale_done = False


@atexit.register
def _close_all() -> None:
    for sandbox in list(_live):
        with contextlib.suppress(Exception):  # at exit: never mask the real exit status
            sandbox.close()


def docker_problem(image: str | None = None) -> str | None:
    """Why the docker backend cannot run here with ``image`` (None: it can)."""
    image = image or DEFAULT_IMAGE
    try:
        client = docker_client()
        return image_problem(client, image)
    except SandboxUnavailable as exc:
        return f"{exc.message}; {exc.hint}" if exc.hint else exc.message


class DockerSandbox:
    """Runs every command as an ``exec`` in one container (see the module doc)."""

    backend = "docker"
    workdir = WORKDIR
    python = PYTHON

    def __init__(self, spec: SandboxSpec, *, image: str | None = None) -> None:
        self.workspace = Path(os.path.realpath(spec.workspace))
        if not self.workspace.is_dir():
            raise InputError(f"sandbox workspace is not a directory: {spec.workspace}")
        self.spec = spec
        self.limits = spec.limits
        self.image = image or spec.image or DEFAULT_IMAGE
        #: (uid, gid) commands run as (see the module doc).
        self.run_as = (os.getuid(), os.getgid())
        #: Whether files are handed to ``run_as`` (chown): only as root, only when asked.
        self.hand_over = False
        workspace_owner = os.stat(self.workspace)
        if os.geteuid() == 0:
            if workspace_owner.st_uid != 0:
                self.run_as = (workspace_owner.st_uid, workspace_owner.st_gid)
            else:
                self.run_as = (SANDBOX_UID, SANDBOX_UID)
            self.hand_over = spec.hand_over
        self.mounts = [self._checked(m) for m in spec.mounts]
        for target in spec.pythonpath:
            self.path_of(target)  # a KeyError names a target that is not mounted
        self.client = docker_client()
        why = image_problem(self.client, self.image)
        if why is not None:
            raise SandboxUnavailable(f"docker backend: {why}", key="sandbox.image")
        if os.geteuid() == 0 and workspace_owner.st_uid == 0 and not self.hand_over:
            raise SandboxUnavailable(
                f"docker backend: the workspace {self.workspace} belongs to root, and the "
                "docker backend never runs commands as root; it gives files to its "
                "unprivileged user (chown) only in the directories of a Dark Factory run",
                hint="give the workspace to a user who is not root (chown -R USER: "
                f"{self.workspace}), or use the bwrap backend",
            )
        _remove_stale(self.client)
        self._lock = threading.Lock()
        self.container_id: str | None = None
        self._stdin: socket.socket | None = None
        self._attached: Any = None
        self._start()
        _live.add(self)

    # -- the Sandbox protocol ---------------------------------------------------------------
    def path_of(self, target: str) -> str:
        return mounted_path(self.mounts, target)

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        if not argv:
            raise ValueError("argv is empty")
        timeout = self.limits.timeout_s if timeout is None else timeout
        with self._lock:
            if self.container_id is None:
                raise RuntimeError("the sandbox is closed")
            if self._layout() != self._mounted:
                # A bind mount holds the directory it was made with: one that was replaced
                # since (e.g. rmtree and copytree) needs a new container, and so does a
                # .git that appeared (to be mounted read-only).
                self._restart()
            if self.hand_over:
                self._hand_over(self.workspace, skip=READ_ONLY_IN_WORKSPACE)
            try:
                exec_id = self._exec_create(argv, env, stdin is not None)
            except _ContainerGone:
                self._restart()  # e.g. the kernel killed its pid 1: a fresh container
                exec_id = self._exec_create(argv, env, stdin is not None)
            guard = Guard(self._places(), self.limits.disk_mb)  # the size before it starts
            start = time.monotonic()
            return guard.finish(self._exec(exec_id, start, timeout, stdin, guard))

    def close(self) -> None:
        with self._lock:
            cid, self.container_id = self.container_id, None
            if cid is not None:
                _remove(self.client, cid)
            if self._stdin is not None:
                with contextlib.suppress(OSError):
                    self._stdin.close()
                self._stdin = None
        _live.discard(self)

    # -- the container ------------------------------------------------------------------------
    def _layout(self) -> tuple[tuple[int, int] | None, ...]:
        """(device, inode) of the directories the container mounts (None: not a directory)."""

        def ident(path: Path) -> tuple[int, int] | None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return None
            return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None

        paths = (self.workspace, self.workspace / ".git", *(m.source for m in self.mounts))
        return tuple(ident(p) for p in paths)

    def _places(self) -> list[Place]:
        """What commands can write: the workspace but the ``.git`` mounted read-only, and
        the read-write mounts."""
        git = self._mounted[1]  # (_layout: the workspace, its .git, the mounts' sources)
        read_only = ((".git", git),) if git is not None else ()
        places = [Place(self.workspace, "", read_only)]
        return places + [Place(m.source, m.target) for m in self.mounts if not m.read_only]

    def _restart(self) -> None:
        """A fresh container in place of the current one (which may be gone already)."""
        cid, self.container_id = self.container_id, None
        if cid is not None:
            _remove(self.client, cid)
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.close()
            self._stdin = None
        self._start()

    def _start(self) -> None:
        """Create and start the container, holding its stdin (the owner's dead-man switch)."""
        import docker

        self._mounted = self._layout()
        api = self.client.api
        if self.hand_over:
            for m in self.mounts:
                if not m.read_only:
                    self._hand_over(m.source)
        limits = self.limits
        memory = f"{limits.memory_mb}m"
        host_config = api.create_host_config(
            auto_remove=True,
            network_mode="none",
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids + OWN_PIDS,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.memory_mb}m,mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ipc_mode="private",
            mounts=self._mounts(),
        )
        uid, gid = self.run_as
        name = f"darkfactory-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            created = api.create_container(
                self.image,
                [PYTHON, "-I", "-S", "-c", _INIT],
                name=name,
                user=f"{uid}:{gid}",
                working_dir=WORKDIR,
                hostname="sandbox",
                environment={"PATH": PATH},
                labels={
                    LABEL: "1",
                    OWNER_LABEL: json.dumps(_owner()),
                    "darkfactory.workspace.paths": str(self.workspace),
                },
                stdin_open=True,
                detach=False,  # only what makes StdinOnce true: nothing is attached but stdin
                host_config=host_config,
            )
            cid = created["Id"]
            sock = api.attach_socket(cid, params={"stdin": 1, "stream": 1})
            self._attached = sock  # (the HTTP response behind it stays alive with it)
            self._stdin = getattr(sock, "_sock", sock)
            api.start(cid)
        except docker.errors.APIError as exc:
            raise SandboxUnavailable(
                f"docker backend: cannot start a container of {self.image}: {_short(exc)}"
            ) from exc
        self.container_id = cid
        state = api.inspect_container(cid)["State"]
        if not state.get("Running"):
            raise SandboxUnavailable(
                f"docker backend: the container of {self.image} stopped at once "
                f"(exit code {state.get('ExitCode')}); does the image have {PYTHON}?"
            )

    def _mounts(self) -> list[Any]:
        from docker.types import Mount as DockerMount

        mounts = [DockerMount(WORKDIR, str(self.workspace), type="bind", read_only=False)]
        for name in READ_ONLY_IN_WORKSPACE:
            # Never a symlink: a command could plant ``.git -> /etc`` for the next sandbox.
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(os.lstat(self.workspace / name).st_mode):
                    source = str(self.workspace / name)
                    mounts.append(
                        DockerMount(f"{WORKDIR}/{name}", source, type="bind", read_only=True)
                    )
        for m in self.mounts:
            mounts.append(DockerMount(m.target, str(m.source), type="bind", read_only=m.read_only))
        return mounts

    def _checked(self, mount: Mount) -> Mount:
        target = os.path.normpath(mount.target)
        if not target.startswith("/") or target == "/":
            raise ValueError(f"mount target must be an absolute path below /: {mount.target!r}")
        hidden = any(target == r or target.startswith(r + "/") for r in (*RESERVED, "/tmp"))
        hidden |= target == WORKDIR or WORKDIR.startswith(target + "/")
        hidden |= target.startswith(WORKDIR + "/")
        if hidden:
            raise ValueError(f"mount target {target!r} would hide a directory the sandbox needs")
        source = Path(os.path.realpath(mount.source))
        if not source.exists():
            raise InputError(f"sandbox mount source does not exist: {mount.source}")
        if self.run_as[0] != os.getuid() and mount.read_only:
            mode = source.stat().st_mode
            need = 0o005 if stat.S_ISDIR(mode) else 0o004
            if mode & need != need:
                raise InputError(
                    f"sandbox mount source {source} is not readable by the sandbox user "
                    f"(uid {self.run_as[0]})",
                    hint=f"make it world-readable: chmod -R o+rX {source}",
                )
        return Mount(source, target, mount.read_only)

    # -- one command ----------------------------------------------------------------------------
    def _exec_create(self, argv: list[str], env: dict[str, str] | None, stdin: bool) -> str:
        import docker

        limits = self.limits
        path = [WORKDIR, *(self.path_of(t) for t in self.spec.pythonpath)]
        command_env = minimal_env(PATH, ":".join(path), env)
        if "=" in argv[0]:  # env(1) would take it for a variable: let a shell start it
            argv = ["/bin/sh", "-c", 'exec "$@"', "sh", *argv]
        cmd = [
            "/bin/sh",
            "-c",
            _SHIM,
            "sh",
            str(limits.memory_mb),
            str(limits.cpu_s),
            str(limits.file_size_mb * 1024 * 1024 // 512),  # ulimit -f counts 512-byte blocks
            *(f"{key}={value}" for key, value in command_env.items()),
            *argv,
        ]
        uid, gid = self.run_as
        try:
            created = self.client.api.exec_create(
                self.container_id,
                cmd,
                stdin=stdin,
                user=f"{uid}:{gid}",
                environment={"PATH": PATH},
                workdir=WORKDIR,
            )
        except docker.errors.NotFound as exc:
            raise _ContainerGone from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # "container ... is not running"
                raise _ContainerGone from exc
            raise
        return str(created["Id"])

    def _exec(
        self, exec_id: str, start: float, timeout: float, stdin: str | None, guard: Guard
    ) -> ExecResult:
        api = self.client.api
        sock = api.exec_start(exec_id, socket=True)
        stream = _ExecStream(sock, self.limits.output_bytes, stdin)
        try:
            stream.pump(deadline=start + timeout, kill=self._kill_all, guard=guard)
        finally:
            stream.close()
        info = api.exec_inspect(exec_id)
        # The stream ends when the command's stdout and stderr close; it may still run.
        killed_at = time.monotonic()
        while info.get("Running"):
            now = time.monotonic()
            if stream.killed is None and now >= start + timeout:
                stream.killed = "timeout"
            if stream.killed is None and guard.over_quota(now):
                stream.killed = "disk"
            if stream.killed is not None and now >= killed_at:
                self._kill_all()
                killed_at = now + DRAIN_GRACE_S
            time.sleep(0.01)
            info = api.exec_inspect(exec_id)
        duration = time.monotonic() - start
        exit_code = info.get("ExitCode")
        exit_code = 128 + signal.SIGKILL if exit_code is None else int(exit_code)
        stdout, stderr = stream.text()
        killed: Killed | None = stream.killed
        if killed is None and exit_code != 0 and _MARKER.search(stderr[-500:]):
            killed = "memory"
        if killed is None:
            sig = exit_code - 128 if 128 < exit_code < 128 + 65 else None
            # SIGKILL at RLIMIT_CPU's hard limit (a command that ignored SIGXCPU): it cannot
            # have used that much CPU time in less wall-clock time (one CPU or more).
            cpu = duration * max(self.limits.cpus, 1.0) if sig == signal.SIGKILL else 0.0
            killed = classify(exit_code, sig, stderr, 0.0, cpu, self.limits)
        return ExecResult(exit_code, stdout, stderr, duration, killed)

    def _kill_all(self) -> None:
        """SIGKILL every process of the sandbox user: the command and all it started.

        The container's pid 1 does it on SIGUSR1, which the engine delivers without
        starting a process: a command that used up the process limit cannot stop it.
        """
        import docker

        with contextlib.suppress(docker.errors.APIError):
            self.client.api.kill(self.container_id, signal="SIGUSR1")

    # -- ownership when Dark Factory runs as root --------------------------------------------
    def _hand_over(self, top: Path, *, skip: tuple[str, ...] = ()) -> None:
        """Let the sandbox user write ``top`` (see the module doc); never follows a symlink.

        ``top`` keeps its owner (made group-writable for the user's group if the user is
        not the owner); everything under it except ``skip`` becomes the user's.
        """
        uid, gid = self.run_as
        st = os.lstat(top)
        if st.st_uid != uid:
            if st.st_gid != gid:
                os.chown(top, -1, gid, follow_symlinks=False)
            if st.st_mode & 0o070 != 0o070:
                os.chmod(top, stat.S_IMODE(st.st_mode) | 0o070)
        # fwalk checks each directory it enters is the one it listed, and the chown is
        # relative to that directory's fd: a swapped-in symlink cannot redirect it.
        for root, dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
            if root == str(top):
                dirs[:] = [d for d in dirs if d not in skip]
                files = [f for f in files if f not in skip]
            for name in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if (st.st_uid, st.st_gid) != (uid, gid):
                        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


class _ContainerGone(Exception):
    """The sandbox's container is no longer running."""


class _ExecStream:
    """Reads an exec's multiplexed stdout/stderr (8-byte frame headers), feeds its stdin."""

    def __init__(self, sock: Any, cap: int, stdin: str | None) -> None:
        self.sock: socket.socket = getattr(sock, "_sock", sock)
        self.holder = sock  # keeps the HTTP response (and so the connection) alive
        self.cap = cap
        self.killed: Killed | None = None
        self.buf = bytearray()
        self.out = {1: bytearray(), 2: bytearray()}
        self.seen = {1: 0, 2: 0}
        self.pending = memoryview((stdin or "").encode("utf-8"))
        self.writing = stdin is not None
        self.sock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.writing else 0)
        self.sel.register(self.sock, events)
        if self.writing and not self.pending:
            self._end_stdin()

    def pump(self, deadline: float, kill: Any, guard: Guard | None = None) -> None:
        """Until the stream ends, or a limit fires (then ``kill()``) and it drains."""
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if self.killed is None and now >= deadline:
                self._kill("timeout", kill)
            if self.killed is None and guard is not None and guard.over_quota(now):
                self._kill("disk", kill)
            if self.killed is not None and drain_until is None:
                drain_until = time.monotonic() + DRAIN_GRACE_S
            if drain_until is not None and now >= drain_until:
                return
            until = deadline if drain_until is None else drain_until
            wait = min(until - now, 1.0)
            if guard is not None and drain_until is None:
                wait = min(wait, guard.wait(now))
            for _, events in self.sel.select(max(0.0, wait)):
                if events & selectors.EVENT_WRITE and self.writing:
                    self._write()
                if events & selectors.EVENT_READ and not self._read(kill):
                    return

    def _read(self, kill: Any) -> bool:
        """Read what is there; False at the end of the stream."""
        try:
            data = self.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        self.buf += data
        while len(self.buf) >= 8:
            size = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + size:
                break
            fd, payload = self.buf[0], bytes(self.buf[8 : 8 + size])
            del self.buf[: 8 + size]
            fd = fd if fd in self.out else 2
            self.seen[fd] += len(payload)
            room = self.cap - len(self.out[fd])
            if room > 0:
                self.out[fd] += payload[:room]
            if self.seen[fd] > self.cap and self.killed is None:
                self._kill("output", kill)
        return True

    def _write(self) -> None:
        try:
            n = self.sock.send(self.pending[:_CHUNK])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the command does not read (all of) its input
            self._end_stdin()
            return
        self.pending = self.pending[n:]
        if not self.pending:
            self._end_stdin()

    def _end_stdin(self) -> None:
        """Half-close: the command reads end-of-file; its output still comes back."""
        self.writing = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(self.sock, selectors.EVENT_READ)

    def _kill(self, why: Killed, kill: Any) -> None:
        self.killed = why
        kill()

    def text(self) -> tuple[str, str]:
        out, err = (bytes(self.out[fd]).decode("utf-8", errors="replace") for fd in (1, 2))
        return out, err

    def close(self) -> None:
        self.sel.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(Exception):
            self.holder.close()


# -- owners and stale containers ---------------------------------------------------------------
def _owner(pid: int | None = None) -> dict[str, str]:
    """Who owns a container: host, pid namespace, pid and the pid's start time."""
    pid = os.getpid() if pid is None else pid
    return {
        "host": socket.gethostname(),
        "pidns": str(os.stat("/proc/self/ns/pid").st_ino),
        "pid": str(pid),
        "start": _start_time(pid) or "",
    }


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if there is no such pid."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()[19]


def owner_alive(owner: dict[str, str]) -> bool | None:
    """Whether the owner process still runs (None: not ours to say, e.g. another host)."""
    here = _owner()
    if (owner.get("host"), owner.get("pidns")) != (here["host"], here["pidns"]):
        return None
    try:
        pid = int(owner.get("pid", ""))
    except ValueError:
        return False
    return _start_time(pid) == owner.get("start")


_stale_checked = threading.Lock()


def _remove_stale(client: Any, *, again: bool = False) -> int:
    """Remove the containers whose owner on this host is gone (once per process)."""
    global _stale_done
    with _stale_checked:
        if _stale_done and not again:
            return 0
        _stale_done = True
    removed = 0
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        try:
            owner = json.loads((c.get("Labels") or {}).get(OWNER_LABEL, "{}"))
        except ValueError:
            owner = {}
        if isinstance(owner, dict) and owner_alive(owner) is False:
            _remove(client, c["Id"])
            removed += 1
    return removed


def _remove(client: Any, cid: str) -> None:
    import docker

    try:
        client.api.remove_container(cid, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: its removal is already in progress
            raise
