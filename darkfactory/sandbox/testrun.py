"""Run pytest in a sandbox and read what happened to every test from the runner's report.

Outcomes come from ``_pytest_runner.py``, which relays pytest's own per-test reports to a
parent process the tested code cannot reach; the text output only explains a run that
reported nothing usable (an import error, a usage error, a timeout).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from darkfactory.sandbox.base import ExecResult, Sandbox

Outcome = Literal["passed", "failed", "error", "skipped"]

#: Longest failure message kept per test.
MAX_MESSAGE_CHARS = 2000
#: pytest exit codes that mean "could not run the tests" rather than "tests failed".
_EXIT_MEANING = {
    2: "pytest was interrupted: errors during collection",
    3: "pytest hit an internal error",
    4: "pytest was called wrongly (usage error, e.g. a path that does not exist)",
    5: "pytest collected no tests",
}


@dataclass(frozen=True)
class TestOutcome:
    """What happened to one test."""

    __test__ = False  # not a pytest test class

    nodeid: str
    file: str
    name: str
    outcome: Outcome
    duration_s: float
    message: str = ""


@dataclass
class TestRun:
    """One pytest run: every test's outcome, the exec result, and why it ran badly if it did."""

    __test__ = False

    outcomes: list[TestOutcome]
    exec: ExecResult
    collection_error: str | None = None
    timeout_s: float | None = None
    #: Test functions on disk the report has no outcome for (``expecting``).
    unreported: tuple[str, ...] = ()
    #: coverage.py's measurement, when asked for (``run_pytest(coverage=...)``):
    #: ``{"files": {path: {"statements", "covered", "missing"}}, "totals": {...}}`` or
    #: ``{"error": why}``.
    coverage: dict[str, Any] | None = None

    def expecting(self, expected: set[str]) -> TestRun:
        """This run, with the ``expected`` test ids (``expected_tests``) it did not report."""
        have = {o.nodeid.split("[", 1)[0] for o in self.outcomes}
        return dataclasses.replace(self, unreported=tuple(sorted(expected - have)))

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def passed(self) -> int:
        return self._count("passed")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def errors(self) -> int:
        return self._count("error")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def killed(self) -> str | None:
        return self.exec.killed

    @property
    def ok(self) -> bool:
        """Every collected test passed or was skipped, at least one passed, nothing broke."""
        return (
            self.collection_error is None
            and self.killed is None
            and self.failed == 0
            and self.errors == 0
            and self.passed > 0
            and not self.unreported
        )

    def summary(self, max_chars: int = 4000) -> str:
        """Compact text for an agent: the counts, then each failing test with its message."""
        head = (
            f"{self.total} tests: {self.passed} passed, {self.failed} failed, "
            f"{self.errors} errors, {self.skipped} skipped "
            f"(pytest exit code {self.exec.exit_code}, {self.exec.duration_s:.1f}s)"
        )
        lines = [head]
        if self.killed is not None:
            lines.append(_killed_text(self.killed, self.timeout_s))
        if self.collection_error:
            lines.append("COLLECTION ERROR: " + self.collection_error)
        if self.unreported:
            shown = ", ".join(self.unreported[:10]) + (" ..." if len(self.unreported) > 10 else "")
            lines.append(
                f"NOT REPORTED: {len(self.unreported)} test(s) in the files have no result, so "
                f"they count as failed (not collected, deselected, or the run was cut short): "
                f"{shown}"
            )
        bad = [o for o in self.outcomes if o.outcome in ("failed", "error")]
        text = "\n".join(lines)

        def more(n: int) -> str:
            return f"\n\n[... {n} more failing tests not shown]" if n else ""

        for i, o in enumerate(bad):
            title = f"\n\n{o.outcome.upper()} {o.nodeid}"
            block = title + ("\n" + _indent(o.message) if o.message else "")
            if len(text) + len(block) + len(more(len(bad) - i - 1)) <= max_chars:
                text += block
                continue
            if i == 0 and len(text) + len(title) + len(more(len(bad) - 1)) <= max_chars:
                text += title  # at least the name of the first failure
                i += 1
            text += more(len(bad) - i)
            break
        return text[:max_chars]


