"""A ticket spec: YAML, or Markdown with YAML front matter whose body is the description.

Keys (any other key is an error, to catch typos):

``title`` (required)
    One line naming the software.
``description``
    Free text; the Spec's ``summary``. In a Markdown ticket the body is the description
    (then ``description:`` in the front matter must be left out).
``acceptance_criteria``
    A list; each item is one requirement, R1..Rn by position, each with its line. An item
    is a string, a mapping ``{given, when, then}`` (``given`` optional) rendered as
    "Given ..., when ..., then ...", or a mapping ``{text}``. Mappings may set ``id`` to
    name the requirement themselves (``id: R7``, ``id: AC-login``); ids must be unique.
``acceptance_tests``
    Pytest code the delivered software must pass, read-only to every agent. Either a
    string of code (the file ``test_acceptance.py``), or a list whose items are a path
    relative to the spec file's directory (a ``test_*.py`` file, or a directory whose
    ``test_*.py`` files, sub-directories included, are taken with their relative paths),
    or a mapping ``{name: test_x.py, code: "..."}``. Names are ``test_*.py``, optionally
    under relative sub-directories, never with ``..``. Code must be valid Python; a syntax
    error is reported at its line in the spec (or in the test file).
``examples``
    Accepted and not used yet (input/output examples are planned for a later release).
``repo``, ``base``, ``kind``, ``failing_tests``, ``fails_with``, ``test_command``
    A ticket on an existing repository (docs/repositories.md): ``repo`` a path or git URL,
    ``base`` the ref to start from, ``kind`` one of bug, feature, tests, docs, migrate,
    ``failing_tests`` test ids that fail at base and must pass, ``fails_with`` what a bug's
    failure at base must show, ``test_command`` an argv.
    ``--repo``, ``--base`` and ``--kind`` on the command line override them.
``holdout``
    Acceptance tests (``FILE::FUNCTION``) sealed from every agent and run by verify
    (docs/misbehaving-models.md); on a repository, only tests the ticket brings; never all.
``modules``, ``coverage_gain``, ``migration``
    A ``tests`` ticket's modules (dotted names) whose line coverage must rise by at least
    ``coverage_gain`` percentage points (default 1); a ``docs`` ticket's modules the API
    reference documents; a ``migrate`` ticket's checks: ``migration: {gone: [regex],
    warnings_as_errors: [Category], imports: [module]}``, at least one.

A ticket needs a ``title`` and at least one acceptance criterion or acceptance test (a
ticket on a repository may instead name ``failing_tests``; a ``tests``, ``docs`` or
``migrate`` ticket's checks are its requirements when it states none).
"""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from darkfactory.errors import SpecError
from darkfactory.spec._document import load_yaml_text
from darkfactory.spec.limits import check_size
from darkfactory.spec.model import (
    TICKET_KINDS,
    AcceptanceTest,
    Migration,
    RepoTarget,
    Requirement,
    SourceRef,
    Spec,
)
from darkfactory.spec.trace import requirement_links
from darkfactory.yamlio import KeyPath

#: The keys of the repository a ticket is about (``repo:`` names it, or ``--repo``).
TARGET_KEYS = (
    "base",
    "kind",
    "failing_tests",
    "fails_with",
    "test_command",
    "modules",
    "coverage_gain",
    "migration",
)
TICKET_KEYS = (
    "title",
    "description",
    "acceptance_criteria",
    "acceptance_tests",
    "examples",
    "repo",
    *TARGET_KEYS,
    "holdout",
)
MIGRATION_KEYS = ("gone", "warnings_as_errors", "imports")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
CRITERION_KEYS = ("id", "text", "given", "when", "then")
INLINE_TEST_KEYS = ("name", "code")
#: A default name for acceptance tests given as one string of code.
DEFAULT_TEST_NAME = "test_acceptance.py"

_SAFE_TEST_NAME = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_-]*/)*test_[A-Za-z0-9_]+\.py$")
_REQUIREMENT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_CRITERION_HINT = (
    "a criterion is a string, {text: ...}, or {given: ..., when: ..., then: ...}; "
    "if it is one sentence containing ': ', put it in quotes"
)


