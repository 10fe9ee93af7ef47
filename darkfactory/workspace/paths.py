"""Keep every file operation an agent asks for inside the run's workspace.

``resolve`` turns a model-chosen, workspace-relative path into the real path the operation
will touch, or raises ``PathRefused`` whose message tells the model what to do instead. It
checks the path as written (absolute, ``..``, NUL) and again after symlinks are resolved (a
link to a file, a linked directory on the way, a dangling link, a chain of links), and for
writes refuses anything under a protected path (``acceptance/``, ``.git/``) however it is
reached, and any ``.git`` component at any depth (a nested repository). Reading, writing
and listing helpers that the file tools share live here too, so the tools stay thin and
this module never imports CrewAI.

Writes go through a temporary file and ``os.replace``, so a hard link to a protected file is
replaced, never written through. What this does not defend against: another process that
swaps a directory for a symlink between the check and the use (the check is not atomic);
keep the sandbox from running while a file tool works if that matters.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from darkfactory.errors import DarkFactoryError
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace.context import DEFAULT_PROTECTED, RunContext

#: Directories ``iter_files`` does not descend into: VCS data, caches, virtualenvs.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        ".venv",
        "node_modules",
    }
)
SKIP_SUFFIXES = (".egg-info", ".pyc", ".pyo")

#: Largest file read_file / edit_file will load.
MAX_TEXT_BYTES = 10 * 1024 * 1024

_WHY_PROTECTED = {
    "acceptance": "the acceptance tests judge the result and must not be changed; "
    "change the code under test instead",
    ".git": "git metadata is managed by Dark Factory, not by agents",
}


class PathRefused(DarkFactoryError):
    """A path or file operation an agent may not (or cannot) do; the message says why
    and what to do instead. Tools hand it back to the model as ``ERROR: <message>``."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def quote(path: str, limit: int = 200) -> str:
    """``path`` quoted for a message, cut to ``limit`` characters."""
    if len(path) > limit:
        path = path[:limit] + "..."
    return repr(path)


def workspace_root(ctx_or_root: RunContext | str | os.PathLike[str]) -> Path:
    """The workspace directory, symlinks resolved."""
    if isinstance(ctx_or_root, RunContext):
        return ctx_or_root.workspace  # resolved by RunContext
    return Path(os.path.realpath(ctx_or_root))


def _root_and_protected(
    ctx_or_root: RunContext | str | os.PathLike[str], protected: Iterable[str] | None
) -> tuple[Path, tuple[PurePosixPath, ...]]:
    root = workspace_root(ctx_or_root)
    if protected is not None:
        entries = protected
    elif isinstance(ctx_or_root, RunContext):
        entries = ctx_or_root.protected
    else:
        entries = DEFAULT_PROTECTED
    normalised = []
    for entry in entries:
        p = PurePosixPath(os.path.normpath(entry))
        if p.is_absolute() or (p.parts and p.parts[0] == ".."):
            raise ValueError(f"protected path {entry!r} must be relative to the workspace")
        normalised.append(p)
    return root, tuple(normalised)


def _normalise(rel_path: str, root: Path) -> PurePosixPath:
    """The path as written, checked and normalised lexically ('.' is the root)."""
    if not isinstance(rel_path, str):
        raise TypeError(f"path must be a str, not {type(rel_path).__name__}")
    if not rel_path.strip():
        raise PathRefused(
            "the path is empty; give a path relative to the workspace root, "
            "e.g. 'src/app.py' ('.' is the root itself)."
        )
    if "\0" in rel_path:
        raise PathRefused(
            f"the path {quote(rel_path)} contains a NUL byte; give a plain path relative to "
            "the workspace root, e.g. 'src/app.py'."
        )
    if os.path.isabs(rel_path):
        hint = "e.g. 'src/app.py' ('.' is the workspace root)"
        for candidate in (os.path.normpath(rel_path), os.path.realpath(rel_path)):
            try:
                inside = Path(candidate).relative_to(root)
            except ValueError:
                continue
            hint = f"so use {quote(inside.as_posix() or '.')} instead"
            break
        raise PathRefused(
            f"{quote(rel_path)} is an absolute path; paths are relative to the workspace "
            f"root, {hint}."
        )
    norm = PurePosixPath(os.path.normpath(rel_path))
    if norm.parts and norm.parts[0] == "..":
        raise PathRefused(
            f"{quote(rel_path)} leaves the workspace (it normalises to "
            f"{quote(norm.as_posix())}); only files inside the workspace can be used. "
            "Give a path relative to the workspace root that does not go above it."
        )
    return norm


