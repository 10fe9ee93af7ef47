"""The config files: the shipped ones load; every mistake names the file, the key and the line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import darkfactory.tools as tools
from darkfactory.cli import EXAMPLE_SPEC
from darkfactory.config import (
    PLACEHOLDERS,
    REFUSED_AGENT_KEYS,
    REFUSED_TASK_KEYS,
    REQUIRED_ROLES,
    REQUIRED_TASKS,
    FactoryConfig,
    default_config_dir,
    load_config,
)
from darkfactory.errors import ConfigError, ExitCode
from darkfactory.sandbox.base import Limits

REPO = Path(__file__).resolve().parent.parent
TOOL_NAMES = ["edit_file", "list_files", "read_file", "run_tests", "write_file"]

AGENTS = """
    manager:
      role: Engineering Manager
      goal: Deliver.
      backstory: Delegates.
    architect:
      role: Software Architect
      goal: Design.
      backstory: Designs.
      tools: [read_file, write_file]
    developer:
      role: Software Developer
      goal: Build.
      backstory: Builds.
      tools: [read_file, write_file, run_tests]
      max_iter: 10
    qa_engineer:
      role: QA Engineer
      goal: Test.
      backstory: Tests.
      tools: [run_tests]
    tech_writer:
      role: Technical Writer
      goal: Document.
      backstory: Writes.
      llm: openai/gpt-4o-mini
"""

TASKS = """
    design:
      description: Design {title}.
      expected_output: DESIGN.md
    implement:
      description: |
        Implement {title}.
        {requirements}
      expected_output: Code
    verify:
      description: Verify.
      expected_output: Tests
    fix:
      description: Fix round {fix_round} of {max_fix_rounds}.
      expected_output: Fixed
    document:
      description: Document.
      expected_output: Docs
    document_fix:
      description: Fix the docs (round {docs_round}) {docs_failures}
      expected_output: Fixed docs