class _Ticket:
    """One ticket being parsed: its file, YAML data and where each key is."""

    def __init__(self, yaml_text: str, file: Path) -> None:
        self.file = file
        self.yaml_text = yaml_text
        self.data, self.locs = load_yaml_text(yaml_text, file=file)
        self._root: yaml.Node | None = None

    def fail(self, message: str, path: KeyPath, hint: str | None = None) -> SpecError:
        key = ".".join(str(p) for p in path) or None
        line = self.locs.line_of(path) if path else None
        return SpecError(message, file=self.file, line=line or None, key=key, hint=hint)

    def text(self, value: Any, path: KeyPath, what: str) -> str:
        """``value`` as non-empty text, or a SpecError saying what it is instead."""
        if isinstance(value, str):
            if value.strip():
                return value.strip()
            raise self.fail(f"{what} is empty", path)
        if value is None:
            raise self.fail(f"{what} is empty", path)
        if isinstance(value, bool):
            got, hint = (
                f"{str(value).lower()} (YAML reads yes/no/on/off/true/false as booleans)",
                "put the text in quotes",
            )
        elif isinstance(value, int | float):
            got, hint = "a number", "put the text in quotes"
        else:
            got, hint = _kind(value), None
        raise self.fail(f"{what} must be text, got {got}", path, hint)

    def code_start_line(self, path: KeyPath) -> int | None:
        """The spec line holding the first line of the string at ``path`` (best effort)."""
        if self._root is None:
            self._root = yaml.compose(self.yaml_text, Loader=yaml.SafeLoader)
        node = self._root
        for part in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part]
            else:
                return None
            if node is None:
                return None
        if not isinstance(node, yaml.ScalarNode):
            return None
        # A block scalar's text starts on the line after its "|" or ">" indicator.
        return node.start_mark.line + (2 if node.style in ("|", ">") else 1)


def parse_ticket(yaml_text: str, *, file: Path, body: str | None = None) -> Spec:
    """A ``Spec`` from a ticket: ``yaml_text`` is the YAML (front matter), ``body`` the Markdown."""
    t = _Ticket(yaml_text, file)
    data = t.data
    if data is None:
        raise SpecError("the ticket has no keys", file=file, line=1, hint=_needs())
    if not isinstance(data, dict):
        raise SpecError(
            f"a ticket must be a mapping of keys, got {_kind(data)}",
            file=file,
            line=1,
            hint=_needs(),
        )
    for key in data:
        if key not in TICKET_KEYS:
            close = difflib.get_close_matches(str(key), TICKET_KEYS, n=1)
            did_you = f" (did you mean {close[0]!r}?)" if close else ""
            raise t.fail(
                f"unknown key {key!r}{did_you}",
                (str(key),),
                hint=f"a ticket's keys are: {', '.join(TICKET_KEYS)}",
            )
    if data.get("title") is None:
        raise SpecError("the ticket has no title", file=file, line=1, key="title", hint=_needs())
    title = t.text(data["title"], ("title",), "title")

    summary = ""
    if data.get("description") is not None:
        summary = t.text(data["description"], ("description",), "description")
    if body is not None and body.strip():
        if summary:
            raise t.fail(
                "the description is given twice: in the front matter and as the body",
                ("description",),
                hint="keep one: remove description: from the front matter, or empty the body",
            )
        summary = body.strip()

    requirements = _criteria(t, data.get("acceptance_criteria"))
    tests = _acceptance_tests(t, data.get("acceptance_tests"))
    target = _target(t, data)
    if target is not None and target.failing_tests and not requirements:
        requirements = [
            Requirement(
                id=f"R{i}",
                text=f"the test {test} passes",
                source=SourceRef(file=str(file), line=t.locs.line_of(("failing_tests", i - 1))),
            )
            for i, test in enumerate(target.failing_tests, 1)
        ]
    if target is not None and not requirements and not tests:
        line = t.locs.line_of(("kind",)) or 1
        requirements = [
            Requirement(id=f"R{i}", text=text, source=SourceRef(file=str(file), line=line))
            for i, text in enumerate(kind_requirements(target), 1)
        ]
    if not requirements and not tests:
        raise SpecError(
            "the ticket has no acceptance_criteria and no acceptance_tests",
            file=file,
            line=1,
            hint=_needs(),
        )
    spec = Spec(
        format="ticket",
        title=title,
        summary=summary,
        requirements=requirements,
        acceptance_tests=tests,
        source=str(file),
        target=target,
    )
    sealed = _holdout(t, data.get("holdout"), spec)
    if sealed:
        spec = spec.model_copy(update={"holdout": sealed})
    if not requirements and not requirement_links(spec):
        raise t.fail(
            "the ticket has no acceptance_criteria, and its acceptance_tests define no test "
            "(a test_* function or a method of a Test* class)",
            ("acceptance_tests",),
            hint=_needs(),
        )
    return spec


