"""The version file a build writes (setuptools-scm, hatch-vcs) and a package imports: a stub.

``declared_version_files`` reads where a project says its build writes that file;
``write_version_files`` writes each missing one into a checkout (git-ignored) with the
declared fallback version: text made here, nothing of the repository runs.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

#: The version a stub says when the project declares no fallback (PEP 440: a local version).
UNKNOWN_VERSION = "0+unknown"
_VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")
_PATH = re.compile(r"[A-Za-z0-9._/-]{1,300}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: What the stub of a ``.py`` version file holds: the names setuptools-scm's template defines.
_PY_STUB = """\
# Written by Dark Factory where the build writes this file (no build ran); git-ignored.
__all__ = ["__version__", "__version_tuple__", "version", "version_tuple"]
__version__ = version = {version!r}
__version_tuple__ = version_tuple = {version_tuple!r}
__commit_id__ = commit_id = None
"""


class VersionFile(BaseModel):
    """A file the project's build writes, and the stub that stands in for it."""

    model_config = ConfigDict(frozen=True)

    #: Relative to the repository's root.
    path: str
    version: str
    content: str
    #: Where the project declares it (``pyproject.toml [tool.setuptools_scm] version_file``).
    declared: str


def declared_version_files(
    pyproject: dict[str, Any], use_scm_version: Any
) -> tuple[list[VersionFile], list[str]]:
    """(the version files ``pyproject`` (parsed) and ``setup.py``'s literal
    ``use_scm_version`` declare, notes on those that cannot have a stub)."""
    found: list[VersionFile] = []
    notes: list[str] = []
    tool = _table(pyproject.get("tool"))
    scm = _table(tool.get("setuptools_scm"))
    if scm:
        _setuptools_scm(scm, "pyproject.toml [tool.setuptools_scm]", found, notes)
    if isinstance(use_scm_version, dict):
        _setuptools_scm(use_scm_version, "setup.py use_scm_version", found, notes)
    hatch = _table(tool.get("hatch"))
    hook = _table(_table(_table(hatch.get("build")).get("hooks")).get("vcs"))
    if "version-file" in hook:
        version = _table(hatch.get("version"))
        fallback = version.get("fallback-version")
        fallback = _table(version.get("raw-options")).get("fallback_version", fallback)
        where = "pyproject.toml [tool.hatch.build.hooks.vcs] version-file"
        _add(found, notes, hook["version-file"], hook.get("template"), fallback, where)
    return found, notes


def write_version_files(workspace: Path, files: tuple[VersionFile, ...]) -> list[str]:
    """Write each of ``files`` missing in ``workspace`` (never over anything there, never
    through a symlink) and git-ignore it (``.git/info/exclude``); notes on what was done.

    With no ``.git`` (an exported tree) nothing can commit it; with a ``.git`` that cannot
    be updated the file is not written, so a change never carries it.
    """
    notes = []
    for vf in files:
        try:
            why_not = _write_new(workspace, vf)
        except OSError as exc:  # ELOOP, ENOTDIR: a symlink or a file on the way
            why_not = f"not written: {exc.strerror or exc}"
        if why_not is None:
            notes.append(
                f"{vf.path}: written with version {vf.version} in place of the file the build "
                f"writes ({vf.declared}); git-ignored"
            )
        elif why_not:
            notes.append(f"{vf.path} (the build's version file) {why_not}")
    return notes


# -- reading the declarations --------------------------------------------------------------


def _setuptools_scm(
    options: dict[str, Any], where: str, found: list[VersionFile], notes: list[str]
) -> None:
    key = "version_file" if "version_file" in options else "write_to"
    if key not in options:
        return
    root = options.get("root", ".")
    if not isinstance(root, str) or posixpath.normpath(root) != ".":
        notes.append(f"{where} {key}: relative to root {root!r}, not the repository's; no stub")
        return
    template = options.get(f"{key}_template")
    _add(found, notes, options[key], template, options.get("fallback_version"), f"{where} {key}")