"""

FACTORY = """
    max_fix_rounds: 2
    sandbox:
      backend: local
      memory_mb: 512
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small valid config directory; the tool registry is pinned so lines stay stable."""
    monkeypatch.setattr(tools, "available_tool_names", lambda tools_dir=None: list(TOOL_NAMES))
    for name, text in (("agents.yaml", AGENTS), ("tasks.yaml", TASKS), ("factory.yaml", FACTORY)):
        (tmp_path / name).write_text(dedent(text), encoding="utf-8")
    return tmp_path


def edit(config_dir: Path, name: str, old: str, new: str) -> Path:
    path = config_dir / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def config_error(config_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return info.value


# -- what loads ------------------------------------------------------------------------


def test_shipped_config_loads_against_the_real_tools() -> None:
    config = load_config()
    assert config.dir == default_config_dir() == REPO / "config"
    assert set(REQUIRED_ROLES) <= set(config.agents)
    assert set(REQUIRED_TASKS) <= set(config.tasks)
    assert config.agents["manager"].tools == []
    assert config.agents["manager"].role == "Engineering Manager"
    assert {a.role for a in config.agents.values()} >= {
        "Software Architect",
        "Software Developer",
        "QA Engineer",
        "Technical Writer",
    }
    assert config.factory.spec == "examples/specs/wordcount.yaml"
    assert config.factory.sandbox.limits() == Limits()
    assert config.factory.limits() == Limits()
    assert "{failures}" in config.tasks["fix"].description
    assert "{fix_round}" in config.tasks["fix"].description


def test_shipped_prompts_name_each_coworker_by_its_exact_role() -> None:
    """The manager delegates by role text: the prompts must use the real role names."""
    text = (REPO / "config" / "tasks.yaml").read_text() + (
        REPO / "config" / "agents.yaml"
    ).read_text()
    for agent in load_config().agents.values():
        assert agent.role in text


def test_small_config_loads(config_dir: Path) -> None:
    config = load_config(config_dir)
    assert config.dir == config_dir
    assert list(config.agents) == list(REQUIRED_ROLES)
    assert config.agents["developer"].max_iter == 10
    assert config.agents["tech_writer"].llm == "openai/gpt-4o-mini"
    assert config.agents["tech_writer"].tools == []
    assert config.factory.max_fix_rounds == 2
    assert config.factory.sandbox.limits() == Limits(memory_mb=512)
    assert config.factory.tests.timeout_s == 300
    assert config.factory.budget.max_llm_calls == 300


def test_empty_factory_file_means_defaults(config_dir: Path) -> None:
    (config_dir / "factory.yaml").write_text("# nothing set\n")
    assert load_config(config_dir).factory == FactoryConfig()


def test_every_setting_is_documented() -> None:
    """Field descriptions become the configuration reference."""
    from darkfactory import config as mod

    for model in (
        mod.AgentConfig,
        mod.TaskConfig,
        mod.FactoryConfig,
        mod.SandboxConfig,
        mod.TestsConfig,
        mod.BudgetConfig,
    ):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


# -- what is refused -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "line", "key", "words"),
    [
        # a typo in a key
        (
            "agents.yaml",
            "  goal: Build.",
            "  goal: Build.\n  gaols: More.",
            13,
            "developer.gaols",
            "unknown key",
        ),
        (
            "factory.yaml",
            "  memory_mb: 512",
            "  memory_mib: 512",
            4,
            "sandbox.memory_mib",
            "unknown key",
        ),
        # wrong types and values
        (
            "agents.yaml",
            "  max_iter: 10",
            "  max_iter: 0",
            15,
            "developer.max_iter",
            "greater than 0",
        ),
        ("agents.yaml", "  goal: Test.", "  goal: [a]", 18, "qa_engineer.goal", "valid string"),
        (
            "factory.yaml",
            "max_fix_rounds: 2",
            "max_fix_rounds: 50",
            1,
            "max_fix_rounds",
            "less than or equal to 20",
        ),
        (
            "factory.yaml",
            "  backend: local",
            "  backend: podman",
            3,
            "sandbox.backend",
            "'auto', 'bwrap', 'local' or 'docker'",
        ),
        # roles
        (
            "agents.yaml",
            "tools: [run_tests]",
            "tools: [run_tests, run_test]",
            20,
            "qa_engineer.tools.1",
            "role qa_engineer names unknown tool 'run_test' (did you mean 'run_tests'?)",
        ),
        (
            "agents.yaml",
            "  backstory: Delegates.",
            "  backstory: Delegates.\n  tools: [read_file]",
            5,
            "manager.tools",
            "a hierarchical manager may not have tools",
        ),
        (
            "agents.yaml",
            "role: QA Engineer",
            "role: software developer",
            17,
            "qa_engineer.role",
            "same role text as developer (line 11)",
        ),
        ("agents.yaml", "qa_engineer:", "qa:", 1, None, "missing role: qa_engineer"),
        ("agents.yaml", "qa_engineer:", "qa-engineer:", 16, None, "not a valid identifier"),
        # tasks
        (
            "tasks.yaml",
            "Design {title}.",
            "Design {titel}.",
            2,
            "design.description",
            "unknown placeholder {titel}",
        ),
        (
            "tasks.yaml",
            "  {requirements}",
            "  {requirements}\n    {spec}",
            8,
            "implement.description",
            "unknown placeholder {spec}",
        ),
        (
            "tasks.yaml",
            "expected_output: Tests",
            "expected_output: Tests {title!r}",
            11,
            "verify.expected_output",
            "has a format",
        ),
        ("tasks.yaml", "Verify.", "Verify {.", 10, "verify.description", "bad braces"),
        (
            "tasks.yaml",
            "  expected_output: Docs",
            "  expected_output: Docs\n  agent: tech_writer",
            18,
            "document.agent",
            "restricts the manager to that one agent",
        ),
        (
            "tasks.yaml",
            "  expected_output: Docs",
            "  expected_output: Docs\n  tools: [read_file]",
            18,
            "document.tools",
            "may not have tools",
        ),
        (
            "tasks.yaml",
            "  expected_output: Docs",
            "  expected_output: Docs\n  context: [design]",
            18,
            "document.context",
            "CrewAI's context is not supported here because each phase runs a crew of its own",
        ),
        # CrewAI keys refused with why, told apart from typos
        (
            "tasks.yaml",
            "  expected_output: Docs",
            "  expected_output: Docs\n  output_file: docs.md",
            18,
            "document.output_file",
            "CrewAI's output_file is not supported here because it writes the model's answer "
            "to a path on the host, outside the sandbox",
        ),
        (
            "tasks.yaml",
            "  expected_output: Docs",
            "  expected_output: Docs\n  human_input: true",
            18,
            "document.human_input",
            "CrewAI's human_input is not supported here because it stops the phase at a "
            "prompt on the terminal",
        ),
        (
            "tasks.yaml",
            "  expected_output: Docs",
            "  expected_output: Docs\n  expectd_output: More",
            18,
            "document.expectd_output",
            "unknown key 'expectd_output' (did you mean 'expected_output'?)",
        ),
        (
            "agents.yaml",
            "  max_iter: 10",
            "  max_iter: 10\n  max_execution_time: 600",
            16,
            "developer.max_execution_time",
            "CrewAI's max_execution_time is not supported here because CrewAI does not stop "
            "a role at that time",
        ),
        (
            "agents.yaml",
            "  max_iter: 10",
            "  max_iter: 10\n  memory: true",
            16,
            "developer.memory",
            "CrewAI's memory is not supported here because CrewAI's memory is kept on the host",
        ),
        (
            "agents.yaml",
            "  max_iter: 10",
            "  max_iter: 10\n  max_rmp: 10",
            16,
            "developer.max_rmp",
            "unknown key 'max_rmp' (did you mean 'max_rpm'?)",
        ),
        (
            "agents.yaml",
            "  max_iter: 10",
            "  max_iter: 10\n  allow_delegation: true",
            16,
            "developer.allow_delegation",
            "CrewAI's allow_delegation: true is not supported on a worker here because only "
            "the manager delegates",
        ),
        (
            "agents.yaml",
            "  backstory: Delegates.",
            "  backstory: Delegates.\n  allow_delegation: false",
            5,
            "manager.allow_delegation",
            "CrewAI's allow_delegation: false is not supported on the manager here because "
            "the manager works only by delegating",
        ),
        (
            "agents.yaml",
            "  max_iter: 10",
            "  max_iter: 10\n  max_reasoning_attempts: 2",
            16,
            "developer.max_reasoning_attempts",
            "max_reasoning_attempts needs reasoning: true",
        ),
        ("tasks.yaml", "fix:", "fixit:", 1, None, "missing task: fix"),
        # malformed YAML
        ("agents.yaml", "  goal: Design.", "  goal: Design.\n   x: [", 8, None, "invalid YAML"),
        ("tasks.yaml", "verify:", "verify", 10, None, "invalid YAML"),
    ],
)
def test_config_errors_name_file_key_and_line(
    config_dir: Path, file: str, old: str, new: str, line: int, key: str | None, words: str
) -> None:
    path = edit(config_dir, file, old, new)
    err = config_error(config_dir)
    assert (err.file, err.line, err.key) == (str(path), line, key), str(err)
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}: ")


#: Every CrewAI Agent key a role takes besides Dark Factory's own, as a role would set them.
CREWAI_AGENT_KEYS = """\
  max_rpm: 30
  respect_context_window: false
  use_better_compaction: false
  planning: true
  reasoning: true
  max_reasoning_attempts: 2
  function_calling_llm: openai/gpt-4o-mini
  allow_delegation: false
  use_system_prompt: false