def kind_requirements(target: RepoTarget) -> list[str]:
    """What a ``tests``, ``docs`` or ``migrate`` ticket asks, from its keys alone."""
    modules = ", ".join(target.modules) or "the project's packages"
    if target.kind == "tests":
        return [
            f"new tests raise the line coverage of {modules} by at least "
            f"{target.coverage_gain:g} percentage points",
            "every new test passes on the current code, and no production code changes",
        ]
    if target.kind == "docs":
        return [
            f"a documentation site (mkdocs-material, built strictly) with the API reference "
            f"of {modules}",
            "every Python example in the docs runs, and no production code changes",
        ]
    if target.kind == "migrate" and target.migration is not None:
        return target.migration.checks()
    return []


def _target(t: _Ticket, data: dict[Any, Any]) -> RepoTarget | None:
    """The repository part of a ticket (``repo:`` and its companions), checked.

    Companions without ``repo:`` make a target whose repository ``--repo`` names (an empty
    ``repo``; ``cli.run.with_target`` refuses the run without one). Whether the keys fit
    the kind is checked here when the ticket sets ``kind:``, else once ``--kind`` has had
    its say (``RepoTarget.mismatch``).
    """
    companions = [k for k in TARGET_KEYS if k in data]
    if data.get("repo") is None and not companions:
        return None
    repo = t.text(data["repo"], ("repo",), "repo") if data.get("repo") is not None else ""
    base = t.text(data["base"], ("base",), "base") if data.get("base") is not None else None
    kind = "feature"
    if data.get("kind") is not None:
        kind = t.text(data["kind"], ("kind",), "kind")
        if kind not in TICKET_KINDS:
            raise t.fail(
                f"unknown kind {kind!r}",
                ("kind",),
                hint=f"a ticket's kind is one of: {', '.join(TICKET_KINDS)}",
            )
    failing = data.get("failing_tests") or []
    if not isinstance(failing, list):
        raise t.fail(
            "failing_tests must be a list of test ids",
            ("failing_tests",),
            hint="e.g. [tests/test_parse.py::test_empty]",
        )
    failing = [t.text(x, ("failing_tests", i), "a failing test id") for i, x in enumerate(failing)]
    command = data.get("test_command")
    if command is not None:
        if isinstance(command, str):
            command = command.split()
        if not isinstance(command, list) or not command:
            raise t.fail(
                "test_command must be an argv list",
                ("test_command",),
                hint="e.g. [python, -m, pytest, -q, tests]",
            )
        command = [t.text(x, ("test_command", i), "an argument") for i, x in enumerate(command)]
    fails_with = data.get("fails_with", [])
    if isinstance(fails_with, str):
        fails_with = [fails_with]
    if not isinstance(fails_with, list):
        raise t.fail(
            "fails_with must be a text or a list of texts",
            ("fails_with",),
            hint="e.g. fails_with: ZeroDivisionError",
        )
    fails_with = [
        t.text(x, ("fails_with", i), "a text the failure shows") for i, x in enumerate(fails_with)
    ]
    modules = _names(t, data.get("modules"), ("modules",), "a module", "e.g. [mypkg.parser]")
    gain = data.get("coverage_gain", 1.0)
    if isinstance(gain, bool) or not isinstance(gain, int | float) or not 0 < gain <= 100:
        raise t.fail(
            "coverage_gain must be a number of percentage points above 0 and at most 100",
            ("coverage_gain",),
            hint="e.g. coverage_gain: 5",
        )
    values: dict[str, Any] = {
        "base": base,
        "kind": kind,
        "failing_tests": failing,
        "fails_with": fails_with,
        "test_command": command,
        "modules": modules,
        "coverage_gain": float(gain),
        "migration": _migration(t, data.get("migration")),
    }
    # Only the keys the ticket sets count as set (``model_fields_set``: what --repo needs).
    target = RepoTarget(repo=repo, **{k: v for k, v in values.items() if k in data})
    problem = target.mismatch() if "kind" in data else None
    if problem is not None:
        message, key, hint = problem
        raise t.fail(message, (key,) if key in data else ("kind",), hint=hint)
    return target


