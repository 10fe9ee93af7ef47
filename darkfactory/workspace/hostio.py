"""The one way the host reads what a model wrote: no symlinks, regular files only, sizes capped.

Every host read, listing, hash or copy of workspace content (and of run directories a
sandbox could write) goes through here; ``tests/test_hostio.py`` proves each refusal.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from darkfactory.errors import DarkFactoryError

#: Largest single file the host reads.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Most entries one walk visits, and most bytes one tree copy or hash reads.
MAX_ENTRIES = 20_000
MAX_TREE_BYTES = 64 * 1024 * 1024
#: Directories a walk never enters unless asked: VCS data and caches.
SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})

Kind = Literal["file", "dir", "symlink", "other"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must never wait for a writer (it is refused right after).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class Refused(DarkFactoryError):
    """A workspace entry the host will not read: a symlink, not a regular file, too big."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"{path}: {why}")


@dataclass(frozen=True)
class Entry:
    """One entry of a walk: its path relative to the root, its kind, and its size in bytes."""

    path: str
    kind: Kind
    size: int
    mode: int


@dataclass
class Copied:
    """What ``copy_tree`` copied, and what it refused (path, why)."""

    files: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def _parts(rel: str | PurePosixPath) -> tuple[str, ...]:
    text = str(rel)
    if "\0" in text or text.startswith("/"):
        raise Refused(text, "not a relative path")
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise Refused(text, "leaves its root ('..')")
    return parts


def _kind(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _open_dir(root: Path, parts: tuple[str, ...], shown: str) -> int:
    """An fd of ``root/parts``, every component opened without following a symlink."""
    fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the root is the host's own directory
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as exc:  # ELOOP, ENOTDIR: a symlink or a file on the way
                raise Refused(shown, f"{part!r} on the way is a symlink or not a directory") from (
                    exc
                )
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, shown: str, limit: int) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise Refused(shown, f"not a regular file ({_kind(st.st_mode)})")
    if st.st_nlink > 1:
        raise Refused(shown, "a hard link (it may be another file's content)")
    if st.st_size > limit:
        raise Refused(shown, f"{st.st_size} bytes, over the {limit}-byte limit")
    chunks, total = [], 0
    while chunk := os.read(fd, 1 << 16):
        total += len(chunk)
        if total > limit:
            raise Refused(shown, f"over the {limit}-byte limit (it grew while read)")
        chunks.append(chunk)
    return b"".join(chunks)


