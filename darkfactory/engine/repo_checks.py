"""What proves a ``tests``, ``docs`` or ``migrate`` ticket done: checks the pipeline runs itself.

A model never says "pass". Each check here is measured by the pipeline, on the workspace
or in the sandbox, and becomes one acceptance outcome (``check::<name>``) next to the
tests, so the verdict, the requirement matrix, the report and ``pull_request.md`` show it
like a test:

- ``production_code_untouched`` (``tests`` and ``docs``): every file changed since the base
  commit is a test file (``tests``) or documentation (``docs``); the others are listed.
- ``coverage`` (``tests``): line coverage (coverage.py, measured by the test runner inside
  the sandbox, ``testrun.run_pytest(coverage=...)``) of the ticket's ``modules`` (default:
  the project's packages, tests left out) at the end minus at base, at least
  ``coverage_gain`` percentage points.
- ``api_reference[<module>]`` (``docs``): ``mkdocs.yml`` exists and a page under ``docs/``
  has ``::: <module>`` (or one of its submodules); the strict build and the examples are
  the docs check's (``docs_check.py``), which runs after this one passes.
- ``gone[<pattern>]``, ``imports[<module>]``, ``warnings_as_errors[<Category>]``
  (``migrate``): no non-test ``.py`` file matches the pattern (searched inside the sandbox,
  under its time limit: the files are model-written, the pattern is the ticket's); the
  module imports in the sandbox with the ticket's warning categories as errors; the suite,
  run with ``-W error::<Category>``, has no regression.

A test file is ``test_*.py``, ``*_test.py``, ``conftest.py`` or anything under a
``tests``/``test``/``testing`` directory; documentation is ``mkdocs.yml``, anything under
``docs/``, and ``*.md``/``*.rst`` files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from darkfactory.repo.project import Project
from darkfactory.sandbox.base import Sandbox
from darkfactory.sandbox.testrun import TestOutcome
from darkfactory.spec import RepoTarget, Spec
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import hostio

#: The prefix of a check's test id (``check::coverage``).
PREFIX = "check::"
#: What coverage leaves out when no module is named: the tests themselves and tooling.
OMIT = ("*/tests/*", "*/test/*", "*/testing/*", "*/test_*.py", "*_test.py", "*/conftest.py")
OMIT_ROOT = ("setup.py", "noxfile.py", "docs/*", "benchmarks/*", "examples/*")
#: Directories never searched for a migration's patterns.
SKIP_DIRS = (
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "__pycache__",
    ".tox",
    ".nox",
    "node_modules",
)
_TEST_DIRS = frozenset({"tests", "test", "testing"})
_DOC_SUFFIXES = (".md", ".rst")
#: Most matches of one pattern shown.
MAX_MATCHES = 20
#: How many of the first matches/lines a detail shows.
MAX_DETAIL = 2000

_GONE_SCRIPT = r"""
import json, os, re, sys
patterns = [re.compile(p) for p in json.loads(sys.argv[1])]
skip = set(json.loads(sys.argv[2]))
most = int(sys.argv[3])
found = {p.pattern: [] for p in patterns}
for root, dirs, files in os.walk("."):
    dirs[:] = sorted(d for d in dirs if d not in skip and d not in ("tests", "test", "testing"))
    for name in sorted(files):
        if not name.endswith(".py") or name.startswith("test_") or name.endswith("_test.py"):
            continue
        if name == "conftest.py":
            continue
        path = os.path.join(root, name)[2:]
        if os.path.islink(path) or os.path.getsize(path) > 2_000_000:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                for p in patterns:
                    if len(found[p.pattern]) < most and p.search(line):
                        found[p.pattern].append(f"{path}:{n}: {line.strip()[:160]}")
