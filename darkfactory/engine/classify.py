"""Failure classification: what kind of failure a verify round found, and who should fix it.

Classes (``FailureClass``), most urgent first:

- ``timeout``: pytest was killed by the time limit (a test hangs or loops).
- ``resource``: killed by the memory, CPU, output, file-size or disk limit (``disk``: the
  workspace went over ``sandbox.disk_mb``), or a test, or the import of a test module,
  that met the memory limit (``MemoryError``).
- ``missing_dependency``: ``No module named X`` where X is not a file of the workspace.
- ``syntax_import``: the code or a test cannot be imported (SyntaxError, ImportError, a
  missing workspace module).
- ``setup_error``: a test errored in setup (a fixture or ``conftest.py``).
- ``qa_test``: only unit tests fail while every acceptance test passes: the QA-written test
  is taken to contradict the spec, so the QA engineer fixes the test.
- ``assertion``: a test's assertion failed: the code does the wrong thing.
- ``code_error``: the code raised an exception during a test.
- ``no_tests``: no acceptance test ran, so nothing proves the spec.
- ``model_protocol``: not a test failure: an agent broke the tool-call protocol three
  times in a row (``engine.protocol``), so its phase failed and the run with it.

What the sandbox scrubbed after a test run (setuid bits, FIFOs, sockets, device nodes:
``ExecResult.scrubbed``) is no failure class: it is gone before the host reads the
workspace, and a test may leave a socket behind in good faith.

Routing: ``qa_test`` goes to the QA engineer, ``no_tests`` to the architect, everything else
to the developer. Spec ambiguity is not found here: an agent reports it with the
``report_ambiguity`` tool and the run escalates to a person.

``signature`` identifies a failure state (class, failing tests, first message line with
numbers and addresses blanked) so the pipeline can see a fix round that changed nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from darkfactory.sandbox.testrun import TestOutcome, TestRun
from darkfactory.workspace import hostio

FailureClass = Literal[
    "timeout",
    "resource",
    "missing_dependency",
    "syntax_import",
    "setup_error",
    "qa_test",
    "assertion",
    "code_error",
    "no_tests",
    "model_protocol",
]
ROUTES: dict[str, str] = {
    "qa_test": "qa_engineer",
    "no_tests": "architect",
}
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_IMPORT_PROBLEMS = (
    "SyntaxError",
    "IndentationError",
    "ImportError",
    "ModuleNotFoundError",
    "NameError: name",
)
_OUT_OF_MEMORY = re.compile(r"\bMemoryError\b|Cannot allocate memory")
_VOLATILE = re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?|/tmp/\S+")


@dataclass
class Failure:
    """One failing test (or the suite, when it could not run), classified."""

    cls: FailureClass
    suite: str
    test: str
    detail: str


@dataclass
class Diagnosis:
    failures: list[Failure] = field(default_factory=list)
    #: The role that owns every fix, whatever the class (a tests ticket's QA engineer,
    #: a docs ticket's technical writer); None: routed by class.
    owner: str | None = None

    @property
    def primary(self) -> FailureClass | None:
        """The class that decides the route: the most urgent one present."""
        order = list(FailureClass.__args__)  # type: ignore[attr-defined]
        present = {f.cls for f in self.failures}
        return next((c for c in order if c in present), None)

    @property
    def route(self) -> str:
        """The role key that should fix it."""
        return self.owner or ROUTES.get(self.primary or "", "developer")

    @property
    def classes(self) -> list[str]:
        return sorted({f.cls for f in self.failures})

    def signature(self) -> str:
        parts = sorted(
            f"{f.cls}|{f.suite}|{f.test}|{_VOLATILE.sub('#', first_line(f.detail))}"
            for f in self.failures
        )
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("[..."):
            return line.removeprefix("E ").strip()
    return ""


def _workspace_modules(workspace: Path) -> set[str]:
    names = set()
    for entry in hostio.walk(workspace, max_entries=hostio.MAX_ENTRIES * 5):
        parts = entry.path.split("/")
        if entry.kind == "file" and len(parts) == 1 and entry.path.endswith(".py"):
            names.add(entry.path[:-3].lower())
        elif entry.kind == "file" and len(parts) == 2 and parts[1] == "__init__.py":
            names.add(parts[0].lower())
    return names


def _declared_dependencies(workspace: Path) -> set[str]:
    """Top-level names in requirements.txt / pyproject dependencies (normalised, best effort)."""
    names: set[str] = set()
    texts = []
    with contextlib.suppress(hostio.Refused, FileNotFoundError):
        texts += hostio.read_text(workspace, "requirements.txt", errors="replace").splitlines()
    with contextlib.suppress(hostio.Refused, FileNotFoundError):
        import tomllib

        try:
            data = tomllib.loads(hostio.read_text(workspace, "pyproject.toml"))
        except tomllib.TOMLDecodeError:
            data = {}
        project = data.get("project")
        declared = project.get("dependencies", []) if isinstance(project, dict) else []
        texts += [d for d in declared if isinstance(d, str)] if isinstance(declared, list) else []
    for line in texts:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if m and not line.lstrip().startswith(("#", "-")):
            names.add(m.group(1).lower().replace("-", "_"))
    return names


def _import_class(text: str, workspace: Path) -> FailureClass | None:
    missing = _NO_MODULE.search(text)
    if missing:
        top = missing.group(1).split(".")[0].lower()
        known = _workspace_modules(workspace)
        # A module the workspace declares as a dependency but cannot import: the install
        # failed (missing_dependency). Any other missing module is the developer's to write,
        # or to declare in requirements.txt (syntax_import).
        if top in known or top not in _declared_dependencies(workspace):
            return "syntax_import"
        return "missing_dependency"
    if any(p in text for p in _IMPORT_PROBLEMS):
        return "syntax_import"
    return None


def _outcome_class(o: TestOutcome, workspace: Path) -> FailureClass:
    text = o.message
    imported = _import_class(text, workspace)
    if imported is not None:
        return imported
    if _OUT_OF_MEMORY.search(text):  # the sandbox's memory limit, met inside a test
        return "resource"
    if o.outcome == "error":
        return "setup_error"
    if "AssertionError" in text or re.search(r"^E\s+assert ", text, re.M):
        return "assertion"
    return "code_error"


def diagnose(acceptance: TestRun, unit: TestRun | None, workspace: Path) -> Diagnosis:
    """Classify every failure of one verify round."""
    diagnosis = Diagnosis()
    for suite, run in (("acceptance", acceptance), ("unit", unit)):
        if run is None:
            continue
        killed = run.exec.killed
        if killed is not None:
            cls: FailureClass = "timeout" if killed == "timeout" else "resource"
            diagnosis.failures.append(
                Failure(cls, suite, "(suite)", f"killed by the {killed} limit")
            )
            continue
        if run.collection_error and run.exec.exit_code == 5 and not run.outcomes:
            if suite == "acceptance":
                diagnosis.failures.append(Failure("no_tests", suite, "(none)", "no test collected"))
            continue
        if run.collection_error:
            text = run.collection_error  # a MemoryError at import is the limit, not the code
            cls = _import_class(text, workspace) or (
                "resource" if _OUT_OF_MEMORY.search(text) else "syntax_import"
            )
            diagnosis.failures.append(Failure(cls, suite, "(collection)", run.collection_error))
            continue
        for o in run.outcomes:
            if o.outcome in ("failed", "error"):
                diagnosis.failures.append(
                    Failure(_outcome_class(o, workspace), suite, o.nodeid, o.message)
                )
    if (
        acceptance.total == 0
        and acceptance.collection_error is None
        and acceptance.exec.killed is None
    ):
        diagnosis.failures.append(
            Failure("no_tests", "acceptance", "(none)", "no acceptance test ran")
        )
    acceptance_clean = not any(f.suite == "acceptance" for f in diagnosis.failures)
    if acceptance_clean:
        for f in diagnosis.failures:
            if f.suite == "unit" and f.cls in ("assertion", "code_error"):
                f.cls = "qa_test"
    return diagnosis
