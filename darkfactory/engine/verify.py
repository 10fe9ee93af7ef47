"""Verify: the acceptance and unit tests run in the sandbox, every outcome traced.

``SandboxVerifier`` is the real ``ports.Verifier``: it restores the frozen acceptance tests in
the workspace, installs the project's dependencies, runs both suites, cross-checks the
acceptance report with the test functions on disk, and classifies what failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from darkfactory.config import Config
from darkfactory.engine import deps
from darkfactory.engine.classify import Diagnosis, Failure, diagnose
from darkfactory.engine.holdout import SealedSuite, exception_type, sealed_summary
from darkfactory.engine.state import SuiteResult, VerifyRound
from darkfactory.reporting.trace import Trace
from darkfactory.sandbox import ACCEPTANCE_TARGET
from darkfactory.sandbox.base import Sandbox
from darkfactory.sandbox.testrun import TestOutcome, TestRun, expected_tests, run_pytest
from darkfactory.spec import Spec
from darkfactory.spec.trace import requirement_links
from darkfactory.workspace import hostio, rundir
from darkfactory.workspace.rundir import ACCEPTANCE_DIR


@dataclass
class VerifyResult:
    """The outcome of one verify round: both suites, measured in the sandbox."""

    round_no: int
    acceptance: TestRun
    unit: TestRun | None
    links: dict[str, list[str]]
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    #: The generated project's dependencies, installed before the suites ran (None: none).
    dependencies: deps.DepsResult | None = None
    #: The sealed holdout's tests (``engine.holdout``), run apart; None: the run seals none.
    sealed: TestRun | None = None

    @property
    def passed(self) -> bool:
        """Every acceptance test ran and passed (at least one did), and no unit test failed.

        A suite killed by a limit never passes, whatever its report says, and an acceptance
        suite whose tests were all skipped proves nothing.
        """
        acc = self.acceptance
        unit_ok = self.unit is None or (
            self.unit.exec.killed is None
            and self.unit.collection_error is None
            and self.unit.failed == 0
            and self.unit.errors == 0
        )
        return (
            all(
                run.exec.killed is None
                and run.collection_error is None
                and run.passed > 0
                and run.passed == run.total - run.skipped
                and not run.unreported
                for run in (acc, self.sealed)
                if run is not None
            )
            and unit_ok
        )

    def failures_text(self, max_chars: int) -> str:
        parts = []
        dependencies = self.dependencies
        if dependencies is not None and not dependencies.ok:
            parts.append("## Dependencies\n" + dependencies.summary())
        if self.acceptance.total == 0 and self.acceptance.collection_error is None:
            parts.append("No acceptance tests ran: nothing proves the spec is met.")
        parts.append(
            "## Acceptance tests (read-only, from the spec)\n"
            + self.acceptance.summary(max_chars // 2)
        )
        if self.sealed is not None:  # names and exception types only: never a source line
            parts.append(
                "## Sealed acceptance tests (hidden from every agent)\n"
                + sealed_summary(self.sealed, self.links)
            )
        if self.unit is not None:
            parts.append(
                "## Unit tests (tests/, written by the QA engineer)\n"
                + self.unit.summary(max_chars // 2)
            )
        if dependencies is not None and dependencies.ok:
            parts.append("## Dependencies\n" + dependencies.summary())
        return "\n\n".join(parts)[:max_chars]

    def to_state(self) -> VerifyRound:
        def suite(run: TestRun | None) -> SuiteResult:
            if run is None:
                return SuiteResult()
            return SuiteResult(
                total=run.total,
                passed=run.passed,
                failed=run.failed,
                errors=run.errors,
                skipped=run.skipped,
                collection_error=run.collection_error,
                outcomes={
                    test_key(o, keep_dirs=run is not self.unit): o.outcome for o in run.outcomes
                },
            )

        return VerifyRound(
            round=self.round_no,
            passed=self.passed,
            classes=self.diagnosis.classes,
            route=self.diagnosis.route,
            acceptance=suite(self.acceptance),
            unit=suite(self.unit),
            sealed=suite(self.sealed) if self.sealed is not None else None,
        )


def test_key(outcome: TestOutcome, *, keep_dirs: bool = False) -> str:
    """``file.py::test`` (or ``file.py::Class::test``), the key requirement links use.

    ``keep_dirs``: keep the file's sub-directories (``api/test_x.py::test``), as acceptance
    tests are keyed by their path under the acceptance directory (pytest's rootdir there).
    """
    nodeid: str = outcome.nodeid
    path, _, rest = nodeid.partition("::")
    if not rest:
        return nodeid
    if keep_dirs and not path.startswith(("/", "../")):
        return nodeid
    return f"{Path(path).name}::{rest}"


class SandboxVerifier:
    """Runs the tests of the run in ``run_dir`` in ``sandbox`` (module doc)."""

    def __init__(
        self,
        *,
        run_dir: Path,
        spec: Spec,
        config: Config,
        sandbox: Sandbox,
        trace: Trace,
        progress: Callable[[str], None] = lambda msg: None,
        sealed: SealedSuite | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.workspace = run_dir / rundir.WORKSPACE_DIR
        self.spec = spec
        self.config = config
        self.sandbox = sandbox
        self.trace = trace
        self.progress = progress
        self.sealed = sealed

    def verify(self, round_no: int) -> VerifyResult:
        self._restore_acceptance_copy()
        installed = deps.ensure(
            self.sandbox,
            self.workspace,
            self.run_dir,
            timeout_s=self.config.factory.sandbox.deps_timeout_s,
        )
        if installed is not None and installed.exec is not None:
            self.trace.write(
                "sandbox_exec",
                argv=["pip", "install", "-r", installed.source],
                exit_code=installed.exec.exit_code,
                duration_s=round(installed.exec.duration_s, 3),
                killed=installed.exec.killed,
            )
        timeout = self.config.factory.tests.timeout_s
        mounted = self.sandbox.path_of(ACCEPTANCE_TARGET)
        acceptance = run_pytest(self.sandbox, [mounted], timeout=timeout, rootdir=mounted)
        # Every test function on disk must have a result: a report that leaves one out was
        # cut short or tampered with, and proves nothing about it.
        frozen, _ = hostio.files(self.run_dir, ACCEPTANCE_DIR, suffix=".py")
        acceptance = acceptance.expecting(expected_tests(frozen))
        unit = None
        if hostio.kind_of(self.workspace, "tests") == "dir":
            unit = run_pytest(self.sandbox, ["tests"], timeout=timeout)
        sealed = self.sealed.run(timeout=timeout) if self.sealed is not None else None
        links = requirement_links(rundir.with_frozen_tests(self.spec, self.run_dir))
        diagnosis = diagnose(acceptance, unit, self.workspace)
        if sealed is not None:
            diagnosis.failures += sealed_failures(sealed, self.workspace)
        result = VerifyResult(round_no, acceptance, unit, links, diagnosis, installed, sealed)
        for suite, run in (("acceptance", acceptance), ("unit", unit), ("sealed", sealed)):
            if run is None:
                continue
            self.trace.write(
                "sandbox_exec",
                argv=["pytest", suite],
                exit_code=run.exec.exit_code,
                duration_s=round(run.exec.duration_s, 3),
                killed=run.exec.killed,
            )
            trace_outcomes(self.trace, suite, run, links, keep_dirs=suite != "unit")
        self.trace.write(
            "verify",
            round=round_no,
            passed=result.passed,
            acceptance={"total": acceptance.total, "passed": acceptance.passed},
            unit={"total": unit.total, "passed": unit.passed}
            if unit
            else {"total": 0, "passed": 0},
            **({"sealed": {"total": sealed.total, "passed": sealed.passed}} if sealed else {}),
        )
        self.progress(
            f"verify round {round_no}: acceptance {acceptance.passed}/{acceptance.total}"
            + (f", sealed {sealed.passed}/{sealed.total}" if sealed else "")
            + (f", unit {unit.passed}/{unit.total}" if unit else ", no unit tests")
        )
        return result

    def _restore_acceptance_copy(self) -> None:
        """Put the canonical acceptance tests back in the workspace if anything changed them.

        Whatever is at ``workspace/acceptance`` (a changed copy, a symlink, a file) is
        removed without being followed, and the frozen copy written in its place.
        """
        canonical = self.run_dir / ACCEPTANCE_DIR
        if not canonical.is_dir():
            return
        ws = self.workspace / ACCEPTANCE_DIR
        if hostio.kind_of(self.workspace, ACCEPTANCE_DIR) == "dir" and hostio.hash_tree(
            self.workspace, ACCEPTANCE_DIR
        ) == hostio.hash_tree(canonical):
            return
        hostio.remove(ws)
        hostio.copy_tree(canonical, ".", ws)
        self.trace.write(
            "acceptance_restored", reason="the workspace copy differed from the frozen tests"
        )


def trace_outcomes(
    trace: Trace, suite: str, run: TestRun, links: dict[str, list[str]], *, keep_dirs: bool
) -> None:
    """One ``test_outcome`` event per test of ``run``, with the requirements it proves."""
    for o in run.outcomes:
        key = test_key(o, keep_dirs=keep_dirs)
        trace.write(
            "test_outcome",
            suite=suite,
            test=key,
            requirements=links.get(key.split("[")[0], []),
            outcome=o.outcome,
            duration_s=o.duration_s,
        )


def sealed_failures(run: TestRun, workspace: Path) -> list[Failure]:
    """The sealed suite's failures for the diagnosis (suite ``sealed``), each detail only an
    exception type: the stuck check compares them, and nothing of their source is kept."""
    found = diagnose(run, None, workspace).failures
    return [Failure(f.cls, "sealed", f.test, exception_type(f.detail)) for f in found]