RUNNER = (Path(__file__).with_name("_pytest_runner.py")).read_text(encoding="utf-8")
#: The marker key of the runner's one JSON document on stdout.
_RUNNER_KEY = "darkfactory_test_runner"


def run_pytest(
    sandbox: Sandbox,
    targets: list[str],
    *,
    timeout: float,
    rootdir: str | None = None,
    extra_args: Sequence[str] = (),
    coverage: dict[str, list[str]] | None = None,
) -> TestRun:
    """Run pytest on ``targets`` (paths as the sandbox sees them) and read what it reported.

    The runner (``_pytest_runner.py``) starts isolated (``python -I``), loads pytest before
    the workspace is importable and relays every test's outcome through a process the tests
    cannot reach; ``rootdir`` (default: the workspace) is pytest's rootdir and conftest
    boundary. ``coverage`` (``source``, ``source_pkgs``, ``omit`` as coverage.py takes them)
    measures line coverage too (``TestRun.coverage``). Never raises for what the tests or
    pytest did.
    """
    args = [*targets, f"--rootdir={rootdir or sandbox.workdir}", "-p", "no:cacheprovider"]
    # The runner imports the installed plugins before pytest can rewrite their asserts; a
    # project's ``filterwarnings = error`` must not turn that notice into a crash.
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if rootdir is not None:  # a mounted suite: no conftest.py from above it
        args.append(f"--confcutdir={rootdir}")
    config = json.dumps({"args": [*args, "-q", *extra_args], "coverage": coverage})
    result = sandbox.run([sandbox.python, "-I", "-c", RUNNER, config], timeout=timeout)
    return read_result(result, timeout_s=timeout)


def read_result(result: ExecResult, *, timeout_s: float | None = None) -> TestRun:
    """The ``TestRun`` for the runner's ``result`` (its JSON document on stdout, if any)."""
    doc = _runner_document(result.stdout)
    if result.killed is not None:
        return TestRun([], result, None, timeout_s=timeout_s)
    if doc is None:
        why = f"the test runner reported nothing usable (exit code {result.exit_code})"
        return TestRun([], result, f"{why}\n{_output_tail(result)}".strip(), timeout_s=timeout_s)
    exit_code = int(doc.get("exit", 1))
    runner = ExecResult(exit_code, str(doc.get("output", "")), result.stderr, result.duration_s)
    records = doc.get("records", [])
    outcomes, collect_errors = _outcomes(records)
    # The last measurement: the runner sends it after pytest has ended.
    measured = next(
        (
            r["coverage"]
            for r in reversed(records)
            if isinstance(r, dict) and isinstance(r.get("coverage"), dict)
        ),
        None,
    )
    collection_error = None
    if collect_errors:
        collection_error = "\n".join(collect_errors)
    elif exit_code in _EXIT_MEANING and exit_code != 1:
        collection_error = f"{_EXIT_MEANING[exit_code]}\n{_output_tail(runner)}".strip()
    elif exit_code not in (0, 1):
        collection_error = f"pytest exit code {exit_code}\n{_output_tail(runner)}".strip()
    return TestRun(outcomes, runner, collection_error, timeout_s=timeout_s, coverage=measured)


def _runner_document(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if _RUNNER_KEY not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) and doc.get(_RUNNER_KEY) == 1 else None
    return None


