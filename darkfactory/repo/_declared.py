"""What a repository declares it needs, read statically through ``hostio``: nothing is run.

``pyproject.toml`` (PEP 621, dependency groups), ``setup.cfg``, ``setup.py`` (its ``ast``:
literal lists only, never executed) and requirements files. Each requirement is checked as
``engine.deps`` checks one: anything that would steer the host's pip (options, URLs, paths,
``$``) is left out with the reason.

Which requirements files count (``requirements_file_group``): ``requirements*.txt``,
``*-requirements.txt`` and ``requirements/*.txt``, by the words of their name (split at
``-``, ``_``, ``.``; ``requirements``, ``py3``, numbers, ``pinned``, ``lock`` say nothing):
a word of ``SKIPPED_WORDS`` (docs, lint, typing, build...) skips the file, with the reason
in ``skipped``; else a word of ``TEST_WORDS`` makes it a test file, one of ``DEV_WORDS`` a
developer's (optional), and no word but ``RUNTIME_WORDS`` (``requirements.txt``,
``requirements/base.txt``) a runtime one; any other name is skipped. ``-r`` is followed.
"""

from __future__ import annotations

import configparser
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import darkfactory.engine.deps as deps
from darkfactory.repo._setup_py import setup_keywords
from darkfactory.repo.version_file import VersionFile, declared_version_files
from darkfactory.workspace import hostio

Group = Literal["runtime", "test", "dev"]
GROUPS: tuple[Group, ...] = ("runtime", "test", "dev")
#: Extras and dependency groups whose requirements the tests need, and those only a developer does.
TEST_EXTRAS = ("test", "tests", "testing")
DEV_EXTRAS = ("dev", "develop", "development")
#: The project itself in a requirements file (``-e .``, ``.[test]``): on PYTHONPATH, not installed.
_SELF = re.compile(r"(?:file:)?\.(?:/)?(?:\[(?P<extras>[^\]]*)\])?")
_MAX_INCLUDE_DEPTH = 8
#: The words of a requirements file's name (module doc) that make it a runtime, test or
#: developer file, that say nothing, and that skip it (with the reason).
RUNTIME_WORDS = frozenset(
    {"base", "main", "runtime", "install", "prod", "production", "common", "core", "default"}
)
TEST_WORDS = frozenset({"test", "tests", "testing", "ci"})
DEV_WORDS = frozenset({"dev", "develop", "development"})
_NEUTRAL = re.compile(r"requirements?|reqs?|py\d*|python\d*|\d+|pinned|lock|locked|frozen")
SKIPPED_WORDS = {
    **dict.fromkeys(("doc", "docs", "documentation", "sphinx", "mkdocs"), "documentation"),
    **dict.fromkeys(
        ("lint", "linting", "style", "format", "flake8", "ruff", "pylint", "precommit", "commit"),
        "linting and style",
    ),
    **dict.fromkeys(("typing", "types", "mypy", "pyright", "typecheck"), "type checking"),
    **dict.fromkeys(
        ("build", "release", "dist", "packaging", "publish", "deploy", "wheel"),
        "building and releasing",
    ),
    **dict.fromkeys(("bench", "benchmark", "benchmarks", "perf"), "benchmarks"),
    **dict.fromkeys(("tox", "nox", "tools", "tooling", "coverage"), "developer tooling"),
}


