"""``bwrap``: bubblewrap namespaces around every command.

What a command sees: the system's ``/usr`` (and the ``/bin``, ``/lib*`` links), the Python
interpreter that runs Dark Factory (its prefix and base prefix), a handful of files from
``/etc`` (dynamic linker cache, alternatives, local time) plus a generated ``passwd``,
``group``, ``hosts`` and ``nsswitch.conf``, all read-only; a private ``/proc`` (its own pid
namespace), a minimal ``/dev``, an empty ``/tmp``; the workspace read-write at
``/workspace`` (its ``.git`` read-only) and each ``Mount`` at its target. Nothing else of
the host: no ``/home``, ``/root``, rest of ``/etc``, no network (own network namespace with
only a loopback), no host environment.

Who a command runs as: the user running Dark Factory, in its own user namespace that maps
only that uid and gid (``--unshare-user``), with every capability dropped (``--cap-drop
ALL``) and no new user namespaces inside (``--disable-userns``, bwrap 0.8 and later).
Files it writes belong to that user, as if the user had written them; files the user may
not touch, it may not touch either. Nothing is ever chowned: the sandbox never changes
who owns the user's files. After every command it does change what the command left in
the workspace and the read-write mounts (``_scrub.py``): setuid and setgid bits are
stripped, device nodes, FIFOs and sockets removed (run as root, a command could
otherwise leave a root-owned setuid shell there for any local user), and their size is
held to ``limits.disk_mb`` while it runs.

Processes and memory: every command runs in a cgroup of its own (``_cgroup.py``) with
``pids.max`` (``limits.pids`` plus the 3 processes of bwrap and the limit shim) and the
memory limit (``limits.memory_mb`` for all its processes together, no swap); it enters the
cgroup before bwrap starts, a timeout or too much output kills every process in it, and
it is removed after the command. The kernel's OOM killer in it is reported as
``killed="memory"``. Rlimits stay on as well (``_proc.limit_prefix``: address space, CPU,
file size, core dumps, and RLIMIT_NPROC). When this process may not create cgroups:

* run as any user but root, the limits are rlimits only, set inside the user namespace;
  there RLIMIT_NPROC counts only that sandbox's processes, so a fork bomb is contained;
* run as root, the kernel does not apply RLIMIT_NPROC (not even through a user namespace),
  so nothing would bound the processes: the backend is unavailable, saying why.

On a timeout or too much output the whole group is killed: bwrap runs with
``--die-with-parent``, and when the sandbox's pid 1 dies the kernel kills every process
of its pid namespace; the cgroup kill catches anything else.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from darkfactory.errors import InputError, SandboxUnavailable
from darkfactory.sandbox._cgroup import Cgroup, Hierarchy, hierarchy
from darkfactory.sandbox._proc import Report, limit_prefix, minimal_env, run_process
from darkfactory.sandbox._scrub import Guard, Place, ident_of
from darkfactory.sandbox.base import ExecResult, Mount, SandboxSpec, mounted_path

WORKDIR = "/workspace"
#: Workspace entries bound read-only over the writable workspace.
READ_ONLY_IN_WORKSPACE = (".git",)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Host /etc entries a Python process needs; the rest of /etc stays hidden.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
#: Targets a mount may not replace or sit under.
RESERVED = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/dev")
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap), or use the docker backend"
CGROUP_HINT = (
    "let root create cgroups (a read-write /sys/fs/cgroup with the pids and memory "
    "controllers), run Dark Factory as an unprivileged user, or use the docker backend"
)
#: Processes of a command that are not the command: bwrap, bwrap's pid 1, the limit shim.
OVERHEAD_PIDS = 3


def find_bwrap() -> str:
    """The bwrap executable, or ``SandboxUnavailable`` saying how to get it."""
    found = shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None
    )
    if found is None:
        raise SandboxUnavailable("bwrap (bubblewrap) is not installed", hint=INSTALL_HINT)
    return found


class BwrapSandbox:
    """Runs every command in fresh bubblewrap namespaces (see the module doc)."""

    backend = "bwrap"
    workdir = WORKDIR

    def __init__(self, spec: SandboxSpec, *, python: str | None = None) -> None:
        self.bwrap = find_bwrap()
        self.workspace = Path(os.path.realpath(spec.workspace))
        if not self.workspace.is_dir():
            raise InputError(f"sandbox workspace is not a directory: {spec.workspace}")
        self.spec = spec
        self.limits = spec.limits
        self.python = python or sys.executable
        where = hierarchy()
        #: Where each command's cgroup goes; None: no cgroups, rlimits only (not as root).
        self.cgroups: Hierarchy | None = where if isinstance(where, Hierarchy) else None
        if self.cgroups is None and os.geteuid() == 0:
            raise SandboxUnavailable(
                "run as root, bwrap needs cgroups to bound a command's processes and memory "
                f"(the kernel does not apply RLIMIT_NPROC to root), and {where}",
                hint=CGROUP_HINT,
            )
        #: Cgroups that could not be removed after their command (close() tries again).
        self.leftover: list[Cgroup] = []
        _access_needed(self.workspace, write=True, what="sandbox workspace")
        self._python = self._python_dirs()
        self.mounts = sorted(
            (self._checked(m) for m in spec.mounts), key=lambda m: m.target.count("/")
        )
        self._args()  # fail here, not on the first command, if the layout is impossible

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
        path = os.pathsep.join(
            [str(Path(self.python).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        )
        guard = Guard(self._places(), self.limits.disk_mb)
        args = [self.bwrap, *self._args()]
        for key, value in minimal_env(path, WORKDIR, env).items():
            args += ["--setenv", key, value]
        with _generated_etc(os.getuid(), os.getgid()) as (etc_args, fds), Report() as report:
            args += etc_args
            prefix = limit_prefix(self.python, self.limits, nproc=self.limits.pids, report=report)
            cgroup = None
            if self.cgroups is not None:
                cgroup = Cgroup(self.cgroups, self.limits, extra_pids=OVERHEAD_PIDS)
            enter = cgroup.enter_argv() if cgroup is not None else []
            try:
                result = run_process(
                    [*enter, *args, "--", *prefix, *argv],
                    timeout=self.limits.timeout_s if timeout is None else timeout,
                    limits=self.limits,
                    env={"PATH": "/usr/bin:/bin"},
                    stdin=stdin,
                    pass_fds=fds,
                    report=report,
                    cgroup=cgroup,
                    guard=guard,
                )
            finally:
                if cgroup is not None and not cgroup.remove():
                    self.leftover.append(cgroup)
        return guard.finish(result)  # after the cgroup's removal: its processes are gone

    def close(self) -> None:
        self.leftover = [c for c in self.leftover if not c.remove()]

    # -- building the command line -----------------------------------------------------------
    def _places(self) -> list[Place]:
        """What the next command can write; the entries ``_args`` binds read-only are not."""
        bound = [(n, ident_of(self.workspace / n)) for n in READ_ONLY_IN_WORKSPACE]
        read_only = tuple((n, i) for n, i in bound if i is not None)
        places = [Place(self.workspace, "", read_only)]
        return places + [Place(m.source, m.target) for m in self.mounts if not m.read_only]

    def _checked(self, mount: Mount) -> Mount:
        target = os.path.normpath(mount.target)
        if not target.startswith("/") or target == "/":
            raise ValueError(f"mount target must be an absolute path below /: {mount.target!r}")
        hidden = any(target == r or target.startswith(r + "/") for r in (*RESERVED, "/tmp"))
        hidden |= any(p == target or p.startswith(target + "/") for p in (*self._python, WORKDIR))
        if hidden:
            raise ValueError(f"mount target {target!r} would hide a directory the sandbox needs")
        source = Path(os.path.realpath(mount.source))
        if not source.exists():
            raise InputError(f"sandbox mount source does not exist: {mount.source}")
        _access_needed(source, write=not mount.read_only, what="sandbox mount source")
        return Mount(source, target, mount.read_only)

    def _args(self) -> list[str]:
        """Namespaces and mounts: everything but the environment and the generated /etc."""
        args = ["--die-with-parent", "--new-session", "--unshare-all", "--unshare-user"]
        args += ["--cap-drop", "ALL", *_no_nested_userns(self.bwrap), "--hostname", "sandbox"]
        plan = _Plan()
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                plan.symlink(os.readlink(d), d)
            elif os.path.isdir(d):
                plan.bind("--ro-bind", d, d)
        # /tmp lives in RAM: bound it like the memory, or a command could fill the host's.
        # It comes before the interpreter's binds: a virtualenv under /tmp must stay visible.
        tmp_size = str(self.limits.memory_mb * 1024 * 1024)
        plan.raw("--perms", "1777", "--size", tmp_size, "--tmpfs", "/tmp")
        for prefix in self._python:
            plan.bind("--ro-bind", prefix, prefix)
        plan.directory("/etc")
        for name in ETC_ENTRIES:
            plan.copy_host(f"/etc/{name}")
        for path in sorted(glob.glob("/etc/python3*")):
            plan.copy_host(path)
        plan.raw("--proc", "/proc", "--dev", "/dev")
        plan.bind("--bind", str(self.workspace), WORKDIR)
        for name in READ_ONLY_IN_WORKSPACE:
            # Never a symlink: a command could plant ``.git -> /etc`` for the next run.
            with contextlib.suppress(FileNotFoundError):
                mode = os.lstat(self.workspace / name).st_mode
                if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                    plan.bind("--ro-bind", str(self.workspace / name), f"{WORKDIR}/{name}")
        for m in self.mounts:
            plan.bind("--ro-bind" if m.read_only else "--bind", str(m.source), m.target)
        plan.raw("--chdir", WORKDIR, "--clearenv")
        return args + plan.args

    def _python_dirs(self) -> list[str]:
        """The interpreter's prefixes not already visible through /usr (outermost only)."""
        exe = Path(self.python)
        candidates = {
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            sys.base_exec_prefix,
            str(exe.parent.parent),
            str(Path(os.path.realpath(exe)).parent.parent),
        }
        covered = [d for d in SYSTEM_DIRS if os.path.isdir(d)]
        keep: list[str] = []
        for path in sorted({os.path.normpath(c) for c in candidates}, key=len):
            if not os.path.isdir(path) or path == "/":
                continue
            if any(path == k or path.startswith(k.rstrip("/") + "/") for k in covered + keep):
                continue
            keep.append(path)
        return keep


