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
    verify_rounds: list[dict[str, Any]] = Field(default_factory=list)
    last_failures: str = ""
    commits: dict[str, str] = Field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float = 0.0
    #: Finished steps in order: ``{"step": name, "route": router result or None}``.
    journal: list[dict[str, Any]] = Field(default_factory=list)
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
    #: Docs fix rounds done, each docs check's result (``DocsCheck.to_state``), and the
    #: last failing check's problems as the tech writer gets them.
    docs_fix_round: int = 0
    docs_checks: list[dict[str, Any]] = Field(default_factory=list)
    last_docs_failures: str = ""
    #: Every checkpoint decision (``checkpoints.Decision.to_state``), in order; the one the
    #: run waits at (``darkfactory approve`` adds the decision to it); the latest reviewer
    #: reason or notes, which the next crew task gets as ``{feedback}``.
    checkpoints: list[dict[str, Any]] = Field(default_factory=list)
    pending_checkpoint: dict[str, Any] | None = None
    feedback: str = ""
    #: The deploy command's result (``deploy.DeployResult``), when one ran.
    deploy: dict[str, Any] = Field(default_factory=dict)


F = TypeVar("F", bound=Callable[..., Any])


def journaled(name: str) -> Callable[[F], F]:
    """Run a step once per run: replayed from the journal on resume, recorded when done."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Any) -> Any:
            entry = self._replay(name)
            if entry is not None:
                return entry["route"]
            route = fn(self)
            self._record(name, route)
            return route

        return wrapper  # type: ignore[return-value]

    return deco


class JournalMismatch(RuntimeError):
    """The replayed flow took a path the journal does not have: a bug, never user error."""


class SpecAmbiguity(DarkFactoryError):
    """An agent reported that the spec cannot decide something: a person must answer."""

    def __init__(self, questions: list[dict[str, str]]) -> None:
        self.questions = questions
        asked = "; ".join(f"{q['question']} ({q['reason']})" for q in questions)
        super().__init__(f"spec ambiguity reported: {asked}")
