"""The repository's own test suite at the base commit, and the same suite at the end, compared.

``run_baseline`` runs it in the sandbox with the verdict runner (``testrun.run_pytest``) and
keeps every test's outcome (``baseline.json``); ``compare`` says which tests that passed at
base no longer do (regressions), which already failed (not regressions) and which are new.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from darkfactory.repo.project import Project
from darkfactory.sandbox.base import Sandbox
from darkfactory.sandbox.testrun import TestRun, run_pytest

BASELINE_FILE = "baseline.json"
#: A test's outcome; ``missing``: it passed at base and has no result at the end.
Outcome = Literal["passed", "failed", "error", "skipped"]
FinalOutcome = Literal["passed", "failed", "error", "skipped", "missing"]
#: Longest failure message kept per test.
MAX_MESSAGE_CHARS = 500


class Baseline(BaseModel):
    """One run of the repository's suite: every test id and its outcome."""

    model_config = ConfigDict(frozen=True)

    commit: str
    test_command: tuple[str, ...]
    outcomes: dict[str, Outcome]
    #: The start of each failure's message (failed and error tests only).
    messages: dict[str, str] = {}
    collection_error: str | None = None
    killed: str | None = None
    duration_s: float = 0.0

    @classmethod
    def from_run(cls, run: TestRun, *, commit: str, test_command: tuple[str, ...]) -> Baseline:
        return cls(
            commit=commit,
            test_command=test_command,
            outcomes={o.nodeid: o.outcome for o in run.outcomes},
            messages={
                o.nodeid: o.message[:MAX_MESSAGE_CHARS]
                for o in run.outcomes
                if o.outcome in ("failed", "error") and o.message
            },
            collection_error=run.collection_error,
            killed=run.killed,
            duration_s=round(run.exec.duration_s, 3),
        )

    def ids(self, *outcomes: Outcome) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o in outcomes)

    def counts(self) -> dict[str, int]:
        found = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for outcome in self.outcomes.values():
            found[outcome] += 1
        return found

    def save(self, run_dir: Path) -> Path:
        path = Path(run_dir) / BASELINE_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Baseline:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def run_baseline(
    sandbox: Sandbox,
    project: Project,
    *,
    commit: str,
    timeout: float,
    plugins: Sequence[str] = (),
) -> Baseline:
    """The suite of ``project`` run in ``sandbox`` (a checkout of ``commit``), every outcome kept.

    ``sandbox`` must have the project importable (``environment.project_sandbox``) and its
    ``setup:`` commands done; ``plugins`` are the pytest plugins its environment installed
    (``RepoEnvironment.pytest_plugins``). Never raises for what the tests did.
    """
    return Baseline.from_run(
        run_suite(sandbox, project, timeout=timeout, plugins=plugins),
        commit=commit,
        test_command=project.test_command,
    )


def run_suite(
    sandbox: Sandbox,
    project: Project,
    *,
    timeout: float,
    plugins: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    coverage: dict[str, list[str]] | None = None,
) -> TestRun:
    """The repository's suite, as its test command says, through the verdict runner.

    ``extra_args`` come after the project's own (e.g. ``-W error::DeprecationWarning``);
    ``coverage`` measures line coverage too (``testrun.run_pytest``).
    """
    named = [arg for module in plugins for arg in ("-p", module)]
    return run_pytest(
        sandbox,
        [],
        timeout=timeout,
        extra_args=[*named, *project.pytest_args, *extra_args],
        coverage=coverage,
    )


class Comparison(BaseModel):
    """The suite at the end against the baseline."""

    model_config = ConfigDict(frozen=True)

    #: Passed at base and at the end.
    pass_to_pass: list[str]
    #: Passed at base, not at the end: test id -> its outcome now (``missing``: no result).
    regressions: dict[str, FinalOutcome]
    #: Failed (or errored) at base: test id -> its outcome now. Not regressions.
    failing_at_base: dict[str, FinalOutcome]
    #: Not in the baseline: test id -> outcome.
    new_tests: dict[str, Outcome]
    #: Skipped at base (whatever they do now).
    skipped_at_base: list[str]
    #: The final run could not report every test (a collection error, a limit).
    final_incomplete: bool

    @property
    def ok(self) -> bool:
        """Nothing that passed at base fails now, and no new test fails."""
        bad_new = [t for t, o in self.new_tests.items() if o in ("failed", "error")]
        return not self.regressions and not bad_new and not self.final_incomplete

    def summary(self) -> str:
        fixed = sum(1 for o in self.failing_at_base.values() if o == "passed")
        lines = [
            f"PASS_TO_PASS {len(self.pass_to_pass)}/"
            f"{len(self.pass_to_pass) + len(self.regressions)} still pass; "
            f"{len(self.regressions)} regressions; {len(self.failing_at_base)} failed at base "
            f"({fixed} pass now); {len(self.new_tests)} new tests",
        ]
        lines += [f"REGRESSION {t}: {o}" for t, o in sorted(self.regressions.items())]
        return "\n".join(lines)


def compare(baseline: Baseline, final: Baseline) -> Comparison:
    """``final`` (the suite at the end) against ``baseline`` (module doc)."""
    now: dict[str, Outcome] = dict(final.outcomes)
    pass_to_pass: list[str] = []
    regressions: dict[str, FinalOutcome] = {}
    failing: dict[str, FinalOutcome] = {}
    skipped: list[str] = []
    for test, before in sorted(baseline.outcomes.items()):
        after: FinalOutcome = now.get(test, "missing")
        if before == "passed":
            if after == "passed":
                pass_to_pass.append(test)
            else:
                regressions[test] = after
        elif before in ("failed", "error"):
            failing[test] = after
        else:
            skipped.append(test)
    new = {t: o for t, o in sorted(now.items()) if t not in baseline.outcomes}
    return Comparison(
        pass_to_pass=pass_to_pass,
        regressions=regressions,
        failing_at_base=failing,
        new_tests=new,
        skipped_at_base=skipped,
        final_incomplete=final.collection_error is not None or final.killed is not None,
    )
