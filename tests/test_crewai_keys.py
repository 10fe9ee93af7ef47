"""CrewAI's Agent and Task keys in agents.yaml and tasks.yaml: each is taken or refused.

A key a role takes reaches its ``Agent`` in the real crew; a key refused is one CrewAI has
(checked here against the installed CrewAI, so an upgrade that adds a key fails until it
is decided); the reason given for refusing ``max_execution_time`` is shown to hold.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Process, Task
from crewai.llms.base_llm import BaseLLM

from darkfactory.config import (
    PLACEHOLDERS,
    REFUSED_AGENT_KEYS,
    REFUSED_TASK_KEYS,
    AgentConfig,
    Config,
    TaskConfig,
    load_config,
)
from darkfactory.crews.factory_crew import FactoryCrew
from darkfactory.errors import ConfigError, NoModelConfigured
from darkfactory.models import ModelPlan
from darkfactory.workspace.context import RunContext

REPO = Path(__file__).resolve().parent.parent


def test_every_crewai_agent_key_is_taken_or_refused() -> None:
    crewai_keys, ours, refused = (
        set(Agent.model_fields),
        set(AgentConfig.model_fields),
        set(REFUSED_AGENT_KEYS),
    )
    assert ours <= crewai_keys, f"not CrewAI Agent keys: {ours - crewai_keys}"
    assert refused <= crewai_keys, f"refused but not CrewAI's: {refused - crewai_keys}"
    assert not ours & refused
    assert crewai_keys == ours | refused, f"undecided: {crewai_keys - ours - refused}"


def test_every_crewai_task_key_is_taken_or_refused() -> None:
    crewai_keys, ours, refused = (
        set(Task.model_fields),
        set(TaskConfig.model_fields),
        set(REFUSED_TASK_KEYS),
    )
    assert ours <= crewai_keys, f"not CrewAI Task keys: {ours - crewai_keys}"
    assert refused <= crewai_keys, f"refused but not CrewAI's: {refused - crewai_keys}"
    assert not ours & refused
    assert crewai_keys == ours | refused, f"undecided: {crewai_keys - ours - refused}"


def test_a_key_left_unset_means_crewais_default() -> None:
    for name, field in AgentConfig.model_fields.items():
        if field.is_required() or field.default_factory is not None or field.default is None:
            continue  # required, a list, or unset (passed on only when set)
        assert field.default == Agent.model_fields[name].default, name


# -- the real crew ----------------------------------------------------------------------

DEVELOPER_KEYS = """\
  max_rpm: 30
  respect_context_window: false
  use_better_compaction: false
  reasoning: true
  max_reasoning_attempts: 2
  function_calling_llm: openai/gpt-4o-mini
  allow_delegation: false
  use_system_prompt: false
"""
MANAGER_KEYS = """\
  max_rpm: 12
  planning: true
  allow_delegation: true
