"""The hierarchical crew: a manager that delegates, and the workers it delegates to.

This is the part of Dark Factory most users read and extend. Roles and tasks come from
``config/agents.yaml`` and ``config/tasks.yaml`` (validated by ``darkfactory.config``
before this class sees them); tools are named there by module name (``tools/<name>.py``).

Each pipeline phase builds one crew with one task (``crew_for(phase)``). The task has no
``agent:``: in a hierarchical crew that would restrict the manager to that one agent, so the
manager chooses the coworker. The manager has no tools of its own (CrewAI forbids it) and the
task has no ``tools:`` (they would leak worker tools to the manager).

The CrewAI keys a role may set in ``agents.yaml`` (``max_rpm``, ``planning``, ...) reach its
``Agent`` through ``config=``; ``config.REFUSED_AGENT_KEYS`` says why the others are refused.

To add a role: add it to ``agents.yaml``; every role except ``manager`` joins the crew.
"""

from __future__ import annotations

from typing import Any, Protocol

from crewai import Agent, Crew, Process, Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.project import CrewBase

from darkfactory.config import Config
from darkfactory.crews.manager import Manager
from darkfactory.tools import build_tool
from darkfactory.workspace.context import RunContext


class RoleModels(Protocol):
    """The model instances each role calls (``darkfactory.models.ModelPlan``)."""

    def llm_for(self, role: str) -> Any: ...

    def function_calling_llm_for(self, role: str) -> Any: ...


#: What a worker who reads files also gets on an existing repository (tools/).
REPO_TOOLS = ("repo_map", "search_code")


@CrewBase
class FactoryCrew:
    """Builds the manager, the workers and one phase's task from validated config."""

    agents_config: Any
    tasks_config: Any

    def __init__(self, config: Config, ctx: RunContext, models: RoleModels) -> None:
        self.config = config
        self.ctx = ctx
        self.models = models
        # CrewBase loads YAML by itself and maps tool names to ``@tool`` methods. We hand it
        # the config we validated instead, with the tools already built for this run.
        self.load_configurations = self._load_validated

    def _load_validated(self) -> None:
        self.agents_config = {
            key: {
                # Models are instances from the run's plan, delegation is set by the role.
                **a.model_dump(
                    exclude_none=True,
                    exclude={"tools", "llm", "function_calling_llm", "allow_delegation"},
                ),
                "tools": [
                    build_tool(
                        name,
                        self.ctx,
                        self.config.tools_dir,
                        output_tokens=self._output_tokens(key),
                    )
                    for name in self._tools(key, a.tools)
                ],
            }
            for key, a in self.config.agents.items()
        }
        self.tasks_config = {key: t.model_dump() for key, t in self.config.tasks.items()}

    def _output_tokens(self, key: str) -> int:
        """Most tokens one file read of role ``key`` may take: ``llm.read_file_share`` of
        its model's context window."""
        window = int(self.models.llm_for(key).get_context_window_size())
        return max(1, int(window * self.config.factory.llm.read_file_share))

    def _tools(self, key: str, names: list[str]) -> list[str]:
        """A role's tools; on an existing repository, the workers also get the code readers."""
        if not self.ctx.repo or key == "manager" or "read_file" not in names:
            return list(names)
        return [*names, *(t for t in REPO_TOOLS if t not in names)]

    # -- agents -------------------------------------------------------------------------
    # Plain methods, not CrewAI's ``@agent``: that decorator memoizes in one cache for the
    # whole process, keyed by ``id(self)``. Once a run's crew is freed, the next crew built
    # at the same address got the old run's agents -- its model, and its tools bound to the
    # old run's workspace -- and the cache kept every run's agents alive. A bench with
    # ``--jobs`` and the service's workers build many crews in one process.
    def _agent(self, key: str) -> Agent:
        return Agent(
            config=self.agents_config[key],
            llm=self.models.llm_for(key),
            function_calling_llm=self.models.function_calling_llm_for(key),
            allow_delegation=False,
            # The flow bounds the work; a worker must not hang a phase by itself.
            max_retry_limit=1,
        )

    def architect(self) -> Agent:
        return self._agent("architect")

    def developer(self) -> Agent:
        return self._agent("developer")

    def qa_engineer(self) -> Agent:
        return self._agent("qa_engineer")

    def tech_writer(self) -> Agent:
        return self._agent("tech_writer")

    def workers(self) -> list[BaseAgent]:
        """Every role but the manager: the four built-in ones, then any the user added."""
        builtin: list[BaseAgent] = [
            self.architect(),
            self.developer(),
            self.qa_engineer(),
            self.tech_writer(),
        ]
        extra: list[BaseAgent] = [
            self._agent(key)
            for key in self.config.agents
            if key not in {"manager", "architect", "developer", "qa_engineer", "tech_writer"}
        ]
        return builtin + extra

    def manager(self) -> Agent:
        """The manager, from its YAML entry: delegation on, no tools (crews/manager.py)."""
        return Manager(
            config=self.agents_config["manager"],
            llm=self.models.llm_for("manager"),
            function_calling_llm=self.models.function_calling_llm_for("manager"),
            allow_delegation=True,
            tools=[],
        )

    # -- one phase ----------------------------------------------------------------------
    def task_for(self, phase: str, inputs: dict[str, Any], reminder: str = "") -> Task:
        """The phase's task with its ``{placeholders}`` filled.

        We fill them here (``str.format``: ``{{`` and ``}}`` are literal braces) rather than
        through ``kickoff(inputs=...)``, so code in the spec or the failures (full of braces)
        is never taken for a placeholder.
        """
        cfg = self.tasks_config[phase]
        description = cfg["description"].format_map(inputs)
        if reminder:  # engine/delegation.py's, appended as is (not a template)
            description += f"\n\n{reminder}"
        return Task(
            name=phase,
            description=description,
            expected_output=cfg["expected_output"].format_map(inputs),
        )

    def crew_for(self, phase: str, inputs: dict[str, Any], reminder: str = "") -> Crew:
        """A hierarchical crew whose manager delegates this phase's task."""
        return Crew(
            name=f"darkfactory-{phase}",
            agents=self.workers(),
            tasks=[self.task_for(phase, inputs, reminder)],
            process=Process.hierarchical,
            manager_agent=self.manager(),
            verbose=False,
        )