"""


def test_crewai_agent_keys_that_fit_a_pipeline_load(config_dir: Path) -> None:
    edit(
        config_dir,
        "agents.yaml",
        "  max_iter: 10\n",
        "  max_iter: 10\n" + CREWAI_AGENT_KEYS,
    )
    edit(
        config_dir,
        "agents.yaml",
        "  backstory: Delegates.",
        "  backstory: Delegates.\n  allow_delegation: true",
    )
    agents = load_config(config_dir).agents
    developer = agents["developer"]
    assert (developer.max_rpm, developer.max_reasoning_attempts) == (30, 2)
    assert developer.planning and developer.reasoning
    assert not (developer.respect_context_window or developer.use_better_compaction)
    assert not developer.use_system_prompt
    assert developer.function_calling_llm == "openai/gpt-4o-mini"
    assert (agents["manager"].allow_delegation, developer.allow_delegation) == (True, False)
    # Unset, each is CrewAI's own default (tests/test_crewai_keys.py checks them against it).
    qa = agents["qa_engineer"]
    assert (qa.max_rpm, qa.function_calling_llm, qa.allow_delegation) == (None, None, None)
    assert qa.respect_context_window and qa.use_system_prompt and not qa.planning


def test_a_refused_crewai_key_says_what_to_do_instead(config_dir: Path) -> None:
    edit(
        config_dir,
        "tasks.yaml",
        "  expected_output: Docs",
        "  expected_output: Docs\n  human_input: true",
    )
    err = config_error(config_dir)
    assert err.hint == (
        "remove human_input: from task document; set checkpoints.output_review: ask (or "
        "spec_approval) in factory.yaml"
    )


def test_every_refused_key_names_a_reason_that_reads_after_because() -> None:
    for key, reason in {**REFUSED_AGENT_KEYS, **REFUSED_TASK_KEYS}.items():
        assert reason.why and not reason.why.endswith("."), key
        assert not reason.instead.endswith("."), key


def test_unknown_tool_lists_the_available_tools(config_dir: Path) -> None:
    edit(config_dir, "agents.yaml", "tools: [read_file, write_file]", "tools: [browse]")
    err = config_error(config_dir)
    assert err.hint and all(name in err.hint for name in TOOL_NAMES)


def test_unknown_placeholder_lists_the_allowed_ones(config_dir: Path) -> None:
    edit(config_dir, "tasks.yaml", "Design {title}.", "Design {titel}.")
    err = config_error(config_dir)
    assert err.hint and all("{" + p + "}" in err.hint for p in PLACEHOLDERS)


def test_literal_braces_are_allowed(config_dir: Path) -> None:
    edit(config_dir, "tasks.yaml", "Verify.", "Verify {{not a placeholder}}.")
    assert "{{not a placeholder}}" in load_config(config_dir).tasks["verify"].description


@pytest.mark.parametrize("name", ["agents.yaml", "tasks.yaml", "factory.yaml"])
def test_missing_file_is_named(config_dir: Path, name: str) -> None:
    (config_dir / name).unlink()
    err = config_error(config_dir)
    assert err.file == str(config_dir / name) and "not found" in str(err)


@pytest.mark.parametrize("name", ["agents.yaml", "tasks.yaml"])
def test_empty_agents_or_tasks_file(config_dir: Path, name: str) -> None:
    (config_dir / name).write_text("\n# nothing\n")
    err = config_error(config_dir)
    assert err.file == str(config_dir / name) and "is empty" in str(err)


def test_missing_config_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config directory not found"):
        load_config(tmp_path / "nope")


# -- YAML that would crash or hang a parser ----------------------------------------------
# The config files go through the same guarded loader as specs and playbooks
# (darkfactory/yamlio.py): each of these is a ConfigError at its line, at once.

#: Nine lines of aliases, each ten uses of the one before: 10**9 values once expanded.
ALIAS_BOMB = "max_fix_rounds: 2\nlol:\n" + "".join(
    f"  {name}: &{name} [" + ", ".join([f"*{prev}" if prev else "x"] * 10) + "]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)

HOSTILE_FACTORY = [
    (
        "max_fix_rounds: 2\nsandbox: &box {limits: *box}\n",
        2,
        "the YAML alias *box is used inside its own anchor &box (column 24)",
    ),
    (
        "max_fix_rounds: 2\nsandbox: " + "[" * 5000 + "\n",
        2,
        "nested too deeply (column 73): more than 64 levels of mappings and lists",
    ),
    (ALIAS_BOMB, 8, "the YAML expands to more than 1,000,000 values (column 38)"),
    (
        "max_fix_rounds: 2\nspec: 2024-02-30\n",
        2,
        "invalid YAML value '2024-02-30' (column 7): day is out of range for month",
    ),
]
HOSTILE_IDS = ["recursive-alias", "5000-nested-lists", "alias-bomb", "impossible-date"]


@pytest.mark.parametrize(("text", "line", "words"), HOSTILE_FACTORY, ids=HOSTILE_IDS)
def test_hostile_factory_yaml_is_a_config_error_at_its_line(
    config_dir: Path, text: str, line: int, words: str
) -> None:
    path = config_dir / "factory.yaml"
    path.write_text(text, encoding="utf-8")
    err = config_error(config_dir)
    assert (err.file, err.line) == (str(path), line), str(err)
    assert str(err).startswith(f"{path}:{line}: {words}"), str(err)
    assert err.hint


@pytest.mark.parametrize(
    ("name", "old", "new", "line", "words"),
    [
        (
            "agents.yaml",
            "  tools: [read_file, write_file]",
            "  tools: &t [read_file, *t]",
            9,
            "the YAML alias *t is used inside its own anchor &t",
        ),
        (
            "tasks.yaml",
            "expected_output: Tests",
            'expected_output: "Tests \\ud800"',
            11,
            "verify.expected_output: a lone surrogate",
        ),
    ],
)
def test_agents_and_tasks_go_through_the_same_guard(
    config_dir: Path, name: str, old: str, new: str, line: int, words: str
) -> None:
    path = edit(config_dir, name, old, new)
    err = config_error(config_dir)
    assert str(err).startswith(f"{path}:{line}: {words}"), str(err)


@pytest.mark.parametrize(("text", "line", "words"), HOSTILE_FACTORY, ids=HOSTILE_IDS)
def test_validate_with_a_hostile_factory_yaml_exits_2_without_a_traceback(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "factory.yaml").write_text(text, encoding="utf-8")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "darkfactory",
            "validate",
            str(EXAMPLE_SPEC),
            "--config",
            str(config),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == ExitCode.BAD_INPUT == 2, out.stderr
    assert out.stdout == ""
    message, hint = out.stderr.splitlines()  # one line each, no traceback
    assert message.startswith(f"darkfactory: error: {config / 'factory.yaml'}:{line}: {words}")
    assert hint.startswith("  hint: ")


def test_nesting_through_aliases_counts_in_full(config_dir: Path) -> None:
    """Two lines of 40 nested lists each, the second holding the first: over 80 levels."""
    lists = "[" * 40 + "{}" + "]" * 40
    text = f"max_fix_rounds: 2\nx:\n  - &a {lists}\n  - {lists.replace('{}', '*a')}\n"
    path = config_dir / "factory.yaml"
    path.write_text(text, encoding="utf-8")
    err = config_error(config_dir)
    assert str(err).startswith(f"{path}:4: nested too deeply through the alias *a"), str(err)
