"""After every command: setuid/setgid bits stripped, devices, FIFOs and sockets removed
from where it could write; while it runs: those places held to ``Limits.disk_mb``.

``Guard`` watches one command's ``Place``s (the workspace, each read-write mount). It
measures them before the command, ever less often while it runs (after 20 ms, then
doubling up to ``CHECK_EVERY_S``, and never more than a tenth of the time; the
backend kills it, ``killed="disk"``, when they are over the quota and larger than at its
start) and once after it, when it also scrubs them and lists what it did on
``ExecResult.scrubbed``. Size: each inode once, its ``st_size`` but at least
``MIN_CHARGE`` (what a file system allocates for a small file; this bounds inodes too).
Walks go by descriptor (directories opened ``O_NOFOLLOW`` relative to their parent, modes
changed through an ``O_PATH`` descriptor): no symlink is ever followed out of a place. A
top-level entry bound read-only in the sandbox (``.git``) is skipped while it is still
what was bound. Not run as root, our own directories we cannot list get ``u+rwx``.

Residual: a command overshoots the quota by what it writes between two checks (the
interval grows with the walk's cost on a big tree), and a killed command's files stay,
so every later command that writes is killed (at one of the first checks: 20, 60, 140 ms
after its start) until files are deleted; each can still add what it writes by then. ``file_size_mb``
(RLIMIT_FSIZE) caps a single file. With ``local``, a process that left the command's
group can write during and after the walk. The sandbox's ``/tmp`` (a bounded tmpfs in
bwrap and docker) is not counted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from darkfactory.sandbox.base import ExecResult

#: Bytes every file, directory or symlink counts at least (one block of most file systems).
MIN_CHARGE = 4096
#: Seconds from a command's start to the first measurement of its places; each later
#: interval is twice the one before, up to ``CHECK_EVERY_S``: a flood is caught early, a
#: long command is measured four times a second.
FIRST_CHECK_S = 0.02
CHECK_EVERY_S = 0.25
#: The walk may take at most this share of the time between two checks.
CHECK_SHARE = 0.1
#: Most actions listed on ``ExecResult.scrubbed``; the rest are counted.
MAX_REPORTED = 50
#: Most directory descriptors one walk holds; deeper ones are reopened through "..".
MAX_OPEN = 64
#: Longest path shown in a report (its end is kept).
MAX_SHOWN = 200
#: How often a final walk is retried when directories move under it (``local`` only).
RETRIES = 3

_SET_ID = stat.S_ISUID | stat.S_ISGID
_SPECIAL = {
    stat.S_IFBLK: "block device",
    stat.S_IFCHR: "character device",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
}
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

Ident = tuple[int, int]


@dataclass(frozen=True)
class Place:
    """A host directory a command can write (the workspace, or a read-write mount)."""

    path: Path
    #: How reports name what is under it: "" (workspace-relative) or the mount target.
    shown: str = ""
    #: Top-level entries bound read-only in the sandbox, with the (device, inode) each had
    #: when it was bound: skipped while they are still that entry.
    read_only: tuple[tuple[str, Ident], ...] = ()


def ident_of(path: Path) -> Ident | None:
    """(device, inode) of ``path`` if it is a directory or a regular file (no link followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return (st.st_dev, st.st_ino)
    return None


class Guard:
    """One command's disk quota and scrub (see the module doc)."""

    def __init__(self, places: Sequence[Place], disk_mb: int) -> None:
        self.places = tuple(places)
        self.quota = disk_mb * 1024 * 1024
        self.done: list[str] = []
        self.more = 0
        walk = self._walk(fix=False)
        #: The places' size when the command started: a command that does not grow them
        #: is never killed for the quota (it may be deleting files).
        self.baseline = walk.size
        self.every = FIRST_CHECK_S
        self.next_check = time.monotonic() + self._interval(walk.seconds)

    def wait(self, now: float) -> float:
        """Seconds until the next measurement is due."""
        return max(0.0, self.next_check - now)

    def over_quota(self, now: float) -> bool:
        """Measure if due; True if the command has to be killed for the quota."""
        if now < self.next_check:
            return False
        walk = self._walk(fix=False)
        self.next_check = time.monotonic() + self._interval(walk.seconds)
        return self._over(walk.size)

    def finish(self, result: ExecResult) -> ExecResult:
        """After the command: scrub, check the quota once more, say what was done."""
        walk = self._walk(fix=True)
        killed = result.killed
        if killed is None and self._over(walk.size):
            killed = "disk"
        scrubbed = self.done + ([f"... and {self.more} more"] if self.more else [])
        return replace(result, killed=killed, scrubbed=(*result.scrubbed, *scrubbed))

    def _over(self, size: int) -> bool:
        return size > self.quota and size > self.baseline

    def _interval(self, seconds: float) -> float:
        """Until the next check, after a walk that took ``seconds``."""
        every, self.every = self.every, min(self.every * 2, CHECK_EVERY_S)
        return max(every, seconds / CHECK_SHARE)

    def _walk(self, *, fix: bool) -> _Walk:
        for attempt in range(RETRIES + 1):
            walk = _Walk(self, fix=fix)
            try:
                walk.run()
            except _Moved:
                if not fix:  # while the command runs: what was counted is a lower bound
                    return walk
                if attempt == RETRIES:
                    raise RuntimeError(
                        "the sandbox's writable places kept changing while they were scrubbed"
                    ) from None
                continue
            return walk
        raise AssertionError("unreachable")


class _Moved(Exception):
    """A directory moved during the walk, so ``..`` no longer leads back to its parent."""


@dataclass
class _Frame:
    name: str
    ident: Ident
    fd: int | None
    subdirs: list[str] | None = None


@dataclass
class _Walk:
    guard: Guard
    fix: bool
    size: int = 0
    seconds: float = 0.0
    linked: set[Ident] = field(default_factory=set)
    visited: set[Ident] = field(default_factory=set)

    def run(self) -> None:
        start = time.monotonic()
        try:
            for place in self.guard.places:
                self._place(place)
        finally:
            self.seconds = time.monotonic() - start

    def _place(self, place: Place) -> None:
        try:
            top = os.open(place.path, _DIR)
        except (FileNotFoundError, NotADirectoryError):
            return
        except PermissionError:  # a command took our rights on the place itself
            if os.geteuid() == 0:
                raise
            parent = os.open(place.path.parent, _PATH | os.O_DIRECTORY)
            try:
                old = _chmod(parent, place.path.name, add=stat.S_IRWXU)
            finally:
                os.close(parent)
            if old is not None:
                self._note([], place, ".", f"u+rwx added so the host can scan it ({old:04o})")
            top = os.open(place.path, _DIR)
        st = os.fstat(top)
        if (st.st_dev, st.st_ino) in self.visited:  # nested in a place already walked
            os.close(top)
            return
        self.visited.add((st.st_dev, st.st_ino))
        frames = [_Frame("", (st.st_dev, st.st_ino), top)]
        lowest_open = 0  # frames[lowest_open:] hold open descriptors
        skip = dict(place.read_only)
        try:
            while frames:
                frame = frames[-1]
                assert frame.fd is not None
                if frame.subdirs is None:
                    frame.subdirs = self._entries(frame.fd, frames, place, skip)
                    skip = {}  # only at the top
                if frame.subdirs:
                    child = self._open_dir(frame.fd, frame.subdirs.pop())
                    if child is not None:
                        frames.append(child)
                        if len(frames) - lowest_open > MAX_OPEN:
                            fd = frames[lowest_open].fd
                            assert fd is not None
                            os.close(fd)
                            frames[lowest_open].fd = None
                            lowest_open += 1
                    continue
                if len(frames) > 1 and frames[-2].fd is None:
                    frames[-2].fd = _parent(frame.fd, frames[-2].ident)
                    lowest_open -= 1
                frames.pop()
                os.close(frame.fd)
        finally:
            for frame in frames:
                if frame.fd is not None:
                    os.close(frame.fd)

    def _open_dir(self, dir_fd: int, name: str) -> _Frame | None:
        try:
            fd = os.open(name, _DIR, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            return None  # gone, or no longer a directory
        except OSError as exc:  # ELOOP: a symlink now; EACCES: changed under us
            if self.fix and not _is_link_error(exc):
                raise
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) in self.visited:
            os.close(fd)
            return None
        self.visited.add((st.st_dev, st.st_ino))
        return _Frame(name, (st.st_dev, st.st_ino), fd)

    def _entries(
        self, dir_fd: int, frames: list[_Frame], place: Place, skip: dict[str, Ident]
    ) -> list[str]:
        """Count, and with ``fix`` scrub, the entries of one directory; its subdirectories."""
        subdirs = []
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                ident = (st.st_dev, st.st_ino)
                if skip.get(entry.name) == ident:
                    continue
                fmt = stat.S_IFMT(st.st_mode)
                if fmt == stat.S_IFREG and st.st_nlink > 1:
                    if ident in self.linked:
                        continue
                    self.linked.add(ident)
                self.size += max(st.st_size, MIN_CHARGE)
                if fmt == stat.S_IFDIR:
                    self._listable(dir_fd, entry.name, st, frames, place)
                    subdirs.append(entry.name)
                if not self.fix:
                    continue
                if fmt in _SPECIAL:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=dir_fd)
                        self._note(frames, place, entry.name, f"{_SPECIAL[fmt]} removed")
                elif st.st_mode & _SET_ID and fmt in (stat.S_IFREG, stat.S_IFDIR):
                    old = _chmod(dir_fd, entry.name, clear=_SET_ID)
                    if old is not None and old & _SET_ID:
                        self._note(frames, place, entry.name, _stripped(old))
        return subdirs

    def _listable(
        self, dir_fd: int, name: str, st: os.stat_result, frames: list[_Frame], place: Place
    ) -> None:
        """Not root: give one of our directories u+rwx, or its content stays out of sight."""
        uid = os.geteuid()
        if uid == 0 or st.st_uid != uid or st.st_mode & stat.S_IRWXU == stat.S_IRWXU:
            return
        old = _chmod(dir_fd, name, add=stat.S_IRWXU)
        if old is not None:
            self._note(frames, place, name, f"u+rwx added so the host can scan it ({old:04o})")

    def _note(self, frames: list[_Frame], place: Place, name: str, what: str) -> None:
        if len(self.guard.done) >= MAX_REPORTED:
            self.guard.more += 1
            return
        path = "/".join([f.name for f in frames[1:]] + [name])
        if place.shown:
            path = place.shown if path == "." else f"{place.shown.rstrip('/')}/{path}"
        if len(path) > MAX_SHOWN:
            path = "..." + path[-MAX_SHOWN:]
        if not path.isprintable():
            path = ascii(path)
        self.guard.done.append(f"{path}: {what}")


def _parent(child_fd: int, ident: Ident) -> int:
    """The directory ``..`` of ``child_fd``, which must still be ``ident``."""
    fd = os.open("..", _DIR, dir_fd=child_fd)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        raise _Moved
    return fd


def _chmod(dir_fd: int, name: str, *, clear: int = 0, add: int = 0) -> int | None:
    """Change the mode of a file or directory, never through a symlink; its old mode.

    None: it is gone, or is now something else (a symlink, a special file).
    """
    try:
        fd = os.open(name, _PATH, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return None
        old = stat.S_IMODE(st.st_mode)
        new = (old & ~clear) | add
        if new != old:
            # An O_PATH descriptor cannot be fchmod()ed; its /proc link names the inode.
            os.chmod(f"/proc/self/fd/{fd}", new)
        return old
    finally:
        os.close(fd)


def _stripped(old: int) -> str:
    names = [n for bit, n in ((stat.S_ISUID, "setuid"), (stat.S_ISGID, "setgid")) if old & bit]
    return f"{' and '.join(names)} bit{'s' * (len(names) > 1)} stripped ({old:04o})"


def _is_link_error(exc: OSError) -> bool:
    return exc.errno in (errno.ELOOP, errno.ENOTDIR)