def _holdout(t: _Ticket, value: Any, spec: Spec) -> list[str]:
    """``holdout:``: acceptance tests the ticket seals, each one that exists; never all."""
    path: KeyPath = ("holdout",)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise t.fail(
            "holdout must be a list of acceptance tests",
            path,
            hint="e.g. [test_acceptance.py::test_empty_input]",
        )
    names = [t.text(x, (*path, i), "a test") for i, x in enumerate(value)]
    known = list(requirement_links(spec))
    in_repo = spec.target.failing_tests if spec.target is not None else []
    for i, name in enumerate(names):
        if name in in_repo:
            raise t.fail(
                f"{name!r} is one of the repository's own tests (failing_tests): its source "
                "is in the clone, so it cannot be sealed",
                (*path, i),
                hint="seal tests the ticket brings (acceptance_tests:)",
            )
        if not any(k == name or k.startswith(name + "::") for k in known):
            close = difflib.get_close_matches(name, known, n=1)
            raise t.fail(
                f"{name!r} is not one of the ticket's acceptance tests",
                (*path, i),
                hint=f"did you mean {close[0]!r}?"
                if close
                else "name a test as FILE::FUNCTION (or FILE::CLASS)",
            )
    if all(any(k == n or k.startswith(n + "::") for n in names) for k in known):
        raise t.fail(
            "holdout seals every acceptance test: the agents would have none to work from",
            path,
            hint="leave at least one test visible",
        )
    return sorted(set(names))