print(json.dumps(found))
"""


@dataclass(frozen=True)
class CheckResult:
    """One measured check: its name, whether it held, and what was found."""

    name: str
    ok: bool
    detail: str

    @property
    def nodeid(self) -> str:
        return PREFIX + self.name

    def outcome(self) -> TestOutcome:
        return TestOutcome(
            self.nodeid,
            "check",
            self.name,
            "passed" if self.ok else "failed",
            0.0,
            self.detail[:MAX_DETAIL],
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail[:MAX_DETAIL]}


#: An exception's name in a ticket's text (what a bug's reproduction must fail with).
_EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z0-9_]*(?:Error|Exception)\b")


def expected_failure(spec: Spec) -> tuple[str, ...]:
    """What a bug's reproduction must show failing at base: ``fails_with:``, or else the
    exception names the ticket mentions (none: any failure that is not an import error)."""
    assert spec.target is not None
    if spec.target.fails_with:
        return tuple(spec.target.fails_with)
    text = "\n".join((spec.title, spec.summary, spec.requirements_text()))
    return tuple(dict.fromkeys(_EXCEPTION_NAME.findall(text)))


def checks_text(spec: Spec) -> str:
    """``{checks}``: what the pipeline will measure for this ticket's kind, for the prompts."""
    target = spec.target
    if target is None:
        return ""
    if target.kind == "bug":
        expected = expected_failure(spec)
        shows = f", showing {' or '.join(expected)}" if expected else ""
        return (
            f"- the reproduction fails at the base commit{shows} (never an import error)\n"
            "- after the fix it passes, and every test that passed at base still passes"
        )
    modules = ", ".join(target.modules) or "the project's packages"
    if target.kind == "tests":
        return (
            f"- only test files change (production code untouched)\n"
            f"- line coverage of {modules} rises by at least {target.coverage_gain:g} "
            "percentage points (coverage.py, measured at base and at the end)\n"
            "- every new test passes on the current code; nothing that passed fails"
        )
    if target.kind == "docs":
        return (
            "- only documentation changes: mkdocs.yml, docs/, *.md (production code untouched)\n"
            f"- mkdocs.yml (theme material, plugin mkdocstrings) and a page under docs/ with "
            f"'::: module' for: {modules}\n"
            "- `mkdocs build --strict` succeeds and every Python example in README.md and "
            "docs/ runs"
        )
    if target.kind == "migrate" and target.migration is not None:
        m = target.migration
        lines = [
            f"- no match of the regular expression {p!r} in non-test .py files" for p in m.gone
        ]
        lines += [f"- the suite passes with -W error::{w}" for w in m.warnings_as_errors]
        cats = ", ".join(m.warnings_as_errors) or "DeprecationWarning"
        lines += [f"- `import {i}` works with {cats} as errors" for i in m.imports]
        return "\n".join([*lines, "- every test that passed at base still passes"])
    return ""


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1]
    return (
        any(p in _TEST_DIRS for p in parts[:-1])
        or name == "conftest.py"
        or (name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")))
    )


def is_docs_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (
        parts[0] == "docs"
        or path in ("mkdocs.yml", "mkdocs.yaml")
        or parts[-1].lower().endswith(_DOC_SUFFIXES)
    )


def production_untouched(workspace: Path, base_sha: str, kind: str) -> CheckResult:
    """Every file changed since ``base_sha`` is a test file (``tests``) or docs (``docs``)."""
    allowed = is_test_path if kind == "tests" else is_docs_path
    changed = sorted(
        set(gitrepo.changed_files(workspace, base_sha)) | set(gitrepo.uncommitted(workspace))
    )
    other = [p for p in changed if not allowed(p)]
    what = "test files" if kind == "tests" else "documentation (mkdocs.yml, docs/, *.md, *.rst)"
    if other:
        shown = ", ".join(other[:20]) + (" ..." if len(other) > 20 else "")
        return CheckResult(
            "production_code_untouched",
            False,
            f"a {kind} ticket changes only {what}; these files are not: {shown}. "
            "Restore them to the base commit.",
        )
    return CheckResult(
        "production_code_untouched", True, f"{len(changed)} file(s) changed, all {what}"
    )


# -- coverage (tests) -------------------------------------------------------------------


def coverage_options(target: RepoTarget, project: Project, workdir: str) -> dict[str, list[str]]:
    """What the test runner gives coverage.py: the named modules, or the import roots."""
    if target.modules:
        return {"source_pkgs": list(target.modules)}
    roots = [str(PurePosixPath(workdir) / r) for r in project.import_roots]
    omit = [*OMIT, *(str(PurePosixPath(workdir) / o) for o in OMIT_ROOT)]
    return {"source": roots, "omit": omit}


@dataclass(frozen=True)
class Coverage:
    """Line coverage summed over the measured files."""

    covered: int
    statements: int
    files: int
    error: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.statements if self.statements else 0.0

    def text(self) -> str:
        if self.error and not self.statements:
            return f"0% (nothing measured: {self.error})"
        return f"{self.percent:.1f}% ({self.covered}/{self.statements} lines, {self.files} files)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "covered": self.covered,
            "statements": self.statements,
            "files": self.files,
            "percent": round(self.percent, 2),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Coverage:
        """Back from ``to_dict`` (a run's own file: ``coverage_base.json``, ``verdict.json``)."""
        return cls(
            int(data["covered"]), int(data["statements"]), int(data["files"]), str(data["error"])
        )

    @classmethod
    def of(cls, measured: dict[str, Any] | None) -> Coverage:
        """From ``TestRun.coverage`` (nothing measured is 0 of 0, with why)."""
        if not measured:
            return cls(0, 0, 0, "the test runner measured no coverage")
        files = measured.get("files") or {}
        if not isinstance(files, dict) or not files:
            return cls(0, 0, 0, str(measured.get("error") or "no file of the modules ran"))
        # Relayed from the sandbox, where the tests ran: counts that are not counts are
        # not read (a test could have written the record itself).
        rows = [
            (f["covered"], f["statements"])
            for f in files.values()
            if isinstance(f, dict)
            and all(type(f.get(k)) is int and 0 <= f[k] < 10**9 for k in ("covered", "statements"))
            and f["covered"] <= f["statements"]
        ]
        if len(rows) != len(files):
            return cls(0, 0, 0, "the coverage report from the sandbox is not well formed")
        return cls(sum(c for c, _ in rows), sum(n for _, n in rows), len(rows))


def coverage_check(base: Coverage, final: Coverage, target: RepoTarget) -> CheckResult:
    """Coverage rose by at least ``coverage_gain`` points (``base`` 0 when nothing ran)."""
    gain = final.percent - base.percent
    modules = ", ".join(target.modules) or "the project's packages"
    detail = (
        f"line coverage of {modules}: {base.text()} at base, {final.text()} now "
        f"({gain:+.1f} points; at least {target.coverage_gain:g} asked)"
    )
    ok = final.statements > 0 and gain >= target.coverage_gain - 1e-9
    return CheckResult("coverage", ok, detail)


# -- docs ---------------------------------------------------------------------------------


def documented_modules(target: RepoTarget, workspace: Path, project: Project) -> list[str]:
    """The ticket's ``modules``, or the project's top-level packages (and lone modules)."""
    if target.modules:
        return list(target.modules)
    found: list[str] = []
    for root in project.import_roots:
        base = workspace / root
        if base.is_symlink() or not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            name = entry.name
            if name.startswith((".", "_")) or name in _TEST_DIRS or name in ("docs", "src"):
                continue
            if entry.is_symlink():  # model-written: a link is never followed on the host
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file() and name.isidentifier():
                found.append(name)
    return found


def api_reference(workspace: Path, modules: list[str]) -> list[CheckResult]:
    """``mkdocs.yml`` exists and each module has a ``::: module`` reference under ``docs/``."""
    config = next(
        (
            n
            for n in ("mkdocs.yml", "mkdocs.yaml")
            if (workspace / n).is_file() and not (workspace / n).is_symlink()
        ),
        None,
    )
    pages, _ = hostio.files(workspace, "docs", suffix=".md")
    refs = {
        line.strip()[3:].strip().split()[0]
        for data in pages.values()
        for line in data.decode("utf-8", "replace").splitlines()
        if line.strip().startswith(":::") and line.strip()[3:].strip()
    }
    results = []
    for module in modules or ["(no package found)"]:
        hit = sorted(r for r in refs if r == module or r.startswith(module + "."))
        if config is None:
            ok, why = False, "there is no mkdocs.yml at the repository root"
        elif not hit:
            ok, why = False, f"no page under docs/ has '::: {module}' (the API reference)"
        else:
            ok, why = True, f"{config}; API reference: " + ", ".join(f"::: {h}" for h in hit)
        results.append(CheckResult(f"api_reference[{module}]", ok, why))
    return results


# -- migrate ------------------------------------------------------------------------------


def gone(sandbox: Sandbox, patterns: list[str], *, timeout: float) -> list[CheckResult]:
    """Each pattern matches no line of a non-test ``.py`` file (searched in the sandbox)."""
    if not patterns:
        return []
    result = sandbox.run(
        [
            sandbox.python,
            "-I",
            "-c",
            _GONE_SCRIPT,
            json.dumps(patterns),
            json.dumps(list(SKIP_DIRS)),
            str(MAX_MATCHES),
        ],
        timeout=timeout,
    )
    found: dict[str, list[str]] | None = None
    if result.exit_code == 0 and result.killed is None:
        try:
            found = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            found = None
    results = []
    for pattern in patterns:
        name = f"gone[{pattern}]"
        if found is None or not isinstance(found.get(pattern), list):
            why = result.killed or f"exit code {result.exit_code}: {result.stderr.strip()[-500:]}"
            results.append(CheckResult(name, False, f"the search did not finish ({why})"))
        elif found[pattern]:
            lines = "\n".join(str(x) for x in found[pattern])
            results.append(CheckResult(name, False, f"still in the code:\n{lines}"))
        else:
            results.append(CheckResult(name, True, "no match in the non-test .py files"))
    return results


def warning_args(categories: list[str]) -> list[str]:
    """pytest's ``-W`` arguments that turn ``categories`` into errors."""
    return [a for c in categories for a in ("-W", f"error::{c}")]


def imports(
    sandbox: Sandbox, modules: list[str], categories: list[str], *, timeout: float
) -> list[CheckResult]:
    """Each module imports in the sandbox with the categories (default: deprecations) as errors."""
    flags = [a for c in categories or ["DeprecationWarning"] for a in ("-W", f"error::{c}")]
    results = []
    for module in modules:
        result = sandbox.run(
            [
                sandbox.python,
                *flags,
                "-c",
                "import importlib, sys\nimportlib.import_module(sys.argv[1])",
                module,
            ],
            timeout=timeout,
        )
        ok = result.exit_code == 0 and result.killed is None
        tail = (result.stderr or result.stdout).strip()[-1500:]
        detail = "imports cleanly" if ok else f"import {module} failed:\n{tail or result.killed}"
        results.append(CheckResult(f"imports[{module}]", ok, detail))
    return results


def warnings_held(
    categories: list[str], regressions: dict[str, str], incomplete: bool
) -> list[CheckResult]:
    """The suite, run with the categories as errors, kept every test that passed at base."""
    results = []
    for category in categories:
        if regressions or incomplete:
            shown = ", ".join(sorted(regressions)[:10]) or "the run did not report every test"
            detail = f"with -W error::{category}, tests that passed at base fail: {shown}"
            results.append(CheckResult(f"warnings_as_errors[{category}]", False, detail))
        else:
            detail = f"the suite passes with -W error::{category}"
            results.append(CheckResult(f"warnings_as_errors[{category}]", True, detail))
    return results
