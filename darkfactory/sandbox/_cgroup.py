"""Per-command cgroups: how bwrap bounds a command's processes and memory and kills it all.

Used when this process may create cgroups (root, or a delegated cgroup v2 subtree). Every
command gets a cgroup of its own, a child of the cgroup this process is in (read from
``/proc/self/cgroup``, so it nests inside a container's or a session's cgroup):

* cgroup v1 (``pids`` and ``memory`` hierarchies): a child in each, with ``pids.max``,
  ``memory.limit_in_bytes`` and, when swap accounting is on, ``memory.memsw.limit_in_bytes``
  (memory plus swap) set to the same value.
* cgroup v2 (a unified hierarchy with ``pids`` and ``memory``): one child with
  ``pids.max``, ``memory.max`` and ``memory.swap.max`` 0. Children can only use the
  controllers their parent enables (``cgroup.subtree_control``), which the kernel refuses
  for a cgroup that holds processes itself. So the parent is this process's cgroup if its
  children get both controllers (or can be given them), else the nearest ancestor whose
  children get them (e.g. the systemd slice around this process's scope).

Entering before the first fork: the command is started through ``enter_argv()``, a
``/bin/sh -c`` with a fixed script (paths and argv are its arguments, never part of the
script) that writes the shell's own pid into each ``cgroup.procs`` and then ``exec``s the
real argv. Only shell builtins run before the ``exec``, so nothing forks outside the
cgroup; if a write fails, the shell exits 125 without running anything.

Killing: v2 writes ``cgroup.kill``; v1 (and v2 before Linux 5.14) sends SIGKILL to every
pid of ``cgroup.procs`` through a pidfd opened *before* re-reading the list, so a pid that
was reused by an unrelated process is never signalled. A process that calls ``setsid`` or
double-forks stays in the cgroup: nothing escapes. ``remove()`` kills until the cgroup is
empty, then removes it.

Memory kills: the kernel's OOM killer counts its kills per cgroup (v1 ``oom_kill`` in
``memory.oom_control``, v2 ``oom_kill`` in ``memory.events``).

Names are ``darkfactory-<pid namespace>-<pid>-<start time>-<n>``: on first use in a process,
the cgroups a dead owner of the same pid namespace left behind (it was killed before it
could remove them) are killed and removed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass

from darkfactory.sandbox.base import Limits

PREFIX = "darkfactory-"
CONTROLLERS = ("pids", "memory")
#: How long ``remove()`` keeps killing and retrying before leaving a cgroup behind.
REMOVE_WAIT_S = 5.0
#: Exit status of the entry script when the command could not be put in its cgroup.
ENTER_FAILED = 125

#: $1: how many cgroup.procs files follow; then the files; then the command.
_ENTER = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || '
    '{ echo "darkfactory: sandbox: cannot enter cgroup $1" >&2; exit 125; }; '
    'shift; n=$((n - 1)); done; exec "$@"'
)
_seq = itertools.count(1)


@dataclass(frozen=True)
class Hierarchy:
    """Where this process creates its commands' cgroups."""

    version: int  # 1 or 2
    #: The directories new cgroups go under: v1 one per hierarchy (pids, memory), v2 one.
    parents: tuple[str, ...]


@functools.cache
def hierarchy() -> Hierarchy | str:
    """Where to create cgroups, or why this process cannot. Probed once per process.

    The probe creates a cgroup, sets its limits, puts ``true`` into it and removes it; it
    also removes the cgroups dead owners left behind.
    """
    try:
        found = find_hierarchy()
    except OSError as exc:
        return f"cannot read the cgroup hierarchy: {exc}"
    if isinstance(found, str):
        return found
    remove_stale(found)
    try:
        cgroup = Cgroup(found, Limits(pids=8, memory_mb=64))
    except OSError as exc:
        return f"cannot create a cgroup under {', '.join(found.parents)}: {exc}"
    try:
        probe = subprocess.run(
            [*cgroup.enter_argv(), "true"], capture_output=True, text=True, timeout=30
        )
    finally:
        cgroup.remove()
    if probe.returncode != 0:
        return probe.stderr.strip() or f"cannot enter a cgroup (exit code {probe.returncode})"
    return found


