"""``bwrap``: bubblewrap namespaces around every command.

What a command sees: the system's ``/usr`` (and the ``/bin``, ``/lib*`` links), the Python
interpreter that runs Dark Factory (its prefix and base prefix), a handful of files from
``/etc`` (dynamic linker cache, alternatives, local time) plus a generated ``passwd``,
``group``, ``hosts`` and ``nsswitch.conf``, all read-only; a private ``/proc`` (its own pid
namespace), a minimal ``/dev``, an empty ``/tmp``; the workspace read-write at
``/workspace`` (its ``.git`` read-only) and each ``Mount`` at its target. Nothing else of
the host: no ``/home``, ``/root``, rest of ``/etc``, no network (own network namespace with
only a loopback), no host environment.

Processes and RLIMIT_NPROC. The kernel does not apply RLIMIT_NPROC to root, nor to a uid
that maps back to root through a user namespace. So:

* Run as root (the usual case in CI and containers), bwrap is started without a user
  namespace (every other namespace is unshared as ``--unshare-all`` would), keeps only
  CAP_SETUID/CAP_SETGID, and the first program inside (``_proc.limit_prefix``) sets the
  rlimits and drops to ``sandbox_uid``/``sandbox_gid`` (default 65534, "nobody") before it
  ``exec``s the command; bwrap's ``no_new_privs`` keeps it there. The kernel then counts
  the sandbox's processes against ``limits.pids``, so a fork bomb is contained. The count
  is per uid on the whole host: concurrent sandboxes with the same uid share it.
  For that uid to write the workspace, before every command the workspace's content
  (except ``.git``) and every read-write mount are chowned to it; the workspace directory
  itself stays owned by its owner (git refuses a repository owned by someone else) and is
  made group-writable for ``sandbox_gid``. Root on the host keeps full access to all of it.
  Read-only mounts must be readable by that uid (world-readable); this is checked.
* Run as any other user, bwrap uses ``--unshare-all`` (with a user namespace); the command
  runs as that user, so every file it writes belongs to the user. RLIMIT_NPROC is set
  inside the new user namespace, where the kernel counts only that sandbox's processes.

On a timeout or too much output the whole group is killed: bwrap runs with
``--die-with-parent``, and when the sandbox's pid 1 dies the kernel kills every process
of its pid namespace, so nothing survives a kill.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from darkfactory.errors import InputError, SandboxUnavailable
from darkfactory.sandbox._proc import Report, limit_prefix, minimal_env, run_process
from darkfactory.sandbox.base import ExecResult, Mount, SandboxSpec

WORKDIR = "/workspace"
#: Workspace entries bound read-only over the writable workspace (and never chowned).
READ_ONLY_IN_WORKSPACE = (".git",)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Host /etc entries a Python process needs; the rest of /etc stays hidden.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
#: Targets a mount may not replace or sit under.
RESERVED = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/dev")
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap), or use the docker backend"


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

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        python: str | None = None,
        sandbox_uid: int = 65534,
        sandbox_gid: int = 65534,
    ) -> None:
        self.bwrap = find_bwrap()
        self.workspace = Path(os.path.realpath(spec.workspace))
        if not self.workspace.is_dir():
            raise InputError(f"sandbox workspace is not a directory: {spec.workspace}")
        self.spec = spec
        self.limits = spec.limits
        self.python = python or sys.executable
        #: (uid, gid) commands run as when we are root; None: as ourselves.
        self.run_as = (sandbox_uid, sandbox_gid) if os.geteuid() == 0 else None
        self._python = self._python_dirs()
        self.mounts = sorted(
            (self._checked(m) for m in spec.mounts), key=lambda m: m.target.count("/")
        )
        self._args()  # fail here, not on the first command, if the layout is impossible

    # -- the Sandbox protocol ---------------------------------------------------------------
    def path_of(self, target: str) -> str:
        target = target.rstrip("/") or "/"
        for m in self.mounts:
            if target == m.target or target.startswith(m.target + "/"):
                return target
        raise KeyError(f"no mount with target {target!r} in this sandbox")

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
        if self.run_as is not None:
            self._hand_over()
        uid, gid = self.run_as or (os.getuid(), os.getgid())
        path = os.pathsep.join(
            [str(Path(self.python).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        )
        args = [self.bwrap, *self._args()]
        for key, value in minimal_env(path, WORKDIR, env).items():
            args += ["--setenv", key, value]
        with _generated_etc(uid, gid) as (etc_args, fds), Report() as report:
            args += etc_args
            prefix = limit_prefix(
                self.python,
                self.limits,
                nproc=self.limits.pids,
                uid=self.run_as[0] if self.run_as else None,
                gid=self.run_as[1] if self.run_as else None,
                report=report,
            )
            return run_process(
                [*args, "--", *prefix, *argv],
                timeout=self.limits.timeout_s if timeout is None else timeout,
                limits=self.limits,
                env={"PATH": "/usr/bin:/bin"},
                stdin=stdin,
                pass_fds=fds,
                report=report,
            )

    def close(self) -> None:
        pass

    # -- building the command line -----------------------------------------------------------
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
        if self.run_as is not None and mount.read_only:
            mode = source.stat().st_mode
            need = 0o005 if stat.S_ISDIR(mode) else 0o004
            if mode & need != need:
                raise InputError(
                    f"sandbox mount source {source} is not readable by the sandbox user "
                    f"(uid {self.run_as[0]})",
                    hint=f"make it world-readable: chmod -R o+rX {source}",
                )
        return Mount(source, target, mount.read_only)

    def _args(self) -> list[str]:
        """Namespaces and mounts: everything but the environment and the generated /etc."""
        args = ["--die-with-parent", "--new-session"]
        if self.run_as is not None:
            args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
            args += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-all"]
        args += ["--hostname", "sandbox"]
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

    # -- ownership for an unprivileged sandbox uid (root only) --------------------------------
    def _hand_over(self) -> None:
        """Let the sandbox uid write the workspace and the rw mounts (see the module doc)."""
        assert self.run_as is not None
        uid, gid = self.run_as
        top = os.stat(self.workspace)
        if top.st_gid != gid:
            os.chown(self.workspace, -1, gid)
        if top.st_mode & 0o070 != 0o070:
            os.chmod(self.workspace, stat.S_IMODE(top.st_mode) | 0o070)
        _chown_tree(self.workspace, uid, gid, skip=READ_ONLY_IN_WORKSPACE, include_top=False)
        for m in self.mounts:
            if not m.read_only:
                _chown_tree(Path(m.source), uid, gid, skip=(), include_top=True)


def _chown_tree(top: Path, uid: int, gid: int, *, skip: tuple[str, ...], include_top: bool) -> None:
    """chown everything under ``top`` to uid:gid, never following a symlink.

    ``os.fwalk`` works on directory file descriptors and checks each directory it enters is
    the one it listed, and the chown is relative to that descriptor without following the
    last component: a command that swaps a directory for a symlink cannot make this chown a
    host file outside ``top``.
    """
    if include_top:
        st = os.lstat(top)
        if st.st_uid != uid or st.st_gid != gid:
            os.chown(top, uid, gid, follow_symlinks=False)
    for root, dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        if root == str(top):
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if st.st_uid != uid or st.st_gid != gid:
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


class _Plan:
    """bwrap mount arguments, creating the parents of each target world-readable.

    (bwrap creates missing parents mode 0700 when run as root, which would lock the
    unprivileged sandbox uid out of e.g. ``/root/.pyenv/...``.)
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
