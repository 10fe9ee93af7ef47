"""The crew behind each phase: ``CrewPhases`` kicks off the hierarchical crew of ``crews/``.

The real ``ports.CrewRunner``. A phase ends in an exception the flow routes on when the
budget ran out, a model failed for good, or an agent reported that the spec is ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from darkfactory.config import Config
from darkfactory.engine.delegation import DelegationGuard, run_delegating
from darkfactory.engine.state import SpecAmbiguity
from darkfactory.engine.task_log import TaskOutputLog
from darkfactory.models import ModelPlan
from darkfactory.models.budget import BudgetMeter
from darkfactory.workspace.context import RunContext


class CrewPhases:
    """Runs one phase's task with the crew of ``crews.factory_crew`` (CrewAI's kickoff)."""

    def __init__(
        self, *, config: Config, ctx: RunContext, models: ModelPlan, budget: BudgetMeter
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.models = models
        self.budget = budget
        self.task_log = TaskOutputLog()  # what `crewai log-tasks-outputs` shows

    def run(self, phase: str, inputs: Mapping[str, Any]) -> str:
        """The phase's answer; run once more with a reminder if nothing was delegated."""
        roles = {a.role: key for key, a in self.config.agents.items() if key != "manager"}
        return run_delegating(
            phase,
            roles,
            self.ctx.emit,
            lambda reminder: self._kickoff(phase, inputs, roles, reminder),
        )

    def _kickoff(
        self, phase: str, inputs: Mapping[str, Any], roles: dict[str, str], reminder: str
    ) -> tuple[str, DelegationGuard]:
        # CrewAI and the crew are imported on the first phase, not at start-up (2-7 s).
        from crewai.hooks.dispatch import HookAborted

        from darkfactory.crews.factory_crew import FactoryCrew
        from darkfactory.crews.prompts import lean_prompts
        from darkfactory.engine.protocol import ProtocolGuard
        from darkfactory.models.prompt_guard import PromptGuard

        crew = FactoryCrew(self.config, self.ctx, self.models).crew_for(
            phase, dict(inputs), reminder=reminder
        )
        guard = DelegationGuard(
            phase=phase,
            roles=roles,
            limit=self.config.factory.max_delegations_per_phase,
            emit=self.ctx.emit,
        )
        manager = crew.manager_agent.role if crew.manager_agent is not None else None
        self.ctx.emit(
            "crew_start",
            task=phase,
            crew=crew.name,
            manager=manager,
            agents=[a.role for a in crew.agents],
        )
        # Every prompt of the phase within llm.max_prompt_tokens (cut, or refused).
        prompts = PromptGuard(self.config.factory.llm.max_prompt_tokens, emit=self.ctx.emit)
        # Tool-call protocol errors, prose and refusals (engine/protocol.py); its extra
        # calls count against the budget and their prompts stay within the ceiling.
        protocol = ProtocolGuard(self.ctx.emit, self.budget.check, prompts=prompts)
        try:
            # The delegation guard's hooks first (a stuck phase's aborted call is not
            # counted); CrewAI's prompt texts, shortened (crews/prompts.json).
            with (
                guard.watching(crew.manager_agent),
                protocol.enforced(phase),
                self.budget.enforced(),
                prompts.enforced(),
                lean_prompts(),
                self.task_log.kept(crew),
            ):
                output = crew.kickoff()
        except HookAborted:
            stopped = protocol.settled()
            if stopped is not None:
                self._ended(phase, type(stopped).__name__)
                raise stopped from None
            if guard.stuck is not None:
                self._ended(phase, type(guard.stuck).__name__)
                raise guard.stuck from None
            stop = self.budget.exhausted or prompts.refused
            self._ended(phase, type(stop).__name__ if stop is not None else "HookAborted")
            if stop is not None:
                raise stop from None
            raise
        except BaseException as exc:
            self._ended(phase, type(exc).__name__)
            stopped = protocol.settled()
            if stopped is not None:  # e.g. a provider that refused, then failed
                raise stopped from exc
            raise
        self._ended(phase, "ok")
        stopped = protocol.settled()
        if stopped is not None:  # a coworker's; CrewAI told the manager only
            raise stopped
        self.raise_if_model_failed()
        if prompts.refused is not None:  # a coworker's prompt; CrewAI told the manager only
            raise prompts.refused
        if self.budget.exhausted is not None:  # a coworker hit it; CrewAI hid it from the manager
            raise self.budget.exhausted
        if self.ctx.ambiguities:
            raise SpecAmbiguity(self.ctx.ambiguities)
        return str(getattr(output, "raw", output)), guard

    def _ended(self, phase: str, outcome: str) -> None:
        from crewai.events import crewai_event_bus

        # CrewAI's handlers run on a thread pool: the crew's last model and tool calls are
        # in the trace before its end (a kickoff that raised did not wait for them).
        crewai_event_bus.flush()
        self.ctx.emit("crew_end", task=phase, outcome=outcome)

    def raise_if_model_failed(self) -> None:
        """A model that failed for good fails the run, even inside a coworker.

        CrewAI turns a coworker's exception into a tool error for the manager, who may go
        on as if the work were done: a scripted model that ran out or mismatched, a provider
        that refused or stayed unreachable (``GuardedLLM.fatal``).
        """
        scripted = self.models.scripted
        if scripted is not None and scripted.fatal is not None:
            raise scripted.fatal
        fatal = self.models.fatal()
        if fatal is not None:
            raise fatal