def _outcomes(records: list[Any]) -> tuple[list[TestOutcome], list[str]]:
    """Per-test outcomes from the relayed reports (setup, call, teardown) and collect errors."""
    found: dict[str, dict[str, Any]] = {}
    collect_errors: list[str] = []
    for r in records:
        if not isinstance(r, dict):
            continue
        if "collect_error" in r:
            collect_errors.append(
                f"{r['collect_error'] or '?'}:\n{_indent(_trim(str(r.get('message', ''))))}"
            )
            continue
        nodeid = r.get("nodeid")
        if not isinstance(nodeid, str):
            continue
        t = found.setdefault(nodeid, {"outcome": None, "message": "", "duration": 0.0})
        t["duration"] += float(r.get("duration") or 0.0)
        when, outcome, message = r.get("when"), r.get("outcome"), str(r.get("message", ""))
        if outcome == "failed":
            if when == "call":
                t["outcome"], t["message"] = (
                    ("skipped", "") if r.get("xfail") else ("failed", message)
                )
            elif t["outcome"] in (None, "passed"):
                t["outcome"], t["message"] = "error", message
        elif outcome == "skipped" and when in ("setup", "call"):
            t["outcome"], t["message"] = "skipped", message
        elif outcome == "passed" and when == "call" and t["outcome"] is None:
            t["outcome"] = "passed"
    outcomes = []
    for nodeid, t in found.items():
        if t["outcome"] is None:
            continue
        file, _, rest = nodeid.partition("::")
        name = rest.rsplit("::", 1)[-1] if rest else nodeid
        message = _message(t["message"]) if t["outcome"] in ("failed", "error") else t["message"]
        outcomes.append(
            TestOutcome(nodeid, file, name, t["outcome"], round(t["duration"], 3), message)
        )
    return outcomes, collect_errors


def _message(text: str) -> str:
    """The useful part of a failure: pytest's ``E`` lines and where it failed, trimmed."""
    lines = text.splitlines()
    e_lines = [ln for ln in lines if ln.startswith("E ")]
    if e_lines:
        where = next((ln for ln in reversed(lines) if re.match(r"\S.*:\d+: ", ln)), "")
        picked = e_lines[:40] + ([where] if where else [])
        return _trim("\n".join(picked))
    return _trim(text.strip())


def _trim(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head - 20
    return f"{text[:head]}\n[... trimmed ...]\n{text[-tail:]}"


def _output_tail(result: ExecResult, limit: int = 3000) -> str:
    """The end of pytest's output, where it explains what went wrong."""
    text = "\n".join(s.strip() for s in (result.stdout, result.stderr) if s.strip())
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


def _killed_text(killed: str, timeout_s: float | None) -> str:
    if killed == "timeout":
        limit = f" of {timeout_s:g}s" if timeout_s else ""
        return (
            f"KILLED: pytest ran past its time limit{limit} and was killed; tests that had not "
            "finished have no result. Look for a test that hangs or loops (input(), a server, "
            "an endless loop) or make the tests faster."
        )
    return (
        f"KILLED: pytest hit the sandbox's {killed} limit and was killed before it could report "
        "every test; a test (or the code it runs) uses too much of it."
    )


def _indent(text: str) -> str:
    return "\n".join("    " + ln for ln in text.splitlines())


def expected_tests(sources: dict[str, bytes]) -> set[str]:
    """The test ids pytest must report for these files (path relative to the rootdir: text).

    Read statically (``ast``, never imported): top-level ``test*`` functions, and ``test*``
    methods of top-level ``Test*`` classes without ``__init__`` or of ``TestCase``
    subclasses. Parametrized tests match by their id without the ``[...]`` part. A file
    that does not parse is left out: its collection error fails the run anyway.
    """
    ids: set[str] = set()
    for path, data in sources.items():
        name = path.rsplit("/", 1)[-1]
        if not (name.startswith("test_") or name.endswith("_test.py")):
            continue
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("test") and not _is_fixture(node):
                    ids.add(f"{path}::{node.name}")
            elif isinstance(node, ast.ClassDef) and _collected_class(node):
                for item in node.body:
                    if (
                        isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                        and item.name.startswith("test")
                        and not _is_fixture(item)
                    ):
                        ids.add(f"{path}::{node.name}::{item.name}")
    return ids


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def _collected_class(node: ast.ClassDef) -> bool:
    if any(ast.unparse(b).endswith("TestCase") for b in node.bases):
        return True
    has_init = any(isinstance(i, ast.FunctionDef) and i.name == "__init__" for i in node.body)
    return node.name.startswith("Test") and not has_init