def _access_needed(path: Path, *, write: bool, what: str) -> None:
    """``InputError`` unless a command (running as us, with no capabilities) can use ``path``.

    Decided by the mode bits alone, as the kernel does for a process without
    CAP_DAC_OVERRIDE: owner bits if we own it, group bits if it is one of our groups.
    """
    st = path.stat()
    need = 0o4 | (0o2 if write else 0) | (0o1 if stat.S_ISDIR(st.st_mode) else 0)
    if st.st_uid == os.geteuid():
        shift, whose = 6, "its owner"
    elif st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        shift, whose = 3, "its group"
    else:
        shift, whose = 0, "others"
    if (st.st_mode >> shift) & need != need:
        rights = "read" + (" and write" if write else "")
        raise InputError(
            f"{what} {path} is not open to {rights} for the sandbox, which runs as uid "
            f"{os.geteuid()} without privileges ({whose}: {stat.filemode(st.st_mode)}, "
            f"owner uid {st.st_uid})",
            hint="use a directory this user owns; the sandbox never changes who owns files",
        )


@functools.cache
def _no_nested_userns(bwrap: str) -> tuple[str, ...]:
    """``--disable-userns`` if this bwrap has it (0.8 and later): no user namespaces inside."""
    out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30)
    return ("--disable-userns",) if "--disable-userns" in out.stdout + out.stderr else ()


