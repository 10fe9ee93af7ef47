"""The crew behind each phase: ``CrewPhases`` kicks off the hierarchical crew of ``crews/``.

The real ``ports.CrewRunner``. A phase ends in an exception the flow routes on when the
budget ran out, a model failed for good, or an agent reported that the spec is ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from darkfactory.config import Config
from darkfactory.engine.state import SpecAmbiguity
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

    def run(self, phase: str, inputs: Mapping[str, Any]) -> str:
        # CrewAI and the crew are imported on the first phase, not at start-up (2-7 s).
        from crewai.hooks.dispatch import HookAborted

        from darkfactory.crews.factory_crew import FactoryCrew

        crew = FactoryCrew(self.config, self.ctx, self.models).crew_for(phase, dict(inputs))
        manager = crew.manager_agent.role if crew.manager_agent is not None else None
        self.ctx.emit(
            "crew_start",
            task=phase,
            crew=crew.name,
            manager=manager,
            agents=[a.role for a in crew.agents],
        )
        try:
            with self.budget.enforced():
                output = crew.kickoff()
        except HookAborted:
            stop = self.budget.exhausted
            self._ended(phase, type(stop).__name__ if stop is not None else "HookAborted")
            if stop is not None:
                raise stop from None
            raise
        except BaseException as exc:
            self._ended(phase, type(exc).__name__)
            raise
        self._ended(phase, "ok")
        self.raise_if_model_failed()
        if self.budget.exhausted is not None:  # a coworker hit it; CrewAI hid it from the manager
            raise self.budget.exhausted
        if self.ctx.ambiguities:
            raise SpecAmbiguity(self.ctx.ambiguities)
        return str(getattr(output, "raw", output))

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
