"""The Python project in a repository: its requirements, how its tests run, its settings.

``detect_project(root)`` reads a checkout through ``hostio`` (no links, sizes capped) and
never runs anything from it; a repository that is not a Python project is refused
(``NotAPythonProject``, exit code 2). ``.darkfactory.yaml`` at the root may say
``setup:`` (argv lists, run in the sandbox), ``test_command:`` and ``python:``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from darkfactory.repo._declared import (
    Group,
    is_requirements_file,
    read_declared,
    requirements_file_group,
)
from darkfactory.repo.errors import NotAPythonProject, RepoError, RepoSettingsError
from darkfactory.repo.version_file import VersionFile
from darkfactory.workspace import hostio
from darkfactory.yamlio import parse_yaml, pydantic_errors

SETTINGS_FILE = ".darkfactory.yaml"
PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
#: What runs the tests when ``.darkfactory.yaml`` does not say: pytest (it runs unittest too).
DEFAULT_TEST_COMMAND = ("python", "-m", "pytest", "-q")
#: Directories a project scan does not enter: VCS data, caches, environments, vendored code.
SKIP_DIRS = hostio.SKIP_DIRS | {
    ".tox",
    ".nox",
    ".venv",
    "venv",
    ".eggs",
    "node_modules",
    "site-packages",
    "build",
    "dist",
    "vendor",
    "third_party",
}
#: Source files by language, to tell a Python project from one in another language.
LANGUAGES = {
    ".py": "Python",
    ".pyi": "Python",
    ".js": "JavaScript",
    ".jsx": "JavaScript",
    ".mjs": "JavaScript",
    ".cjs": "JavaScript",
    ".ts": "TypeScript",
    ".tsx": "TypeScript",
    ".go": "Go",
    ".rs": "Rust",
    ".java": "Java",
    ".kt": "Kotlin",
    ".scala": "Scala",
    ".rb": "Ruby",
    ".php": "PHP",
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".cxx": "C++",
    ".hpp": "C++",
    ".cs": "C#",
    ".swift": "Swift",
    ".ex": "Elixir",
    ".exs": "Elixir",
    ".hs": "Haskell",
    ".lua": "Lua",
    ".dart": "Dart",
}
#: How many times more files of another language make a repository "mostly" that language.
MOSTLY = 3
_PYTEST = re.compile(r"(pytest|py\.test|python(3(\.\d+)?)?\s+-m\s+pytest)")


def _argv(value: Any) -> Any:
    """A command as an argv list; a string is split like a shell would (none runs it)."""
    return shlex.split(value) if isinstance(value, str) else value


Argv = Annotated[
    list[Annotated[str, Field(min_length=1)]], BeforeValidator(_argv), Field(min_length=1)
]


class RepoSettings(BaseModel):
    """``.darkfactory.yaml`` at a repository's root; every key optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    setup: list[Argv] = Field(
        default_factory=list,
        description="Commands run in the sandbox, in order, before the tests (argv lists).",
    )
    test_command: Argv | None = Field(
        default=None,
        description="How the tests run: a pytest command, e.g. [python, -m, pytest, -q, tests].",
    )
    python: str | None = Field(
        default=None,
        description="The Python the repository needs: 3.11, or a specifier such as >=3.10.",
    )