class _Plan:
    """bwrap mount arguments, creating the parents of each target world-readable.

    (bwrap creates missing parents mode 0700 when run as root; explicit 0755 keeps what a
    command may see independent of who it runs as, e.g. ``/root/.pyenv/...``.)
    """

    def __init__(self) -> None:
        self.args: list[str] = []
        self.present: set[str] = {"/"}
        self.bound: list[str] = []

    def _exists(self, path: str) -> bool:
        return path in self.present or any(path.startswith(b + "/") for b in self.bound)

    def _parents(self, target: str) -> None:
        parts = Path(target).parents
        for parent in reversed([str(p) for p in parts]):
            if not self._exists(parent):
                self.args += ["--perms", "0755", "--dir", parent]
                self.present.add(parent)

    def directory(self, path: str) -> None:
        self._parents(path + "/x")

    def bind(self, how: str, source: str, target: str) -> None:
        self._parents(target)
        self.args += [how, source, target]
        self.present.add(target)
        self.bound.append(target)

    def symlink(self, link_target: str, path: str) -> None:
        self._parents(path)
        self.args += ["--symlink", link_target, path]
        self.present.add(path)

    def copy_host(self, path: str) -> None:
        """A host /etc entry: symlinks as symlinks, files and directories read-only."""
        if os.path.islink(path):
            self.symlink(os.readlink(path), path)
        elif os.path.exists(path):
            self.bind("--ro-bind", path, path)

    def raw(self, *args: str) -> None:
        self.args += args
        for how, target in zip(args[::2], args[1::2], strict=False):
            if how in ("--proc", "--dev", "--tmpfs"):
                self.present.add(target)
                self.bound.append(target)


@contextlib.contextmanager
def _generated_etc(uid: int, gid: int) -> Iterator[tuple[list[str], list[int]]]:
    """passwd, group, hosts and nsswitch.conf written for the sandbox, as bwrap data fds."""
    files = {
        "/etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"sandbox:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\nsandbox:x:{gid}:\n",
        "/etc/hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    if uid == 0:
        files["/etc/passwd"] = "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        files["/etc/group"] = "root:x:0:\n"
    args: list[str] = []
    fds: list[int] = []
    try:
        for path, text in files.items():
            fd = os.memfd_create(os.path.basename(path))
            fds.append(fd)
            os.write(fd, text.encode())
            os.lseek(fd, 0, os.SEEK_SET)
            args += ["--perms", "0644", "--ro-bind-data", str(fd), path]
        yield args, fds
    finally:
        for fd in fds:
            os.close(fd)
