"""Run pytest in a sandbox and read what happened to every test from its JUnit XML report.

Per-test outcomes come from the report pytest writes (``--junitxml``), never from its text
output; the text is only kept to explain a run that produced no usable report (an import
error, a usage error, a timeout). The report goes to a host directory the caller mounted
read-write in the sandbox (``results_dir`` at ``results_target``), never the workspace.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
    report: Path | None = None
    timeout_s: float | None = None

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


def run_pytest(
    sandbox: Sandbox,
    targets: list[str],
    *,
    results_dir: Path,
    results_target: str,
    name: str,
    timeout: float,
    extra_args: Sequence[str] = (),
) -> TestRun:
    """Run pytest on ``targets`` (paths as the sandbox sees them) and read its JUnit report.

    ``results_dir`` (host) must be mounted read-write at ``results_target`` in ``sandbox``.
    Never raises for what the tests or pytest did; a missing report is explained in the
    result (``collection_error``, or ``exec.killed`` when pytest was killed).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"report name must be a plain file name: {name!r}")
    report = Path(results_dir) / f"{name}.xml"
    report.unlink(missing_ok=True)  # a stale report must not pass for this run's
    argv = [
        sandbox.python,
        "-m",
        "pytest",
        *targets,
        "-p",
        "no:cacheprovider",
        f"--junitxml={sandbox.path_of(results_target)}/{name}.xml",
        # xunit1 records each test's file, which the node id is rebuilt from.
        "-o",
        "junit_family=xunit1",
        "-q",
        *extra_args,
    ]
    result = sandbox.run(argv, timeout=timeout)
    return read_report(report, result, timeout_s=timeout)


def read_report(report: Path, result: ExecResult, *, timeout_s: float | None = None) -> TestRun:
    """The ``TestRun`` for pytest's ``result`` and the JUnit XML it (maybe) wrote at ``report``."""
    outcomes: list[TestOutcome] = []
    collect_errors: list[str] = []
    problem: str | None = None
    try:
        root = ET.parse(report).getroot()
    except FileNotFoundError:
        root = None
        problem = "pytest wrote no report"
    except ET.ParseError as exc:
        root = None
        problem = f"pytest's report is not valid XML ({exc})"
    if root is not None:
        for case in root.iter("testcase"):
            outcome = _outcome(case)
            if outcome is None:
                continue
            if case.get("classname", "") == "" and outcome[0] == "error":
                # A file that could not be collected (pytest names it, without a test).
                where = case.get("file") or case.get("name", "?")
                collect_errors.append(f"{where}:\n{_indent(outcome[1])}")
                continue
            outcomes.append(_test_outcome(case, *outcome))
    collection_error = None
    if result.killed is None:
        if collect_errors:
            collection_error = "\n".join(collect_errors)
        elif problem is not None or result.exit_code in _EXIT_MEANING:
            why = _EXIT_MEANING.get(result.exit_code, problem or "")
            if problem and result.exit_code not in _EXIT_MEANING:
                why = f"{problem} (exit code {result.exit_code})"
            collection_error = f"{why}\n{_output_tail(result)}".strip()
    return TestRun(
        outcomes=outcomes,
        exec=result,
        collection_error=collection_error,
        report=report if root is not None else None,
        timeout_s=timeout_s,
    )


def _outcome(case: ET.Element) -> tuple[Outcome, str] | None:
    """The outcome of a ``<testcase>`` and its message text."""
    for child in case:
        if child.tag == "failure":
            return "failed", _message(child)
        if child.tag == "error":
            return "error", _message(child)
        if child.tag == "skipped":
            return "skipped", child.get("message", "") or (child.text or "")
    return "passed", ""


def _test_outcome(case: ET.Element, outcome: Outcome, message: str) -> TestOutcome:
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file", "")
    module = re.sub(r"\.py$", "", file).replace("/", ".")
    if file and (classname == module or classname.startswith(module + ".")):
        classes = classname[len(module) :].lstrip(".")
        parts = [file, *(classes.split(".") if classes else []), name]
        nodeid = "::".join(parts)
    else:  # not written by pytest's xunit1 writer: best effort
        nodeid = "::".join(p for p in (classname.replace(".", "/"), name) if p)
    try:
        duration = float(case.get("time", "0"))
    except ValueError:
        duration = 0.0
    return TestOutcome(nodeid, file, name, outcome, duration, message)


def _message(element: ET.Element) -> str:
    """The useful part of a failure: pytest's ``E`` lines and where it failed, trimmed."""
    text = element.text or ""
    lines = text.splitlines()
    e_lines = [ln for ln in lines if ln.startswith("E ")]
    if e_lines:
        where = next((ln for ln in reversed(lines) if re.match(r"\S.*:\d+: ", ln)), "")
        picked = e_lines[:40] + ([where] if where else [])
        return _trim("\n".join(picked))
    message = element.get("message", "")
    if text.strip():
        return _trim(text.strip() if message in text else f"{message}\n{text.strip()}".strip())
    return _trim(message)


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
