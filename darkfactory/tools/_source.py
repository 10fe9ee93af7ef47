"""The workspace's files as ``repo_map`` and ``search_code`` see them: listed and read through
``hostio`` (no symlink followed, sizes capped), skipping VCS data, caches and virtualenvs."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from darkfactory.workspace import hostio
from darkfactory.workspace.context import RunContext
from darkfactory.workspace.paths import SKIP_DIRS as LISTING_SKIP_DIRS
from darkfactory.workspace.paths import PathRefused, quote, resolve

#: Directories never entered: those list_files skips, and virtualenvs / installed packages.
SKIP_DIRS = (
    hostio.SKIP_DIRS
    | LISTING_SKIP_DIRS
    | {"venv", ".eggs", "site-packages", "__pypackages__", ".direnv"}
)
#: Most bytes of one file, and of all files together, one call reads.
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 48 * 1024 * 1024
#: Most directory entries one call visits.
MAX_ENTRIES = 20_000


@dataclass
class Source:
    """The files under one workspace path, and the count of what was not read, by reason."""

    base: str
    files: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    #: The walk stopped at ``MAX_ENTRIES``: files after it were not seen.
    truncated: bool = False

    def skipped_note(self) -> str:
        """``[not read: binary files: 1; symlinks (never followed): 2]`` or ``""``."""
        parts = [f"{why}: {n}" for why, n in sorted(self.skipped.items())]
        if self.truncated:
            parts.append(f"anything past the first {MAX_ENTRIES} entries (give a subdirectory)")
        return f"[not read: {'; '.join(parts)}]" if parts else ""


def count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def start(ctx: RunContext, path: str) -> tuple[str, hostio.Kind]:
    """The workspace-relative POSIX path ``path`` names ('' for the root) and its kind.

    ``PathRefused`` for a path outside the workspace, a missing one, or one that is or goes
    through a symlink: these tools never follow a link, even one inside the workspace.
    """
    path = path.strip() or "."
    resolve(ctx, path, write=False)  # the readable refusals: absolute, '..', NUL, links out
    rel = PurePosixPath(os.path.normpath(path)).as_posix()
    rel = "" if rel == "." else rel
    kind = hostio.kind_of(ctx.workspace, rel or ".")
    if kind is None:
        raise PathRefused(
            f"{quote(path)} does not exist or goes through a symlink (never followed here); "
            "list_files shows the files there are."
        )
    if kind == "symlink":
        raise PathRefused(f"{quote(path)} is a symlink, never followed here; give the real path.")
    if kind == "other":
        raise PathRefused(f"{quote(path)} is not a regular file or directory.")
    if any(part in SKIP_DIRS for part in PurePosixPath(rel).parts):
        raise PathRefused(f"{quote(path)} is inside a skipped directory (VCS data, cache, venv).")
    return rel, kind


def _entries(ctx: RunContext, rel: str, kind: hostio.Kind, src: Source) -> Iterator[hostio.Entry]:
    """The non-directory entries under ``rel`` (paths workspace-relative), in a stable order."""
    if kind == "file":
        yield hostio.Entry(rel, "file", 0, 0)
        return
    prefix = f"{rel}/" if rel else ""
    venvs: list[str] = []  # a virtualenv under any name holds a pyvenv.cfg
    try:
        for entry in hostio.walk(
            ctx.workspace, rel or ".", skip_dirs=SKIP_DIRS, max_entries=MAX_ENTRIES
        ):
            path = prefix + entry.path
            if entry.path.endswith("/pyvenv.cfg"):
                venvs.append(path.removesuffix("pyvenv.cfg"))
            if entry.kind != "dir" and not path.startswith(tuple(venvs)):
                yield hostio.Entry(path, entry.kind, entry.size, entry.mode)
    except hostio.Refused:
        src.truncated = True


def read_source(ctx: RunContext, path: str, accept: Callable[[str], bool]) -> Source:
    """The text files under workspace path ``path`` whose workspace-relative paths
    ``accept`` takes; the rest is counted in ``skipped``."""
    rel, kind = start(ctx, path)
    src = Source(base=rel)
    total = 0
    for entry in _entries(ctx, rel, kind, src):
        if not accept(entry.path):
            continue
        if entry.kind != "file":
            src.skipped[_WHY.get(entry.kind, "special files")] += 1
            continue
        try:
            data = hostio.read_bytes(ctx.workspace, entry.path, limit=MAX_FILE_BYTES)
        except FileNotFoundError:  # removed while we walked
            continue
        except hostio.Refused as refused:
            src.skipped[next((w for k, w in _WHY.items() if k in refused.why), refused.why)] += 1
            continue
        if b"\0" in data[:8192]:
            src.skipped["binary files"] += 1
            continue
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            src.skipped[f"files past the first {MAX_TOTAL_BYTES // 2**20} MiB"] += 1
            continue
        src.files.append((entry.path, data))
    return src


#: How a refusal is counted, by a word of hostio's reason.
_WHY = {
    "symlink": "symlinks (never followed)",
    "limit": f"files over {MAX_FILE_BYTES // 2**20} MiB",
    "hard link": "hard links",
}