@dataclass
class Declared:
    """Everything read: the project's name, its requirements by group, and what was left out."""

    name: str | None = None
    version: str | None = None
    requires_python: str | None = None
    requirements: dict[Group, list[str]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    #: Every extra (``optional-dependencies``, ``extras_require``): for ``name[extra]``.
    extras: dict[str, list[str]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    #: ``where: entry: why`` for each requirement left out.
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Files the build writes (setuptools-scm, hatch-vcs ``version_file``): stubs stand in.
    version_files: list[VersionFile] = field(default_factory=list)

    def add_version_files(self, pyproject: dict[str, Any], use_scm_version: Any) -> None:
        """What ``pyproject`` (parsed) or setup.py's ``use_scm_version`` says the build writes."""
        files, notes = declared_version_files(pyproject, use_scm_version)
        known = {f.path for f in self.version_files}
        self.version_files += [f for f in files if f.path not in known]
        self.notes += notes

    def add(self, group: Group, where: str, entry: str) -> None:
        entry = entry.strip()
        if not entry:
            return
        why = deps.refusal(entry)
        if why is None:
            self.requirements[group].append(deps.pip_line(entry))
        else:
            self.skipped.append(f"{where}: {entry[:200]!r}: {why}")

    def resolved(self) -> dict[Group, list[str]]:
        """The requirements by group: the project's own name expanded to its extras, each once."""
        out: dict[Group, list[str]] = {g: [] for g in GROUPS}
        seen: set[str] = set()
        me = canonicalize_name(self.name) if self.name else None
        for group in GROUPS:
            todo = list(self.requirements[group])
            done_extras: set[str] = set()
            while todo:
                line = todo.pop(0)
                req = Requirement(line)
                if me is not None and canonicalize_name(req.name) == me:
                    for extra in sorted(req.extras - done_extras):
                        done_extras.add(extra)
                        todo[:0] = [deps.pip_line(e) for e in self.extras.get(extra, [])]
                    continue
                if line not in seen:
                    seen.add(line)
                    out[group].append(line)
        return out


def is_requirements_file(path: str) -> bool:
    """``requirements*.txt`` or ``*-requirements.txt`` at the root, or ``requirements/*.txt``."""
    name = path.rsplit("/", 1)[-1].lower()
    if "/" not in path:
        return re.fullmatch(r"(\w+[-_])?requirements([-_.]\w+)*\.txt", name) is not None
    in_dir = path.count("/") == 1 and path.lower().startswith("requirements/")
    return in_dir and name.endswith(".txt")


def requirements_file_group(path: str) -> tuple[Group | None, str]:
    """(the group of the requirements file at ``path``, "") or (None, why it is skipped):
    the rule of the module doc."""
    stem = path.rsplit("/", 1)[-1].lower().removesuffix(".txt")
    words = [w for w in re.split(r"[-_.]+", stem) if w and not _NEUTRAL.fullmatch(w)]
    for word in words:
        if word in SKIPPED_WORDS:
            return None, f"{SKIPPED_WORDS[word]}, not what the tests need"
    if any(w in TEST_WORDS for w in words):
        return "test", ""
    if any(w in DEV_WORDS for w in words):
        return "dev", ""
    if all(w in RUNTIME_WORDS for w in words):
        return "runtime", ""
    return None, "its name says neither runtime nor tests"


def read_declared(root: Path, requirement_files: list[tuple[str, Group]]) -> Declared:
    """What the repository at ``root`` declares (module doc); ``requirement_files`` by group.

    The files are read runtime first, then test, then developer: a file a developer file
    includes (``-r tests.txt``) keeps the group it has of its own."""
    found = Declared()
    text = _read(root, "pyproject.toml", found)
    if text is not None:
        _pyproject(text, found)
    text = _read(root, "setup.cfg", found)
    if text is not None:
        _setup_cfg(text, found)
    text = _read(root, "setup.py", found)
    if text is not None:
        _setup_py(text, found)
    seen: set[str] = set()
    for rel, group in sorted(requirement_files, key=lambda f: (GROUPS.index(f[1]), f[0])):
        _requirements_file(root, rel, group, found, seen, 0)
    return found


def _read(root: Path, rel: str, found: Declared) -> str | None:
    kind = hostio.kind_of(root, rel)
    if kind is None:
        return None
    try:
        text = hostio.read_text(root, rel, errors="replace")
    except hostio.Refused as exc:
        found.notes.append(f"{rel} is not read: {exc.why}")
        return None
    except FileNotFoundError:
        return None
    found.sources.append(rel)
    return text


# -- pyproject.toml ------------------------------------------------------------------------


def _pyproject(text: str, found: Declared) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found.notes.append(f"pyproject.toml is not valid TOML ({exc}); it is not read")
        return
    found.add_version_files(data, None)
    project = data.get("project")
    if isinstance(project, dict):
        found.name = _text(project.get("name")) or found.name
        found.version = _text(project.get("version")) or found.version
        found.requires_python = _text(project.get("requires-python")) or found.requires_python
        for i, entry in enumerate(_strings(project.get("dependencies"))):
            found.add("runtime", f"pyproject.toml [project] dependencies[{i}]", entry)
        optional = project.get("optional-dependencies")
        if isinstance(optional, dict):
            for extra, entries in optional.items():
                _extra(found, "pyproject.toml [project.optional-dependencies]", extra, entries)
    groups = data.get("dependency-groups")
    if isinstance(groups, dict):
        for name in groups:
            group = _group_of(str(name))
            if group is not None:
                for i, entry in enumerate(_dependency_group(groups, str(name), set())):
                    found.add(group, f"pyproject.toml [dependency-groups] {name}[{i}]", entry)
    poetry = data.get("tool", {}).get("poetry") if isinstance(data.get("tool"), dict) else None
    if isinstance(poetry, dict) and "dependencies" in poetry:
        found.notes.append(
            "pyproject.toml [tool.poetry.dependencies] is not read (Poetry's own syntax); "
            "list the dependencies in [project] dependencies or a requirements.txt"
        )


def _dependency_group(groups: dict[str, Any], name: str, visiting: set[str]) -> list[str]:
    """PEP 735: a group's requirements, ``{include-group = ...}`` followed (no cycles)."""
    if name in visiting:
        return []
    out: list[str] = []
    entries = groups.get(name)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            out += _dependency_group(groups, entry["include-group"], visiting | {name})
    return out


def _extra(found: Declared, where: str, extra: Any, entries: Any) -> None:
    name = str(extra)
    items = entries.splitlines() if isinstance(entries, str) else _strings(entries)
    checked = [e.strip() for e in items if e.strip() and deps.refusal(e.strip()) is None]
    found.extras[canonicalize_name(name)] = checked
    group = _group_of(name)
    if group is not None:
        for i, entry in enumerate(items):
            found.add(group, f"{where} {name}[{i}]", entry)


def _group_of(extra: str) -> Group | None:
    norm = canonicalize_name(extra)
    if norm in TEST_EXTRAS:
        return "test"
    if norm in DEV_EXTRAS:
        return "dev"
    return None


# -- setup.cfg -------------------------------------------------------------------------------


def _setup_cfg(text: str, found: Declared) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source="setup.cfg")
    except configparser.Error as exc:
        found.notes.append(f"setup.cfg cannot be parsed ({exc.message}); it is not read")
        return
    if parser.has_section("metadata"):
        meta = parser["metadata"]
        found.name = found.name or _static_cfg(meta.get("name"))
        found.version = found.version or _static_cfg(meta.get("version"))
    if parser.has_section("options"):
        options = parser["options"]
        found.requires_python = found.requires_python or _static_cfg(options.get("python_requires"))
        for i, entry in enumerate(_cfg_lines(options.get("install_requires", ""))):
            found.add("runtime", f"setup.cfg [options] install_requires[{i}]", entry)
        for i, entry in enumerate(_cfg_lines(options.get("tests_require", ""))):
            found.add("test", f"setup.cfg [options] tests_require[{i}]", entry)
    if parser.has_section("options.extras_require"):
        for extra, value in parser["options.extras_require"].items():
            _extra(found, "setup.cfg [options.extras_require]", extra, _cfg_lines(value))


def _cfg_lines(value: str) -> list[str]:
    lines = [re.sub(r"(^|\s)#.*", "", ln).strip() for ln in value.splitlines()]
    return [ln for ln in lines if ln]


def _static_cfg(value: str | None) -> str | None:
    """A literal setup.cfg value (``attr:`` and ``file:`` directives are not followed)."""
    if value is None or value.strip().startswith(("attr:", "file:")):
        return None
    return value.strip() or None


# -- setup.py (read with ast, never run) ---------------------------------------------------


def _setup_py(text: str, found: Declared) -> None:
    keywords, unread = setup_keywords(text)
    if keywords is None:
        found.notes.append("setup.py does not parse; it is not read (and never run)")
        return
    for key in unread:
        if key in ("install_requires", "tests_require", "extras_require"):
            found.notes.append(
                f"setup.py: {key} is not a literal (setup.py is never run); "
                "list those dependencies in a requirements.txt"
            )
    for key, value in keywords.items():
        _setup_keyword(found, key, value)


def _setup_keyword(found: Declared, key: str, value: Any) -> None:
    if key == "name" and isinstance(value, str):
        found.name = found.name or value
    elif key == "version" and isinstance(value, str):
        found.version = found.version or value
    elif key == "python_requires" and isinstance(value, str):
        found.requires_python = found.requires_python or value
    elif key in ("install_requires", "tests_require"):
        group: Group = "runtime" if key == "install_requires" else "test"
        items = value.splitlines() if isinstance(value, str) else _strings(value)
        for i, entry in enumerate(items):
            found.add(group, f"setup.py {key}[{i}]", entry)
    elif key == "extras_require" and isinstance(value, dict):
        for extra, entries in value.items():
            _extra(found, "setup.py extras_require", extra, entries)
    elif key == "use_scm_version":
        found.add_version_files({}, value)


# -- requirements files ----------------------------------------------------------------------


def _requirements_file(
    root: Path, rel: str, group: Group, found: Declared, seen: set[str], depth: int
) -> None:
    if rel in seen:
        return
    seen.add(rel)
    text = _read(root, rel, found)
    if text is None:
        return
    for number, line in _logical_lines(text):
        where = f"{rel} line {number}"
        tokens = line.split()
        first = tokens[0]
        if first in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable"):
            arg = tokens[1] if len(tokens) > 1 else ""
        elif re.match(r"--(requirement|constraint|editable)=", first):
            first, arg = first.split("=", 1)
        elif first.startswith(("-r", "-c", "-e")) and len(first) > 2:
            first, arg = first[:2], first[2:]
        else:
            arg = ""
        if first in ("-r", "--requirement"):
            if depth >= _MAX_INCLUDE_DEPTH:
                found.skipped.append(f"{where}: {line!r}: includes nest too deep")
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), arg))
            if not arg or target.startswith(("../", "/")) or target == "..":
                found.skipped.append(f"{where}: {line!r}: includes a file outside the repository")
                continue
            _requirements_file(root, target, group, found, seen, depth + 1)
        elif first in ("-c", "--constraint"):
            found.notes.append(f"{where}: constraints are not applied ({line!r})")
        elif first in ("-e", "--editable"):
            _self_or_skip(found, group, where, arg, line)
        elif first.startswith("-"):
            found.notes.append(f"{where}: pip option ignored ({line[:200]!r})")
        else:
            requirement = " ".join(_without_hashes(tokens))
            if _SELF.fullmatch(requirement):
                _self_or_skip(found, group, where, requirement, line)
            else:
                found.add(group, where, requirement)


def _self_or_skip(found: Declared, group: Group, where: str, arg: str, line: str) -> None:
    """``-e .[test]``: the project itself (on PYTHONPATH), with the requirements of its extras."""
    match = _SELF.fullmatch(arg)
    if match is None:
        found.skipped.append(
            f"{where}: {line[:200]!r}: editable installs of other paths or URLs are not accepted"
        )
        return
    extras = [e.strip() for e in (match.group("extras") or "").split(",") if e.strip()]
    if extras and found.name is None:
        found.notes.append(f"{where}: {line!r}: the project's name is unknown, its extras not read")
    elif extras:
        found.add(group, where, f"{found.name}[{','.join(extras)}]")  # expanded by resolved()


def _without_hashes(tokens: list[str]) -> list[str]:
    """The tokens without pip's ``--hash`` options (pip-compile writes them on every line)."""
    out: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--hash":
            skip = True
        elif not token.startswith("--hash="):
            out.append(token)
    return out


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each line, continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = " ".join(re.sub(r"(^|\s)#.*", "", pending + raw).split())
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, " ".join(pending.split())))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