def _under(path: PurePosixPath, prefix: PurePosixPath) -> bool:
    return path.parts[: len(prefix.parts)] == prefix.parts


def _check_protected(
    root: Path, protected: tuple[PurePosixPath, ...], shown: str, lexical: PurePosixPath, real: Path
) -> None:
    real_rel = PurePosixPath(real.relative_to(root).as_posix())
    for entry in protected:
        # The entry itself may be a symlink to somewhere else in the workspace.
        targets = {entry}
        entry_real = Path(os.path.realpath(root / entry))
        if entry_real.is_relative_to(root):
            targets.add(PurePosixPath(entry_real.relative_to(root).as_posix()))
        why = _WHY_PROTECTED.get(entry.as_posix(), "it is protected for this run")
        if _under(lexical, entry):
            raise PathRefused(
                f"{shown} is inside {quote(entry.as_posix() + '/')}, which agents may read "
                f"but not write or delete: {why}."
            )
        if any(_under(real_rel, t) for t in targets):
            raise PathRefused(
                f"{shown} leads through a symlink to {quote(real_rel.as_posix())}, inside "
                f"{quote(entry.as_posix() + '/')}, which agents may read but not write or "
                f"delete: {why}."
            )
    # A repository nested anywhere (``vendor/.git``) would be committed as a submodule and
    # its config (``core.fsmonitor``, filters) run by the git that looks into it.
    for path in (lexical, real_rel):
        part = next((p for p in path.parts if gitrepo.is_dotgit(p)), None)
        if part is None:
            continue
        via = "" if path is lexical else f" leads through a symlink to {quote(str(path))}, which"
        raise PathRefused(
            f"{shown}{via} has a {quote(part)} component: {_WHY_PROTECTED['.git']}, and nested "
            "repositories are not kept (every .git below the workspace root is deleted before "
            "each commit). Write the files themselves into a plain directory instead."
        )


def resolve(
    ctx_or_root: RunContext | str | os.PathLike[str],
    rel_path: str,
    *,
    write: bool,
    protected: Iterable[str] | None = None,
    follow_symlinks: bool = True,
) -> Path:
    """The real path inside the workspace that ``rel_path`` names, or ``PathRefused``.

    ``ctx_or_root`` is the run's context or a workspace directory. ``protected`` defaults to
    the context's protected set (``DEFAULT_PROTECTED`` for a bare directory); it is only
    checked when ``write`` is true. With ``follow_symlinks=False`` the last component is
    not resolved, so the returned path is the link itself (what ``delete_file`` removes);
    directories on the way are still resolved and checked.
    """
    root, prot = _root_and_protected(ctx_or_root, protected)
    norm = _normalise(rel_path, root)
    shown = quote(rel_path)
    lexical = root.joinpath(*norm.parts)
    if follow_symlinks or lexical == root:
        real = Path(os.path.realpath(lexical))
    else:
        real = Path(os.path.realpath(lexical.parent)) / lexical.name
    if not real.is_relative_to(root):
        raise PathRefused(
            f"{shown} leads through a symlink to a place outside the workspace; only files "
            "inside the workspace can be used. Use the path of a real file inside the "
            "workspace instead (list_files marks symlinks)."
        )
    # realpath stops resolving at a symlink loop and leaves the link in its result.
    on_the_way = real.parents if not follow_symlinks else (real, *real.parents)
    for p in on_the_way:
        if p == root:
            break
        if p.is_symlink():
            raise PathRefused(
                f"{shown} goes through a symlink loop at "
                f"{quote(p.relative_to(root).as_posix())}; use a path without it."
            )
    if write:
        if real == root:
            raise PathRefused(
                f"{shown} is the workspace root itself; name a file inside it, e.g. 'src/app.py'."
            )
        _check_protected(root, prot, shown, norm, real)
    return real