class Project(BaseModel):
    """A repository's Python project, as read from its files at the base commit."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    version: str | None = None
    requires_python: str | None = None
    #: What the tests need (runtime and test requirements), as the host's pip gets them.
    requirements: tuple[str, ...] = ()
    #: Developer-only requirements (``dev`` extras): installed when they have wheels.
    optional: tuple[str, ...] = ()
    #: The files the requirements came from.
    sources: tuple[str, ...] = ()
    #: Requirements left out, with the reason (``where: entry: why``).
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: Directories on PYTHONPATH, relative to the root (``.`` and ``src`` if there is one).
    import_roots: tuple[str, ...] = (".",)
    test_command: tuple[str, ...] = DEFAULT_TEST_COMMAND
    #: What ``testrun.run_pytest`` gets after its own arguments (the command's pytest args).
    pytest_args: tuple[str, ...] = ()
    has_tests: bool = False
    setup: tuple[tuple[str, ...], ...] = ()
    #: ``python:`` of ``.darkfactory.yaml``, checked against the sandbox's (``check_python``).
    python: str | None = None
    #: Files the build writes and the package imports (``version_file``): where one is
    #: missing, ``version_file.write_version_files`` writes a stub (git-ignored).
    version_files: tuple[VersionFile, ...] = ()

    def with_test_command(self, command: Sequence[str]) -> Project:
        """This project run by ``command`` (a ticket's ``test_command:``; see ``pytest_problem``)."""
        argv = tuple(command)
        return self.model_copy(update={"test_command": argv, "pytest_args": _pytest_args(argv)})

    def dependency_hash(self) -> str:
        """sha256 of what gets installed: the requirements, the optional ones, the project."""
        data = [sorted(self.requirements), sorted(self.optional), self.name, self.version]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def detect_project(root: Path, *, max_entries: int = 200_000) -> Project:
    """The Python project checked out at ``root`` (module doc); ``NotAPythonProject`` if none."""
    try:
        entries = [e for e in hostio.walk(root, skip_dirs=SKIP_DIRS, max_entries=max_entries)]
    except hostio.Refused as exc:
        raise RepoError(f"{root} cannot be scanned: {exc.why}") from None
    files = [e.path for e in entries if e.kind == "file"]
    settings = read_settings(root)
    # Links too: reading one is refused (and noted), never followed.
    req_files = _requirement_files([e.path for e in entries if e.kind in ("file", "symlink")])
    _check_python_project(files, req_files, settings is not None)
    declared = read_declared(root, [(f, g) for f, (g, _) in req_files.items() if g is not None])
    groups = declared.resolved()
    notes = list(declared.notes)
    if any(_is_pytest(r) for group in groups.values() for r in group):
        notes.append("pytest is not installed from the requirements: the sandbox has its own")
        for group in groups.values():  # the verdict runner's pytest is the sandbox's own
            group[:] = [r for r in group if not _is_pytest(r)]
    settings = settings or RepoSettings()
    command = tuple(settings.test_command or DEFAULT_TEST_COMMAND)
    has_tests = any(_is_test_file(f) for f in files)
    if not has_tests:
        notes.append("no test files found (test_*.py or *_test.py): the baseline has no tests")
    notes += [
        f"{vf.path} is written by the build ({vf.declared}) and is not in the checkout: a stub "
        f"with version {vf.version} stands in for it (git-ignored)"
        for vf in declared.version_files
        if vf.path not in files
    ]
    skipped_files = [
        f"{f}: the whole file: {why}"
        for f, (group, why) in req_files.items()
        if group is None and f not in declared.sources  # a counted file's ``-r`` reads it
    ]
    return Project(
        name=declared.name,
        version=declared.version,
        requires_python=declared.requires_python,
        requirements=tuple(groups["runtime"] + groups["test"]),
        optional=tuple(groups["dev"]),
        sources=tuple(declared.sources),
        skipped=tuple(declared.skipped + skipped_files),
        notes=tuple(notes),
        import_roots=(".", "src") if hostio.kind_of(root, "src") == "dir" else (".",),
        test_command=command,
        pytest_args=_pytest_args(command) if settings.test_command else (),
        has_tests=has_tests,
        setup=tuple(tuple(argv) for argv in settings.setup),
        python=settings.python,
        version_files=tuple(declared.version_files),
    )


def read_settings(root: Path) -> RepoSettings | None:
    """``.darkfactory.yaml`` at ``root``, validated (None: there is none)."""
    if hostio.kind_of(root, SETTINGS_FILE) is None:
        return None
    try:
        text = hostio.read_text(root, SETTINGS_FILE, limit=64 * 1024)
    except hostio.Refused as exc:
        raise RepoSettingsError(f"cannot be read: {exc.why}", file=SETTINGS_FILE) from None
    data, locs = parse_yaml(text, file=SETTINGS_FILE, error=RepoSettingsError)
    if data is None:
        return RepoSettings()
    if not isinstance(data, dict):
        raise RepoSettingsError(
            "must be a mapping (setup:, test_command:, python:)", file=SETTINGS_FILE, line=1
        )
    try:
        settings = RepoSettings.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors(exc, file=SETTINGS_FILE, locs=locs, error=RepoSettingsError) from None
    problem = pytest_problem(settings.test_command) if settings.test_command else None
    if problem is not None:
        raise RepoSettingsError(
            problem,
            file=SETTINGS_FILE,
            line=locs.line_of(("test_command",)),
            key="test_command",
            hint=TEST_COMMAND_HINT,
        )
    if settings.python is not None and _python_spec(settings.python) is None:
        raise RepoSettingsError(
            f"{settings.python!r} is not a Python version or specifier",
            file=SETTINGS_FILE,
            line=locs.line_of(("python",)),
            key="python",
            hint="e.g. python: '3.11' or python: '>=3.10'",
        )
    return settings


def check_python(project: Project, version: str) -> list[str]:
    """Notes on the sandbox's Python ``version`` (``X.Y``) for ``project``.

    ``RepoError`` when ``.darkfactory.yaml`` asks for another Python; a ``requires-python``
    the version does not meet is only a note (the tests decide).
    """
    notes = []
    wanted = project.python
    if wanted is not None:
        spec = _python_spec(wanted)
        if spec is None or not spec.contains(Version(version), prereleases=True):
            raise RepoError(
                f"the repository asks for Python {wanted} ({SETTINGS_FILE} python:), the "
                f"sandbox has Python {version}",
                key="python",
                hint="use a sandbox with that Python (sandbox.image for docker), or change "
                f"python: in the repository's {SETTINGS_FILE}",
            )
    if project.requires_python:
        try:
            ok = SpecifierSet(project.requires_python).contains(Version(version), prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            ok = True
        if not ok:
            notes.append(
                f"the project requires Python {project.requires_python}; the sandbox has {version}"
            )
    return notes


def _python_spec(text: str) -> SpecifierSet | None:
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+){0,2}", text):
        return SpecifierSet(f"=={text}.*" if text.count(".") < 2 else f"=={text}")
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def pytest_problem(argv: Sequence[str]) -> str | None:
    """Why ``argv`` cannot be a test command (None: it runs pytest)."""
    if _pytest_prefix(list(argv)) is None:
        return f"must run pytest, got {shlex.join(argv)!r}"
    return None


#: What a test command must look like, and why (the hint of every ``test_command:`` error).
TEST_COMMAND_HINT = (
    "e.g. [python, -m, pytest, -q, tests]: Dark Factory reads every test's "
    "outcome from pytest (which runs unittest tests too)"
)


def _pytest_prefix(argv: list[str]) -> int | None:
    """How many leading words of ``argv`` start pytest (None: it does not run pytest)."""
    for n in (3, 1):
        head = " ".join(argv[:n])
        if len(argv) >= n and _PYTEST.fullmatch(head):
            return n
    return None


def _pytest_args(command: tuple[str, ...]) -> tuple[str, ...]:
    n = _pytest_prefix(list(command)) or 0
    return tuple(command[n:])


def _requirement_files(files: list[str]) -> dict[str, tuple[Group | None, str]]:
    """Each requirements file among ``files``: (its group, "") or (None, why it is skipped)."""
    found = {path: requirements_file_group(path) for path in files if is_requirements_file(path)}
    return dict(sorted(found.items()))


def _check_python_project(files: list[str], req_files: dict[str, Any], settings: bool) -> None:
    """``NotAPythonProject`` unless ``files`` make a Python project (module doc)."""
    counts = Counter(
        LANGUAGES[suffix] for path in files if (suffix := Path(path).suffix.lower()) in LANGUAGES
    )
    python = counts.pop("Python", 0)
    other, other_n = counts.most_common(1)[0] if counts else ("", 0)
    elsewhere = f"; it is mostly {other} ({other_n} files)" if other_n else ""
    if python == 0:
        raise NotAPythonProject(
            f"the repository is not a Python project: it has no Python files{elsewhere}",
            hint="Dark Factory works on Python repositories only",
        )
    project_files = [f for f in (*PROJECT_FILES, *req_files) if f in files]
    if not project_files and not settings:
        raise NotAPythonProject(
            f"the repository is not a Python project: {python} Python files but no "
            "pyproject.toml, setup.cfg, setup.py or requirements*.txt" + elsewhere,
            hint=f"add a pyproject.toml, or a {SETTINGS_FILE} with test_command:, to the "
            "repository if its Python code is what the ticket is about",
        )
    if other_n >= MOSTLY * python and not settings:
        raise NotAPythonProject(
            f"the repository is mostly {other}: {other_n} {other} files against {python} "
            "Python files",
            hint=f"Dark Factory works on Python repositories only; if the ticket is about "
            f"its Python part, add a {SETTINGS_FILE} (test_command:) to say so",
        )


def _is_pytest(requirement: str) -> bool:
    return canonicalize_name(Requirement(requirement).name) == "pytest"


def _is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))
