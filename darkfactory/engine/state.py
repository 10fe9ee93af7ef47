"""What a run's flow remembers (``RunState``) and how its steps are journaled.

Split out of ``darkfactory.engine.flow`` so that the flow there reads as the list of its steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from darkfactory.errors import DarkFactoryError

MAX_FAILURE_CHARS = 6000
MAX_INLINE_ACCEPTANCE_CHARS = 8000
MAX_DESIGN_CHARS = 8000
MAX_DOCS_FAILURE_CHARS = 6000


class JournalEntry(BaseModel):
    """One finished step, and the route its router took (None for a listener)."""

    step: str
    route: str | None = None


class SuiteResult(BaseModel):
    """One suite's counts in a verify round, and each test's outcome by its key."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    collection_error: str | None = None
    outcomes: dict[str, str] = Field(default_factory=dict)


class VerifyRound(BaseModel):
    """One verify round (``verify.VerifyResult.to_state``)."""

    round: int = 0
    passed: bool = False
    classes: list[str] = Field(default_factory=list)
    route: str = "developer"
    acceptance: SuiteResult = Field(default_factory=SuiteResult)
    unit: SuiteResult = Field(default_factory=SuiteResult)
    #: The sealed holdout's tests (``engine.holdout``); None: the run sealed none.
    sealed: SuiteResult | None = None


class FailedExample(BaseModel):
    file: str
    line: int
    kind: str


class DocsRound(BaseModel):
    """One docs check (``docs_check.DocsCheck.to_state``)."""

    round: int = 0
    passed: bool = False
    built: bool = False
    pages: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    examples_run: int = 0
    examples_passed: int = 0
    examples_skipped: list[str] = Field(default_factory=list)
    failed_examples: list[FailedExample] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class Decision(BaseModel):
    """A checkpoint's decision: approved or rejected, by whom, why, and how it was asked."""

    checkpoint: str
    decision: str  # checkpoints.APPROVED or REJECTED
    by: str = "?"
    reason: str = ""
    mode: str = "ask"
    at: float = 0.0

    @property
    def rejected(self) -> bool:
        return self.decision == "rejected"


class PendingCheckpoint(BaseModel):
    """The checkpoint a paused run waits at; ``darkfactory approve`` adds the decision."""

    checkpoint: str
    message: str = ""
    #: What the person is asked to approve, as the terminal shows it (the review summary,
    #: the deploy command): the service's inbox shows it too.
    summary: str = ""
    requested_at: float = 0.0
    approve: str = ""
    reject: str = ""
    decision: str | None = None
    reason: str = ""
    by: str | None = None
    mode: str | None = None
    at: float | None = None


class DeployRecord(BaseModel):
    """What the deploy command did (``deploy.DeployResult``), when one ran."""

    argv: list[str] = Field(default_factory=list)
    commit: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    killed: str | None = None


class PhaseWork(BaseModel):
    """What one crew phase really did, measured by the pipeline (``engine.protocol``)."""

    task: str
    #: Workspace files the phase changed, added or removed (from git, not from the answer).
    files: list[str] = Field(default_factory=list)
    #: Test runs by an agent during the phase (run_tests, or pytest through run_command).
    tests_run: int = 0
    #: The start of the crew's final answer, cleaned (a model's claim, not a fact).
    answer: str = ""


class RunState(BaseModel):
    """Everything the flow must remember to report or resume a run."""

    id: str = ""
    run_dir: str = ""
    status: str = "running"
    reason: str = ""
    phase: str = "intake"
    fix_round: int = 0
    max_fix_rounds: int = 3
    acceptance_frozen: bool = False
    acceptance_hashes: dict[str, str] = Field(default_factory=dict)
    verify_rounds: list[VerifyRound] = Field(default_factory=list)
    last_failures: str = ""
    commits: dict[str, str] = Field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float = 0.0
    #: Finished steps in order, with the route each router took.
    journal: list[JournalEntry] = Field(default_factory=list)
    #: Scripted-model playbook position per role at the last finished step.
    model_cursor: dict[str, int] = Field(default_factory=dict)
    #: What the run was started with, so ``resume`` can rebuild it.
    cli_model: str | None = None
    backend: str = "auto"
    #: Budget limits the run was started with and what it had used at the last step.
    budget_limits: dict[str, Any] = Field(default_factory=dict)
    budget_used: dict[str, Any] = Field(default_factory=dict)
    #: The workspace commit the last passing verify round tested.
    verified_commit: str = ""
    #: Failure signature of each verify round (stuck detection).
    signatures: list[str] = Field(default_factory=list)
    #: Docs fix rounds done, each docs check's result , and the
    #: last failing check's problems as the tech writer gets them.
    docs_fix_round: int = 0
    docs_checks: list[DocsRound] = Field(default_factory=list)
    last_docs_failures: str = ""
    #: Every checkpoint decision , in order; the one the
    #: run waits at (``darkfactory approve`` adds the decision to it); the latest reviewer
    #: reason or notes, which the next crew task gets as ``{feedback}``.
    checkpoints: list[Decision] = Field(default_factory=list)
    pending_checkpoint: PendingCheckpoint | None = None
    feedback: str = ""
    #: The deploy command's result, when one ran.
    deploy: DeployRecord | None = None
    #: What each crew phase changed and ran, in order (the fix task's ``{previous_work}``).
    work: list[PhaseWork] = Field(default_factory=list)


F = TypeVar("F", bound=Callable[..., Any])


def journaled(name: str) -> Callable[[F], F]:
    """Run a step once per run: replayed from the journal on resume, recorded when done."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Any) -> Any:
            entry = self._replay(name)
            if entry is not None:
                return entry.route
            route = fn(self)
            self._record(name, route)
            return route

        return wrapper  # type: ignore[return-value]

    return deco


class JournalMismatch(RuntimeError):
    """The replayed flow took a path the journal does not have: a bug, never user error."""


class Escalate(DarkFactoryError):
    """The flow found what a person must look at (a reproduction that does not fail, ...)."""


class SpecAmbiguity(DarkFactoryError):
    """An agent reported that the spec cannot decide something: a person must answer."""

    def __init__(self, questions: list[dict[str, str]]) -> None:
        self.questions = questions
        asked = "; ".join(f"{q['question']} ({q['reason']})" for q in questions)
        super().__init__(f"spec ambiguity reported: {asked}")