def relative(ctx_or_root: RunContext | str | os.PathLike[str], path: Path) -> str:
    """``path`` (a result of ``resolve``) as a workspace-relative POSIX path."""
    return path.relative_to(workspace_root(ctx_or_root)).as_posix()


# -- listing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One listed file: its workspace-relative path and size in bytes."""

    path: str
    size: int
    is_symlink: bool = False


def _skipped(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(SKIP_SUFFIXES) or name == ".DS_Store"


def iter_files(
    ctx_or_root: RunContext | str | os.PathLike[str], directory: str = "."
) -> Iterator[FileEntry]:
    """Files under ``directory`` (workspace-relative), recursively, in a stable order.

    Skips VCS data and caches (``SKIP_DIRS``, ``*.egg-info``, ``*.pyc``). Symlinks are
    listed (``is_symlink``, size of the link) but never followed. Stops lazily, so a caller
    can take the first N entries of a huge tree cheaply.
    """
    root = workspace_root(ctx_or_root)
    start = resolve(ctx_or_root, directory, write=False)
    if not start.exists():
        raise PathRefused(
            f"{quote(directory)} does not exist; list_files with no path lists the whole workspace."
        )
    if not start.is_dir():
        raise PathRefused(f"{quote(directory)} is a file, not a directory; use read_file on it.")
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        linked_dirs = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d) and d not in linked_dirs)
        for name in sorted(filenames + linked_dirs):
            if _skipped(name):
                continue
            p = here / name
            try:
                st = p.lstat()
            except FileNotFoundError:  # removed while we walked
                continue
            yield FileEntry(p.relative_to(root).as_posix(), st.st_size, stat.S_ISLNK(st.st_mode))


# -- reading and writing text -------------------------------------------------------------


def read_text(path: Path, shown: str, *, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (from ``resolve``), or ``PathRefused``.

    ``shown`` is how the message names the file (the path the model gave).
    """
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise PathRefused(
            f"{shown} does not exist; list_files shows the files there are."
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise PathRefused(f"{shown} is a directory; use list_files to see what is in it.")
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(f"{shown} is not a regular file (a device, socket or pipe).")
    if st.st_size > limit:
        raise PathRefused(
            f"{shown} is {st.st_size} bytes, more than the {limit}-byte limit for text files; "
            "it is probably generated data, not source to read or edit."
        )
    try:
        data = path.read_bytes()
    except PermissionError:
        raise PathRefused(f"{shown} is not readable (permission denied).") from None
    if b"\0" in data[:8192]:
        raise PathRefused(
            f"{shown} is a binary file ({len(data)} bytes); only text files can be used."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PathRefused(
            f"{shown} is not UTF-8 text (invalid byte at offset {exc.start}); only UTF-8 "
            "text files can be used."
        ) from None


def write_text(path: Path, text: str, shown: str) -> int:
    """Write ``text`` as UTF-8 to ``path`` (from ``resolve``), creating parent directories.

    Writes a temporary file next to ``path`` and renames it over ``path``, so a reader never
    sees half a file and a hard link to another file is replaced, not written through. An
    existing file keeps its permission bits. Returns the number of bytes written.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PathRefused(
            f"the content for {shown} is not valid Unicode text (character {exc.start} is a "
            "lone surrogate); send plain text."
        ) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PathRefused(
            f"cannot create the directories for {shown}: part of the path is an existing file."
        ) from None
    mode = 0o644
    try:
        st = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(st.st_mode):
            raise PathRefused(f"{shown} is a directory; give the path of a file.")
        if not stat.S_ISREG(st.st_mode):
            raise PathRefused(f"{shown} is not a regular file (a device, socket or pipe).")
        mode = stat.S_IMODE(st.st_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def split_lines(text: str) -> list[str]:
    """``text``'s lines as editors number them: split on ``\\n`` only, no final empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def numbered(lines: Iterable[str], first: int, *, max_line_chars: int = 2000) -> str:
    """``lines`` prefixed with their 1-based numbers (starting at ``first``), tab-separated."""
    out = []
    for n, line in enumerate(lines, start=first):
        line = line.removesuffix("\r")
        if len(line) > max_line_chars:
            line = f"{line[:max_line_chars]}... [line cut: {len(line)} characters]"
        out.append(f"{n:>6}\t{line}")
    return "\n".join(out)
