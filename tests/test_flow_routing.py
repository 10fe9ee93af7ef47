"""Every route of the flow, in process: stand-ins for the crew, the tests, the docs and a person.

The flow, its journal, its SQLite persistence, the session (start, resume, approve) and git
are the real ones; the crew, verifier, docs checker and checkpoint answers are stand-ins
(``engine.ports``), so the whole matrix runs in seconds, without a sandbox or a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from runhelp import config_with

from darkfactory.config import load_config
from darkfactory.engine import session
from darkfactory.engine.docs_check import BuildResult, DocsCheck
from darkfactory.engine.environment import RunEnv
from darkfactory.engine.state import SpecAmbiguity
from darkfactory.engine.verify import VerifyResult
from darkfactory.models.budget import BudgetExhausted, BudgetMeter
from darkfactory.reporting.trace import Trace
from darkfactory.sandbox.base import ExecResult
from darkfactory.sandbox.testrun import TestOutcome, TestRun
from darkfactory.spec import load_spec
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import rundir
from darkfactory.workspace.context import RunContext

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "specs" / "wordcount.yaml"
OK = ExecResult(0, "", "", 0.1)


class Killed(BaseException):
    """Stands for a kill -9 at a chosen point: nothing after it runs."""


class Crew:
    """Writes one file per phase (so every phase commits), or nothing, or fails on cue."""

    def __init__(
        self, ws: Path, *, idle: set[str] = frozenset(), fail: dict[str, Any] | None = None
    ):
        self.ws = ws
        self.idle = set(idle)
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def run(self, phase: str, inputs: Mapping[str, Any]) -> str:
        self.calls.append((phase, dict(inputs)))
        n = sum(1 for p, _ in self.calls if p == phase)
        error = self.fail.pop(f"{phase}#{n}", None)
        if error is not None:
            raise error
        if phase not in self.idle:
            name = "README.md" if phase.startswith("document") else f"{phase}_{n}.py"
            (self.ws / name).write_text(f"# {phase} {n}\n")
        return f"{phase} done"

    def phases(self) -> list[str]:
        return [p for p, _ in self.calls]


def suite(*outcomes: str, message: str = "assert 1 == 2") -> TestRun:
    return TestRun(
        [
            TestOutcome(f"test_a.py::test_{i}", "test_a.py", f"test_{i}", o, 0.01, message)  # type: ignore[arg-type]
            for i, o in enumerate(outcomes)
        ],
        OK,
    )


class Verifier:
    """Plays a list of verdicts: True passes, a string fails with that message."""

    def __init__(self, verdicts: list[bool | str], fail_on: int | None = None):
        self.verdicts = list(verdicts)
        self.rounds: list[int] = []
        self.fail_on = fail_on

    def verify(self, round_no: int) -> VerifyResult:
        self.rounds.append(round_no)
        if self.fail_on == len(self.rounds):
            raise Killed()
        verdict = self.verdicts.pop(0) if self.verdicts else True
        if verdict is True:
            return VerifyResult(round_no, suite("passed"), None, {})
        from darkfactory.engine.classify import diagnose

        acc = suite("failed", message=f"E       AssertionError: {verdict}")
        return VerifyResult(round_no, acc, None, {}, diagnose(acc, None, Path("/nonexistent")))


class Docs:
    def __init__(self, verdicts: list[bool]):
        self.verdicts = list(verdicts)
        self.rounds: list[int] = []

    def check(self, round_no: int) -> DocsCheck:
        self.rounds.append(round_no)
        ok = self.verdicts.pop(0) if self.verdicts else True
        errors = [] if ok else ["ERROR - Doc file 'index.md' contains a broken link"]
        build = BuildResult(OK, "mkdocs.yml", 0 if ok else 1, pages=["index.md"], errors=errors)
        return DocsCheck(build, [])


class Person:
    """Answers checkpoints from a list: "y", ("n", reason), or None to pause the run."""

    def __init__(self, answers: list[Any] | None = None):
        self.answers = list(answers or [])
        self.asked: list[str] = []

    def request_feedback(self, context: Any, flow: Any) -> str:
        from crewai.flow import HumanFeedbackPending

        self.asked.append(context.method_name)
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            raise HumanFeedbackPending(context=context, callback_info=context.metadata)
        if answer == "y":
            return json.dumps({"decision": "approved", "reason": "", "by": "test"})
        return json.dumps({"decision": "rejected", "reason": answer[1], "by": "test"})


class Harness:
    def __init__(self, tmp_path: Path, **factory: Any) -> None:
        self.config = load_config(config_with(tmp_path, **factory) if factory else REPO / "config")
        self.spec = load_spec(SPEC)
        self.run_dir = tmp_path / "runs" / "run-1"
        ws = self.run_dir / "workspace"
        (self.run_dir / "acceptance").mkdir(parents=True)
        rundir.spec_json(self.run_dir).parent.mkdir()
        rundir.spec_json(self.run_dir).write_text(self.spec.model_dump_json())
        gitrepo.init(ws)
        (ws / "acceptance").mkdir()
        for t in self.spec.acceptance_tests:
            (ws / "acceptance" / t.name).write_text(t.content)
        self.ws = ws

    def env(
        self,
        crew: Crew,
        verifier: Verifier,
        docs: Docs,
        person: Person | None = None,
        budget: BudgetMeter | None = None,
    ) -> RunEnv:
        trace = Trace(self.run_dir / "trace.jsonl")
        return RunEnv(
            run_id=self.run_dir.name,
            run_dir=self.run_dir,
            config=self.config,
            spec=self.spec,
            trace=trace,
            ctx=RunContext(workspace=self.ws, on_event=trace.sink),
            crew=crew,
            verifier=verifier,
            docs=docs,
            provider=person or Person(),
            budget=budget or BudgetMeter(),
        )

    def start(self, env: RunEnv) -> session.RunOutcome:
        return session.execute(env)

    def resume(self, env: RunEnv) -> session.RunOutcome:
        return session.execute(env, resume=True)

    def state(self) -> dict[str, Any]:
        return rundir.stored_state(self.run_dir) or {}

    def steps(self) -> list[str]:
        return [e["step"] for e in self.state().get("journal", [])]


HAPPY = [
    "intake",
    "spec_approval",
    "design",
    "implement",
    "qa",
    "verify",
    "document",
    "docs_check",
    "recheck",
    "output_review",
    "deliver",
]


def test_the_happy_path(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    crew = Crew(h.ws)
    out = h.start(h.env(crew, Verifier([True]), Docs([True])))
    assert out.status == "delivered" and out.exit_code == 0
    assert h.steps() == HAPPY
    assert crew.phases() == ["design", "implement", "verify", "document"]
    assert gitrepo.log(h.ws)[0].startswith("intake")


def test_a_failure_goes_to_a_fix_round_with_the_failures(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    crew = Crew(h.ws)
    verifier = Verifier(["assert count('a') == 1"])
    out = h.start(h.env(crew, verifier, Docs([True])))
    assert out.status == "delivered"
    assert verifier.rounds == [0, 1]
    fix = [inputs for phase, inputs in crew.calls if phase == "fix"]
    assert len(fix) == 1 and "assert count('a') == 1" in fix[0]["failures"]
    assert fix[0]["failure_class"] == "assertion" and fix[0]["fix_round"] == 1


def test_failures_past_max_fix_rounds_fail_the_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_fix_rounds=2)
    out = h.start(h.env(Crew(h.ws), Verifier(["a", "b", "c", "d"]), Docs([True])))
    assert out.status == "failed" and "after 2 fix round(s)" in out.reason
    assert h.steps()[-1] == "give_up"


def test_the_same_failures_twice_escalate_as_stuck(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    out = h.start(h.env(Crew(h.ws), Verifier(["same", "same"]), Docs([True])))
    assert out.status == "escalated" and "exactly the same failures" in out.reason


def test_a_fix_that_changes_nothing_escalates(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    out = h.start(h.env(Crew(h.ws, idle={"fix"}), Verifier(["x"]), Docs([True])))
    assert out.status == "escalated" and "changed no file" in out.reason


def test_docs_failures_loop_back_to_the_writer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    crew, docs = Crew(h.ws), Docs([False, True])
    out = h.start(h.env(crew, Verifier([True]), docs))
    assert out.status == "delivered" and docs.rounds == [0, 1]
    assert crew.phases()[-1] == "document_fix"


def test_docs_failing_every_round_fail_the_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_fix_rounds=1)
    out = h.start(h.env(Crew(h.ws), Verifier([True]), Docs([False, False, False])))
    assert out.status == "failed" and "docs still failing" in out.reason


def test_a_docs_fix_that_changes_nothing_escalates(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    out = h.start(h.env(Crew(h.ws, idle={"document_fix"}), Verifier([True]), Docs([False])))
    assert out.status == "escalated" and "docs fix round 1 changed no file" in out.reason


def test_code_changed_by_the_docs_phases_is_tested_again(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    class CodeWritingCrew(Crew):
        def run(self, phase: str, inputs: Mapping[str, Any]) -> str:
            if phase == "document":
                (self.ws / "wordcount.py").write_text("# docstring\n")
            return super().run(phase, inputs)

    verifier = Verifier([True, True])
    out = h.start(h.env(CodeWritingCrew(h.ws), verifier, Docs([True])))
    assert out.status == "delivered" and verifier.rounds == [0, 0]


def test_changed_frozen_acceptance_tests_fail_the_run(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    class Tamper(Crew):
        def run(self, phase: str, inputs: Mapping[str, Any]) -> str:
            if phase == "implement":
                (h.run_dir / "acceptance" / "test_extra.py").write_text("def test_x(): pass\n")
            return super().run(phase, inputs)

    out = h.start(h.env(Tamper(h.ws), Verifier([True]), Docs([True])))
    assert out.status == "failed" and "no longer match" in out.reason


def test_spec_approval_pauses_then_approve_delivers(tmp_path: Path) -> None:
    h = Harness(tmp_path, checkpoints={"spec_approval": "ask"})
    crew = Crew(h.ws)
    out = h.start(h.env(crew, Verifier([True]), Docs([True])))
    assert out.status == "awaiting_approval" and out.exit_code == 3 and crew.calls == []
    state = session.approve(h.run_dir, reject=False, reason="go ahead")
    assert state.pending_checkpoint is not None
    assert state.pending_checkpoint.decision == "approved"
    out = h.resume(h.env(crew, Verifier([True]), Docs([True])))
    assert out.status == "delivered"
    assert crew.calls[0][1]["feedback"] == "go ahead"  # the notes reach the design task


def test_a_rejected_spec_stays_rejected_when_resumed(tmp_path: Path) -> None:
    h = Harness(tmp_path, checkpoints={"spec_approval": "ask"})
    h.start(h.env(Crew(h.ws), Verifier([]), Docs([])))
    session.approve(h.run_dir, reject=True, reason="wrong spec")
    out = h.resume(h.env(Crew(h.ws), Verifier([]), Docs([])))
    assert out.status == "rejected" and "wrong spec" in out.reason
    saved = session.saved_state(h.run_dir)
    assert saved is not None and session.has_ended(saved)  # the CLI: "already ended"


def test_a_rejected_output_review_goes_back_to_the_crew(tmp_path: Path) -> None:
    h = Harness(tmp_path, checkpoints={"output_review": "ask"})
    crew = Crew(h.ws)
    person = Person(answers=[("n", "add an example"), "y"])
    verifier, docs = Verifier([True, True]), Docs([True, True])
    out = h.start(h.env(crew, verifier, docs, person))
    assert out.status == "delivered"
    assert person.asked == ["output_review", "output_review"]
    revise = [inputs for phase, inputs in crew.calls if phase == "fix"]
    assert revise and revise[0]["feedback"] == "add an example"
    assert verifier.rounds == [0, 0] and docs.rounds == [0, 1]


def test_deploy_runs_after_its_approval_and_a_failing_deploy_fails(tmp_path: Path) -> None:
    ok = ["python3", "-c", "print('deployed')"]
    h = Harness(tmp_path, deploy={"command": ok}, checkpoints={"deploy_approval": "ask"})
    person = Person(answers=["y"])
    out = h.start(h.env(Crew(h.ws), Verifier([True]), Docs([True]), person))
    assert out.status == "delivered" and person.asked == ["deploy_approval"]
    assert h.state()["deploy"]["exit_code"] == 0
    bad = Harness(
        tmp_path / "b", deploy={"command": ["false"]}, checkpoints={"deploy_approval": "auto"}
    )
    out = bad.start(bad.env(Crew(bad.ws), Verifier([True]), Docs([True])))
    assert out.status == "failed" and "the deploy command failed" in out.reason


@pytest.mark.parametrize("which", ["max_llm_calls", "max_tokens", "max_wall_s", "max_cost_usd"])
def test_each_budget_stops_the_run_and_resume_continues(tmp_path: Path, which: str) -> None:
    h = Harness(tmp_path)
    crew = Crew(h.ws, fail={"implement#1": BudgetExhausted(which, 10, 10)})
    out = h.start(h.env(crew, Verifier([True]), Docs([True])))
    assert out.status == "budget_exhausted" and out.exit_code == 4 and which in out.reason
    out = h.resume(h.env(crew, Verifier([True]), Docs([True])))
    assert out.status == "delivered"
    assert crew.phases() == ["design", "implement", "implement", "verify", "document"]


def test_a_spec_ambiguity_escalates(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    question = [{"question": "which encoding?", "reason": "the spec says none"}]
    crew = Crew(h.ws, fail={"design#1": SpecAmbiguity(question)})
    out = h.start(h.env(crew, Verifier([]), Docs([])))
    assert out.status == "escalated" and "which encoding?" in out.reason


KILL_POINTS = ["design#1", "implement#1", "verify#1", "fix#1", "verify-run#2", "document#1"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_anywhere_resumes_without_redoing_finished_steps(
    tmp_path: Path, point: str
) -> None:
    h = Harness(tmp_path)
    fail_on = int(point.split("#")[1]) if point.startswith("verify-run") else None
    crew = Crew(h.ws, fail={} if fail_on else {point: Killed()})
    with pytest.raises(Killed):
        h.start(h.env(crew, Verifier(["once"], fail_on=fail_on), Docs([True])))
    done = h.steps()
    assert h.state()["status"] == "failed"
    out = h.resume(h.env(crew, Verifier([True]), Docs([True])))
    assert out.status == "delivered", out.reason
    assert h.steps()[: len(done)] == done  # the journal only grew
    phases = crew.phases()
    killed_phase = point.split("#")[0]
    for phase in ("design", "implement", "verify", "document"):
        expected = 2 if phase == killed_phase else 1
        assert phases.count(phase) == expected, (phase, phases)