def find_hierarchy() -> Hierarchy | str:
    """The parent directories for new cgroups, from /proc/self/{cgroup,mountinfo}."""
    own = _own_cgroups()
    v1: dict[str, str] = {}
    v2: list[str] = []
    for root, point, fstype, options in _cgroup_mounts():
        if fstype == "cgroup2":
            v2.append(_below(point, root, own.get("")))
        else:
            for c in CONTROLLERS:
                if c in options.split(",") and c not in v1:
                    v1[c] = _below(point, root, own.get(c))
    if all(v1.get(c) for c in CONTROLLERS):
        return Hierarchy(1, tuple(dict.fromkeys(v1[c] for c in CONTROLLERS)))
    for path in v2:
        if path:
            return _v2_parent(path)
    return "no pids and memory cgroup controllers are mounted where this process can use them"


class Cgroup:
    """One command's cgroup: created with the limits, entered, killed, removed."""

    def __init__(self, where: Hierarchy, limits: Limits, *, extra_pids: int = 0) -> None:
        self.version = where.version
        name = f"{PREFIX}{_owner()}-{next(_seq)}"
        self.dirs = [os.path.join(parent, name) for parent in where.parents]
        memory = str(limits.memory_mb * 1024 * 1024)
        try:
            for d in self.dirs:
                os.mkdir(d, 0o755)
            self._set("pids.max", str(limits.pids + extra_pids))
            if self.version == 2:
                self._set("memory.max", memory)
                self._set("memory.swap.max", "0", optional=True)
            else:
                # memsw (memory + swap) may never be below the memory limit: this order.
                self._set("memory.limit_in_bytes", memory)
                self._set("memory.memsw.limit_in_bytes", memory, optional=True)
        except BaseException:
            self.remove()
            raise

    def enter_argv(self) -> list[str]:
        """argv to put in front of a command so that it runs in this cgroup from the start."""
        procs = [os.path.join(d, "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", _ENTER, "darkfactory-enter", str(len(procs)), *procs]

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (one pass; ``remove`` waits until it is empty)."""
        if self.version == 2:
            try:
                _write(os.path.join(self.dirs[0], "cgroup.kill"), "1")
                return
            except OSError:  # no cgroup.kill before Linux 5.14: one by one, as on v1
                pass
        for d in self.dirs:
            _kill_listed(os.path.join(d, "cgroup.procs"))

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer killed in this cgroup."""
        if self.version == 2:
            return _counter(self._file("memory.events"), "oom_kill")
        path = self._file("memory.oom_control")
        if "oom_kill " in _read(path):
            return _counter(path, "oom_kill")
        # Kernels before 4.13 do not count OOM kills; the limit was hit at least.
        return _counter(self._file("memory.failcnt"), "")

    def remove(self) -> bool:
        """Kill what is left and remove the cgroup; False if it could not be done in time."""
        deadline = time.monotonic() + REMOVE_WAIT_S
        pause = 0.0005  # bwrap's pid 1 usually needs a millisecond to tear its namespaces down
        while True:
            self.kill()
            self.dirs = [d for d in self.dirs if not _rmdir(d)]
            if not self.dirs:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _file(self, name: str) -> str:
        """The first of our directories that has ``name`` (v1: each file is in one)."""
        for d in self.dirs:
            path = os.path.join(d, name)
            if os.path.exists(path):
                return path
        raise FileNotFoundError(errno.ENOENT, f"no {name} in {self.dirs}")

    def _set(self, name: str, value: str, *, optional: bool = False) -> None:
        try:
            path = self._file(name)
        except FileNotFoundError:
            if optional:
                return
            raise
        _write(path, value)


def remove_stale(where: Hierarchy) -> list[str]:
    """Kill and remove the cgroups that dead owners in our pid namespace left behind."""
    ns = _pid_namespace()
    pattern = re.compile(rf"{re.escape(PREFIX)}(\d+)-(\d+)-(\d+)-\d+")
    removed = []
    for parent in where.parents:
        with os.scandir(parent) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        for name in names:
            m = pattern.fullmatch(name)
            if m is None or int(m[1]) != ns or _start_time(int(m[2])) == int(m[3]):
                continue
            path = os.path.join(parent, name)
            for _ in range(200):
                _kill_listed(os.path.join(path, "cgroup.procs"))
                if _rmdir(path):
                    removed.append(path)
                    break
                time.sleep(0.005)
    return removed


# -- finding the hierarchy ------------------------------------------------------------------
def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path ("" is the v2 unified hierarchy)."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                own[c] = path
    return own


def _cgroup_mounts() -> list[tuple[str, str, str, str]]:
    """(root, mount point, fs type, super options) of each cgroup file system mounted."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) >= 5 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
                root, point = (_unescape(x) for x in fields[3:5])
                mounts.append((root, point, rfields[0], rfields[2]))
    return mounts


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _below(point: str, root: str, path: str | None) -> str:
    """Our cgroup ``path`` as a directory under a mount of ``root`` at ``point`` ("" if not)."""
    if path is None:
        return ""
    root = root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return ""  # this mount shows another part of the hierarchy
    d = os.path.join(point, path[len(root) :].lstrip("/"))
    return os.path.normpath(d) if os.path.isdir(d) else ""


def _v2_parent(own: str) -> Hierarchy | str:
    """Our cgroup, or the nearest ancestor, whose children get the pids and memory controllers."""
    available = _read(os.path.join(own, "cgroup.controllers")).split()
    if not all(c in available for c in CONTROLLERS):
        return f"the cgroup {own} does not offer the pids and memory controllers"
    d = own
    why = ""
    while True:
        enabled = _read(os.path.join(d, "cgroup.subtree_control")).split()
        if all(c in enabled for c in CONTROLLERS):
            return Hierarchy(2, (d,))
        if d == own:  # a cgroup that holds processes cannot enable controllers for children
            try:
                _write(os.path.join(d, "cgroup.subtree_control"), "+pids +memory")
                return Hierarchy(2, (d,))
            except OSError as exc:
                why = f"cannot enable pids and memory for the children of {d}: {exc.strerror}"
        parent = os.path.dirname(d)
        if parent == d or not os.path.exists(os.path.join(parent, "cgroup.subtree_control")):
            return why or f"no cgroup above {own} enables pids and memory for its children"
        d = parent


# -- killing and removing -------------------------------------------------------------------
def _kill_listed(procs: str) -> None:
    """SIGKILL each process listed in ``procs`` that is still listed once we hold its pidfd."""
    pidfds: dict[int, int] = {}
    try:
        for pid in _pids(procs):
            with contextlib.suppress(ProcessLookupError):
                pidfds[pid] = os.pidfd_open(pid)
        if not pidfds:
            return
        still = set(_pids(procs))  # a pid reused since the first read is not listed here
        for pid, fd in pidfds.items():
            if pid in still:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        for fd in pidfds.values():
            os.close(fd)


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
        raise
    return True


# -- small readers --------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _pids(procs: str) -> list[int]:
    return [int(x) for x in _read(procs).split()]


def _counter(path: str, key: str) -> int:
    """The number after ``key`` in a flat keyed file (``key`` "": the file is one number)."""
    for line in _read(path).splitlines():
        parts = line.split()
        if not key and len(parts) == 1:
            return int(parts[0])
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return 0


def _pid_namespace() -> int:
    return os.stat("/proc/self/ns/pid").st_ino


def _start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rpartition(")")[2].split()[19])  # field 22; the name may hold spaces


def _owner() -> str:
    pid = os.getpid()
    return f"{_pid_namespace()}-{pid}-{_start_time(pid)}"