def _add(
    found: list[VersionFile],
    notes: list[str],
    path: Any,
    template: Any,
    fallback: Any,
    where: str,
) -> None:
    rel = posixpath.normpath(path) if isinstance(path, str) else ""
    # Plain names only: the path is also a pattern in .git/info/exclude (no globs, no spaces).
    if (
        not _PATH.fullmatch(rel)
        or rel.startswith(("/", "../"))
        or rel in (".", "..")
        or rel.split("/")[0] == ".git"
    ):
        notes.append(f"{where}: {str(path)[:200]!r} is not a file in the repository; no stub")
        return
    version = fallback if isinstance(fallback, str) and _VERSION.fullmatch(fallback) else None
    version = version or UNKNOWN_VERSION
    content = _render(template, version) if isinstance(template, str) else None
    if isinstance(template, str) and content is None:
        notes.append(
            f"{where}: {rel} has a template with fields only the build fills in; the stub "
            "has setuptools-scm's default content instead"
        )
    if content is None and rel.endswith(".py"):
        content = _PY_STUB.format(version=version, version_tuple=_version_tuple(version))
    elif content is None and rel.endswith(".txt"):
        content = version + "\n"
    if content is None:
        notes.append(f"{where}: {rel} is neither .py nor .txt and has no template; no stub")
    elif all(vf.path != rel for vf in found):
        found.append(VersionFile(path=rel, version=version, content=content, declared=where))


def _render(template: str, version: str) -> str | None:
    """``template`` with ``{version}`` and ``{version_tuple}`` filled in (None: it has other
    fields, which only the build knows)."""
    values: dict[str, object] = {"version": version, "version_tuple": _version_tuple(version)}
    unknown = False

    def field(match: re.Match[str]) -> str:
        nonlocal unknown
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        name, _, conversion = match.group(1).partition("!")
        if name not in values or conversion not in ("", "r", "s"):
            unknown = True
            return ""
        return repr(values[name]) if conversion == "r" else str(values[name])

    text = re.sub(r"\{\{|\}\}|\{([^{}]*)\}", field, template)
    return None if unknown else text


def _version_tuple(version: str) -> tuple[int | str, ...]:
    """As setuptools-scm makes it: ``1.0.dev0`` is ``(1, 0, 'dev0')``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.+]", version))


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- writing a stub ------------------------------------------------------------------------


def _write_new(workspace: Path, vf: VersionFile) -> str | None:
    """Create ``workspace/vf.path`` with the stub, git-ignored first. None: written; "": it
    is there already (nothing to say); else why it is not written."""
    *dirs, name = vf.path.split("/")
    fd = os.open(workspace, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the host's own directory
    try:
        for part in dirs:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return f"not written: its directory {'/'.join(dirs)} is not in the checkout"
            os.close(fd)
            fd = nxt
        if _exists(name, fd):
            return ""
        if not _ignore(workspace, vf.path):
            return "not written: the workspace's .git is not a directory Dark Factory can write"
        out = os.open(name, _NEW_FILE, 0o644, dir_fd=fd)  # O_EXCL: never over anything
        with os.fdopen(out, "w", encoding="utf-8") as f:
            f.write(vf.content)
        return None
    finally:
        os.close(fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _ignore(workspace: Path, rel: str) -> bool:
    """``/rel`` in ``workspace/.git/info/exclude`` (True: it is, or there is no ``.git``)."""
    try:
        git = os.open(workspace / ".git", _DIR_FLAGS)
    except FileNotFoundError:
        return True
    except OSError:  # a .git file (a worktree) or a link: not ours to write
        return False
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir("info", 0o755, dir_fd=git)
        info = os.open("info", _DIR_FLAGS, dir_fd=git)
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open("exclude", flags, 0o644, dir_fd=info)
        finally:
            os.close(info)
    finally:
        os.close(git)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        text = f.read()
        line = "/" + rel
        if line not in text.splitlines():
            f.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")
    return True