def _names(t: _Ticket, value: Any, path: KeyPath, what: str, hint: str) -> list[str]:
    """A list of dotted Python names (modules, warning categories)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise t.fail(f"{path[-1]} must be a list", path, hint=hint)
    names = [t.text(x, (*path, i), what) for i, x in enumerate(value)]
    for i, name in enumerate(names):
        if not _DOTTED.match(name):
            raise t.fail(f"{name!r} is not a dotted Python name", (*path, i), hint=hint)
    return names


def _migration(t: _Ticket, value: Any) -> Migration | None:
    """``migration:``: what proves a migrate ticket done; at least one check."""
    path: KeyPath = ("migration",)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise t.fail("migration must be a mapping", path, hint=f"keys: {', '.join(MIGRATION_KEYS)}")
    for key in value:
        if key not in MIGRATION_KEYS:
            close = difflib.get_close_matches(str(key), MIGRATION_KEYS, n=1)
            raise t.fail(
                f"unknown key {key!r} in migration",
                (*path, key),
                hint=f"did you mean {close[0]!r}?"
                if close
                else f"keys: {', '.join(MIGRATION_KEYS)}",
            )
    gone_value = value.get("gone") or []
    if not isinstance(gone_value, list):
        raise t.fail("gone must be a list of regular expressions", (*path, "gone"))
    gone = [t.text(x, (*path, "gone", i), "a pattern") for i, x in enumerate(gone_value)]
    for i, pattern in enumerate(gone):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise t.fail(
                f"{pattern!r} is not a regular expression: {exc}",
                (*path, "gone", i),
                hint="Python re syntax; put the pattern in single quotes in YAML",
            ) from None
    warnings = _names(
        t,
        value.get("warnings_as_errors"),
        (*path, "warnings_as_errors"),
        "a warning category",
        "e.g. [DeprecationWarning]",
    )
    imports = _names(t, value.get("imports"), (*path, "imports"), "a module", "e.g. [mypkg.api]")
    if not (gone or warnings or imports):
        raise t.fail(
            "migration states no check",
            path,
            hint="give at least one of gone:, warnings_as_errors:, imports:",
        )
    return Migration(gone=gone, warnings_as_errors=warnings, imports=imports)


def _criteria(t: _Ticket, value: Any) -> list[Requirement]:
    path: KeyPath = ("acceptance_criteria",)
    if value is None:
        return []
    if not isinstance(value, list):
        raise t.fail(
            f"must be a list, got {_kind(value)}",
            path,
            hint="write each criterion on its own line, starting with '- '",
        )
    out: list[Requirement] = []
    lines: dict[str, int | None] = {}
    for i, item in enumerate(value):
        p: KeyPath = (*path, i)
        line = t.locs.line_of(p)
        rid = f"R{i + 1}"
        if isinstance(item, dict):
            text, explicit = _criterion_mapping(t, item, p)
            rid = explicit or rid
        else:
            text = t.text(item, p, "a criterion")
        key = rid.casefold()
        if key in lines:
            raise t.fail(
                f"requirement id {rid} is used twice (lines {lines[key]} and {line})",
                p,
                hint="ids must be unique; items without id: are numbered R<position>",
            )
        lines[key] = line
        out.append(Requirement(id=rid, text=text, source=SourceRef(file=str(t.file), line=line)))
    return out


def _criterion_mapping(t: _Ticket, item: dict[Any, Any], p: KeyPath) -> tuple[str, str | None]:
    """The text and the explicit id (or None) of a criterion written as a mapping."""
    for key in item:
        if key not in CRITERION_KEYS:
            raise t.fail(
                f"unknown key {key!r} in a criterion", (*p, str(key)), hint=_CRITERION_HINT
            )
    rid = None
    if "id" in item:
        rid = t.text(item["id"], (*p, "id"), "id")
        if not _REQUIREMENT_ID.match(rid):
            raise t.fail(
                f"id {rid!r} is not a requirement id",
                (*p, "id"),
                hint="use a letter then letters, digits, '_', '.' or '-', e.g. R7 or AC-login",
            )
    gwt = [k for k in ("given", "when", "then") if k in item]
    if "text" in item:
        if gwt:
            raise t.fail("use either text or given/when/then, not both", p, hint=_CRITERION_HINT)
        return t.text(item["text"], (*p, "text"), "text"), rid
    if "when" not in item or "then" not in item:
        raise t.fail("a criterion mapping needs text, or when and then", p, hint=_CRITERION_HINT)
    parts = []
    for k in gwt:
        words = t.text(item[k], (*p, k), k)
        if words.casefold().startswith(k + " "):
            words = words[len(k) + 1 :].lstrip()
        parts.append(f"{k} {words.rstrip('.,;') if k != 'then' else words}")
    rendered = ", ".join(parts)
    return rendered[:1].upper() + rendered[1:], rid


def _acceptance_tests(t: _Ticket, value: Any) -> list[AcceptanceTest]:
    path: KeyPath = ("acceptance_tests",)
    if value is None:
        return []
    if isinstance(value, str):
        t.text(value, path, "acceptance_tests")
        return [_inline_test(t, DEFAULT_TEST_NAME, value, path)]
    if not isinstance(value, list):
        raise t.fail(
            f"must be pytest code or a list, got {_kind(value)}",
            path,
            hint="give a string of pytest code, or a list of test file paths and {name, code} items",
        )
    tests: list[AcceptanceTest] = []
    for i, item in enumerate(value):
        p: KeyPath = (*path, i)
        if isinstance(item, str):
            tests.extend(_tests_from_path(t, item, p))
        elif isinstance(item, dict):
            for key in item:
                if key not in INLINE_TEST_KEYS:
                    raise t.fail(
                        f"unknown key {key!r} in an acceptance test",
                        (*p, str(key)),
                        hint="an inline acceptance test is {name: test_x.py, code: '...'}",
                    )
            for key in INLINE_TEST_KEYS:
                if key not in item:
                    raise t.fail(f"an inline acceptance test needs {key}:", p)
            name = t.text(item["name"], (*p, "name"), "name")
            _check_name(t, name, (*p, "name"))
            t.text(item["code"], (*p, "code"), "code")
            tests.append(_inline_test(t, name, item["code"], (*p, "code")))
        else:
            raise t.fail(
                f"an acceptance test must be a path or a {{name, code}} mapping, got {_kind(item)}",
                p,
            )
    seen: dict[str, AcceptanceTest] = {}
    for test in tests:
        if test.name in seen:
            raise t.fail(
                f"two acceptance tests are named {test.name}",
                path,
                hint="rename one of them: they become files of the same directory",
            )
        seen[test.name] = test
    return tests


def _inline_test(t: _Ticket, name: str, code: str, path: KeyPath) -> AcceptanceTest:
    first = t.code_start_line(path) or t.locs.line_of(path)
    check_python(code, name=name, file=t.file, first_line=first)
    return AcceptanceTest(name=name, content=code, source=SourceRef(file=str(t.file), line=first))


def _tests_from_path(t: _Ticket, item: str, p: KeyPath) -> list[AcceptanceTest]:
    base = t.file.parent
    root = base.resolve()
    target = (base / item).resolve()
    if not target.is_relative_to(root):
        raise t.fail(
            f"acceptance test path {item!r} is outside the spec's directory",
            p,
            hint=f"keep acceptance tests in the spec's directory ({base}) or below it",
        )
    if not target.exists():
        raise t.fail(
            f"acceptance test path {item!r} does not exist",
            p,
            hint=f"paths are relative to the spec's directory ({base})",
        )
    if target.is_file():
        if not _SAFE_TEST_NAME.match(target.name):
            raise t.fail(
                f"acceptance test file {item!r} must be named test_*.py",
                p,
                hint="pytest collects test_*.py files only; rename it",
            )
        return [_file_test(t, base / item, target.name, p)]
    files = sorted(
        f for f in target.rglob("test_*.py") if "__pycache__" not in f.parts and f.is_file()
    )
    if not files:
        raise t.fail(f"acceptance test directory {item!r} has no test_*.py files", p)
    tests = []
    for f in files:
        if not f.resolve().is_relative_to(root):
            raise t.fail(f"acceptance test {f} links outside the spec's directory", p)
        name = f.relative_to(target).as_posix()
        if not _SAFE_TEST_NAME.match(name):
            raise t.fail(
                f"acceptance test {name!r} (in {item!r}) is not a safe file name",
                p,
                hint="use letters, digits, '_' and '-' in directory names and test_*.py file names",
            )
        tests.append(_file_test(t, base / item / name, name, p))
    return tests


def _file_test(t: _Ticket, shown: Path, name: str, p: KeyPath) -> AcceptanceTest:
    check_size(shown, what="the acceptance test file")
    try:
        code = shown.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise t.fail(f"acceptance test {shown} is not UTF-8 text", p) from None
    check_python(code, name=name, file=shown, first_line=1)
    return AcceptanceTest(name=name, content=code, source=SourceRef(file=str(shown), line=1))


def _check_name(t: _Ticket, name: str, path: KeyPath) -> None:
    if not _SAFE_TEST_NAME.match(name) or ".." in name.split("/"):
        raise t.fail(
            f"acceptance test name {name!r} is not a safe test file name",
            path,
            hint="use test_<name>.py, optionally under a relative sub-directory (checks/test_x.py), without '..'",
        )


def check_python(code: str, *, name: str, file: Path, first_line: int | None) -> None:
    """Raise a SpecError at the spec's (or test file's) line if ``code`` is not valid Python."""
    try:
        ast.parse(code, filename=name)
    except (RecursionError, MemoryError):  # CPython's parser gives up on deep nesting
        raise SpecError(
            f"acceptance test {name} is too deeply nested to parse as Python",
            file=file,
            line=first_line,
            hint="fix the test code; acceptance tests are pytest files",
        ) from None
    except (SyntaxError, ValueError) as exc:
        lineno = getattr(exc, "lineno", None) or 1
        msg = getattr(exc, "msg", None) or str(exc)
        line = (first_line or 1) + lineno - 1
        raise SpecError(
            f"acceptance test {name} is not valid Python: {msg} (line {lineno} of the test)",
            file=file,
            line=line,
            hint="fix the test code; acceptance tests are pytest files",
        ) from None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _needs() -> str:
    return (
        "a ticket needs title: and acceptance_criteria: (a list of what must be true) "
        "or acceptance_tests: (pytest code)"
    )