def read_bytes(root: Path, rel: str | PurePosixPath, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``root/rel``; ``Refused`` or ``FileNotFoundError``."""
    parts = _parts(rel)
    if not parts:
        raise Refused(str(rel), "is the root directory, not a file")
    shown = "/".join(parts)
    dfd = _open_dir(Path(root), parts[:-1], shown)
    try:
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            kind = _kind(os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False).st_mode)
            why = "not readable" if kind == "file" else f"a {kind}, not a regular file"
            raise Refused(shown, why) from exc
    finally:
        os.close(dfd)
    try:
        return _read_fd(fd, shown, limit)
    finally:
        os.close(fd)


def read_text(
    root: Path, rel: str | PurePosixPath, *, limit: int = MAX_FILE_BYTES, errors: str = "strict"
) -> str:
    """``read_bytes`` decoded as UTF-8 (``errors`` as for ``bytes.decode``)."""
    data = read_bytes(root, rel, limit=limit)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise Refused(str(rel), f"not UTF-8 text (byte {exc.start})") from None


def kind_of(root: Path, rel: str | PurePosixPath) -> Kind | None:
    """What ``root/rel`` is without following it (None: missing or behind a symlink)."""
    parts = _parts(rel)
    if not parts:
        return "dir"
    try:
        dfd = _open_dir(Path(root), parts[:-1], "/".join(parts))
    except (Refused, FileNotFoundError):
        return None
    try:
        return _kind(os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None
    finally:
        os.close(dfd)


def is_file(root: Path, rel: str | PurePosixPath) -> bool:
    """``root/rel`` is a regular file reached without any symlink."""
    return kind_of(root, rel) == "file"


def walk(
    root: Path,
    rel: str | PurePosixPath = ".",
    *,
    skip_dirs: frozenset[str] = SKIP_DIRS,
    max_entries: int = MAX_ENTRIES,
) -> Iterator[Entry]:
    """Every entry under ``root/rel``, sorted per directory, never following a symlink.

    Paths are relative to ``rel``. Directories named in ``skip_dirs`` are listed, not
    entered. More than ``max_entries`` entries is ``Refused``. A missing or linked start
    yields nothing.
    """
    parts = _parts(rel)
    try:
        top = _open_dir(Path(root), parts, "/".join(parts) or ".")
    except (Refused, FileNotFoundError, NotADirectoryError):
        return
    stack: list[tuple[int, str]] = [(top, "")]
    seen = 0
    try:
        while stack:
            fd, prefix = stack.pop()
            try:
                with os.scandir(fd) as it:
                    items = sorted(it, key=lambda e: e.name)
                subdirs = []
                for item in items:
                    seen += 1
                    if seen > max_entries:
                        raise Refused(str(rel), f"more than {max_entries} entries")
                    st = item.stat(follow_symlinks=False)
                    path = prefix + item.name
                    kind = _kind(st.st_mode)
                    yield Entry(path, kind, st.st_size, st.st_mode)
                    if kind == "dir" and item.name not in skip_dirs:
                        subdirs.append(item.name)
                for name in reversed(subdirs):
                    try:
                        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:  # replaced while we walked: not entered
                        continue
                    stack.append((sub, f"{prefix}{name}/"))
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)


def files(
    root: Path,
    rel: str | PurePosixPath = ".",
    *,
    suffix: str = "",
    limit: int = MAX_FILE_BYTES,
    max_bytes: int = MAX_TREE_BYTES,
) -> tuple[dict[str, bytes], list[tuple[str, str]]]:
    """(the content of every regular file under ``root/rel`` ending in ``suffix``, refused).

    Keys are relative to ``rel``, in walk order; symlinks, other non-regular entries and
    files over ``limit`` are in the refused list with the reason, never read.
    """
    found: dict[str, bytes] = {}
    refused: list[tuple[str, str]] = []
    base = PurePosixPath(*_parts(rel)) if _parts(rel) else PurePosixPath(".")
    total = 0
    for entry in walk(root, rel):
        if entry.kind == "dir" or not entry.path.endswith(suffix):
            continue
        if entry.kind != "file":
            refused.append((entry.path, f"a {entry.kind}, not a regular file"))
            continue
        try:
            data = read_bytes(root, base / entry.path, limit=limit)
        except Refused as exc:
            refused.append((entry.path, exc.why))
            continue
        except FileNotFoundError:
            continue
        total += len(data)
        if total > max_bytes:
            raise Refused(str(rel), f"more than {max_bytes} bytes in all")
        found[entry.path] = data
    return found, refused


def hash_tree(root: Path, rel: str | PurePosixPath = ".") -> dict[str, str]:
    """sha256 of every regular file under ``root/rel``; anything else hashes as its kind.

    So a symlink or FIFO where a file was never compares equal to the file.
    """
    found, refused = files(root, rel)
    hashes = {path: hashlib.sha256(data).hexdigest() for path, data in found.items()}
    hashes.update({path: f"refused: {why}" for path, why in refused})
    return dict(sorted(hashes.items()))


def remove(path: Path) -> None:
    """Remove ``path`` whatever it is, never following a symlink (nothing if missing)."""
    import shutil

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)  # fd-based on Linux: links inside are removed, not followed
    else:
        os.unlink(path)


def copy_tree(
    src_root: Path,
    rel: str | PurePosixPath,
    dst: Path,
    *,
    skip_dirs: frozenset[str] = SKIP_DIRS,
    keep_symlinks: bool = False,
    limit: int = MAX_FILE_BYTES,
    max_bytes: int = MAX_TREE_BYTES,
) -> Copied:
    """Copy the directories and regular files under ``src_root/rel`` into a new ``dst``.

    Symlinks are refused (or, with ``keep_symlinks``, for a copy only a sandbox will use,
    recreated as the same link, never followed); FIFOs, sockets, devices, hard links and
    files over ``limit`` are refused. Files get mode 0644, or 0755 if any execute bit was
    set: no setuid, setgid or sticky bit survives a copy.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=False)
    base = PurePosixPath(*_parts(rel)) if _parts(rel) else PurePosixPath(".")
    out = Copied()
    total = 0
    for entry in walk(src_root, rel, skip_dirs=frozenset()):
        top = entry.path.split("/")
        if any(p in skip_dirs for p in top):
            continue
        target = dst / entry.path
        if entry.kind == "dir":
            target.mkdir(mode=0o755, exist_ok=True)
        elif entry.kind == "symlink" and keep_symlinks:
            parts = _parts(base / entry.path)
            dfd = _open_dir(Path(src_root), parts[:-1], entry.path)
            try:
                os.symlink(os.readlink(parts[-1], dir_fd=dfd), target)
            finally:
                os.close(dfd)
        elif entry.kind != "file":
            out.refused.append((entry.path, f"a {entry.kind}, not a regular file"))
        else:
            try:
                data = read_bytes(src_root, base / entry.path, limit=limit)
            except Refused as exc:
                out.refused.append((entry.path, exc.why))
                continue
            except FileNotFoundError:
                continue
            total += len(data)
            if total > max_bytes:
                raise Refused(str(rel), f"more than {max_bytes} bytes in all")
            target.write_bytes(data)
            target.chmod(0o755 if entry.mode & 0o111 else 0o644)
            out.files.append(entry.path)
    return out