"""


def config_with_crewai_keys(tmp_path: Path) -> Config:
    """The shipped config, the developer and the manager setting CrewAI keys."""
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    agents = config_dir / "agents.yaml"
    text = agents.read_text(encoding="utf-8")
    developer_tools = "  tools: [list_files, read_file, write_file, edit_file, delete_file,"
    assert text.count(developer_tools) == 1 and text.count("  tools: []\n") == 1
    lines = text.splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if line.startswith(developer_tools))
    lines.insert(i + 1, DEVELOPER_KEYS)
    text = "".join(lines).replace("  tools: []\n", "  tools: []\n" + MANAGER_KEYS)
    agents.write_text(text, encoding="utf-8")
    return load_config(config_dir)


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelPlan:
    monkeypatch.setenv("MODEL", "openai/gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    return ModelPlan(config_with_crewai_keys(tmp_path))


def test_the_keys_a_role_takes_reach_its_agent_in_the_crew(plan: ModelPlan, tmp_path: Path) -> None:
    plan.check()
    crew = FactoryCrew(plan.config, RunContext(workspace=tmp_path), plan)
    workers = {a.role: a for a in crew.workers()}
    developer, qa = workers["Software Developer"], workers["QA Engineer"]
    assert developer.max_rpm == 30 and qa.max_rpm is None
    assert developer.respect_context_window is False and qa.respect_context_window is True
    assert developer.use_better_compaction is False
    assert developer.use_system_prompt is False
    assert isinstance(developer, Agent) and developer.planning_enabled
    assert developer.planning_config is not None
    assert developer.planning_config.max_attempts == 2
    assert not (isinstance(qa, Agent) and qa.planning_enabled)
    assert all(a.allow_delegation is False for a in workers.values())
    # The function-calling model is the run's instance: priced, budgeted, traced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # CrewAI deprecates the key
        helper = developer.function_calling_llm
        assert helper is plan.function_calling_llm_for("developer")
        assert isinstance(helper, BaseLLM) and helper.model == "openai/gpt-4o-mini"
        assert qa.function_calling_llm is None
    assert ("developer", "openai/gpt-4o-mini") in plan.role_models()

    manager = crew.manager()
    assert manager.allow_delegation is True and manager.max_rpm == 12
    assert manager.planning_enabled and manager.tools == []
    built = crew.crew_for("design", dict.fromkeys(PLACEHOLDERS, "x"))
    assert isinstance(built, Crew) and built.process == Process.hierarchical
    assert built.manager_agent is not None and built.manager_agent.max_rpm == 12


def test_model_flag_drops_the_function_calling_model(tmp_path: Path) -> None:
    plan = ModelPlan(config_with_crewai_keys(tmp_path), cli_model="openai/gpt-4o")
    assert plan.function_calling_llm_for("developer") is None
    assert ("developer", "openai/gpt-4o-mini") not in plan.role_models()


def test_the_function_calling_model_needs_its_key_and_its_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_with_crewai_keys(tmp_path)
    helper = "anthropic/claude-haiku-4-5"
    config.agents["developer"].function_calling_llm = helper
    monkeypatch.setenv("MODEL", "openai/gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with pytest.raises(NoModelConfigured, match="ANTHROPIC_API_KEY"):
        ModelPlan(config).check()
    config.agents["developer"].function_calling_llm = "openai/no-such-model-priced"
    with pytest.raises(ConfigError, match="'openai/no-such-model-priced' \\(role developer\\)"):
        ModelPlan(config).check_prices()


# -- why max_execution_time is refused ------------------------------------------------


class SlowModel(BaseLLM):
    """Answers after ``delay_s`` seconds."""

    delay_s: float = 2.5

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        time.sleep(self.delay_s)
        return "Thought: done\nFinal Answer: the work"

    def supports_function_calling(self) -> bool:
        return False


def test_crewai_max_execution_time_waits_for_the_role_then_discards_its_work() -> None:
    """The reason REFUSED_AGENT_KEYS gives; a CrewAI that really stops a role fails this."""
    role = Agent(
        role="r",
        goal="g",
        backstory="b",
        llm=SlowModel(model="slow"),
        max_execution_time=1,
        max_retry_limit=0,
    )
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out after 1 seconds"):
        role.execute_task(Task(description="d", expected_output="e", agent=role))
    assert time.monotonic() - started >= 2.5  # not stopped at 1 s: it ran to the end
    assert "waits for the role to finish" in REFUSED_AGENT_KEYS["max_execution_time"].why


def test_a_new_crew_never_gets_an_earlier_runs_agents(plan: ModelPlan, tmp_path: Path) -> None:
    """CrewAI's ``@agent`` memoizes in one cache for the whole process, keyed by
    ``id(self)``: a crew built where a freed one had been got the old run's agents (its
    model, its tools on the old workspace; seen as a rehearsal calling another test's
    playbook). Our crews keep nothing there, and each builds its own agents."""
    from crewai.project import utils as crewai_memo

    plan.check()
    before = dict(crewai_memo.cache._cache)
    crews = [FactoryCrew(plan.config, RunContext(workspace=tmp_path / n), plan) for n in "ab"]
    agents = [crew.workers() for crew in crews]
    assert crewai_memo.cache._cache == before  # nothing a later crew could pick up
    ids = {id(agent) for team in agents for agent in team}
    assert len(ids) == sum(len(team) for team in agents)
    assert crews[0].architect() is not crews[0].architect()
    tools = [next(t for t in team[1].tools if t.name == "write_file") for team in agents]
    assert [t.ctx.workspace for t in tools] == [tmp_path / "a", tmp_path / "b"]
