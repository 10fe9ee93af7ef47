"""The custom-tool example of docs/extending.md, exercised for real.

``tools/word_frequency.py`` (this repository's own tool) is copied into a project made
here, beside a copy of config/: the registry lists it, the config loader accepts a role
that names it and rejects a misspelling, and the tool built by the registry runs through
CrewAI's public ``BaseTool.run`` on real files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

import darkfactory.tools as tools
from darkfactory.config import load_config
from darkfactory.errors import ConfigError
from darkfactory.workspace.context import RunContext

REPO = Path(__file__).resolve().parent.parent
NAME = "word_frequency"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose tools/ holds the example tool, and whose config/ is a copy of ours."""
    (tmp_path / "tools").mkdir()
    shutil.copy2(REPO / "tools" / f"{NAME}.py", tmp_path / "tools")
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path


def config_with_developer_tool(project: Path, tool: str) -> Path:
    config = project / "config"
    agents_path = config / "agents.yaml"
    agents = yaml.safe_load(agents_path.read_text(encoding="utf-8"))
    agents["developer"]["tools"].append(tool)
    agents_path.write_text(yaml.safe_dump(agents, sort_keys=False), encoding="utf-8")
    return config


def test_registry_lists_the_example_tool(project: Path) -> None:
    assert NAME in tools.available_tool_names(project / "tools")


def test_the_example_is_not_a_builtin_tool() -> None:
    assert NAME not in tools.available_tool_names()


def test_the_tool_is_loaded_under_a_private_name(project: Path) -> None:
    cls = tools.tool_class(NAME, project / "tools")
    assert cls.__module__.startswith("darkfactory._project_tools_")
    assert cls.__module__.endswith(f".{NAME}")
    assert "tools" not in sys.modules or not hasattr(sys.modules["tools"], NAME)


def test_config_accepts_the_tool_by_module_name(project: Path) -> None:
    config = load_config(config_with_developer_tool(project, NAME))
    assert NAME in config.agents["developer"].tools
    assert config.tools_dir == project / "tools"


def test_config_rejects_a_misspelled_tool(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with_developer_tool(project, "word_frequencies"))
    text = str(caught.value)
    assert "agents.yaml" in text
    assert "unknown tool 'word_frequencies'" in text
    assert "did you mean 'word_frequency'?" in text


@pytest.mark.parametrize("name", ["FileReadTool", "SerperDevTool"])
def test_config_points_a_crewai_tools_class_to_the_docs(project: Path, name: str) -> None:
    """A CrewAI user's habit: not "unknown tool", but why and where the docs say more."""
    with pytest.raises(ConfigError) as caught:
        load_config(config_with_developer_tool(project, name))
    text = str(caught.value)
    assert "agents.yaml" in text and "developer.tools." in text
    assert f"role developer names {name!r}, a crewai-tools class" in text
    assert "outside the sandbox" in text
    assert "docs/configuration.md, section crewai-tools" in text
    assert "read_file" in text and NAME in text  # the tools it can name instead
    assert "unknown tool" not in text


def test_tool_counts_words_through_crewai_run(project: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "docs").mkdir(parents=True)
    (ws / "docs" / "notes.md").write_text(
        "The cat saw the dog. THE dog ran; the cat didn't.\n42 dogs, 7 cats.\n",
        encoding="utf-8",
    )
    events: list[tuple[str, dict[str, object]]] = []
    ctx = RunContext(workspace=ws, on_event=lambda kind, data: events.append((kind, data)))
    tool = tools.build_tool(NAME, ctx, project / "tools")

    assert tool.name == NAME
    out = tool.run(path="docs/notes.md", top=3)

    assert out.splitlines() == [
        "'docs/notes.md': 13 words, 8 distinct; the 3 most frequent:",
        "4 the",
        "2 cat",
        "2 dog",
    ]
    assert events == [("file_op", {"tool": NAME, "path": "docs/notes.md", "ok": True, "bytes": 67})]
    # The default for ``top`` comes from the args schema.
    assert len(tool.run(path="docs/notes.md").splitlines()) == 1 + 8


def test_tool_refuses_a_path_outside_the_workspace(project: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret.txt").write_text("password password\n", encoding="utf-8")
    tool = tools.build_tool(NAME, RunContext(workspace=ws), project / "tools")

    for path in ("../secret.txt", str(tmp_path / "secret.txt")):
        out = tool.run(path=path)
        assert out.startswith("ERROR: "), out
        assert "password" not in out

    (ws / "link.txt").symlink_to(tmp_path / "secret.txt")
    out = tool.run(path="link.txt")
    assert out.startswith("ERROR: ") and "outside the workspace" in out


def test_tool_reports_fixable_mistakes_as_text(project: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "blob.bin").write_bytes(b"\x00\x01binary")
    tool = tools.build_tool(NAME, RunContext(workspace=ws), project / "tools")

    assert tool.run(path="missing.md").startswith("ERROR: 'missing.md' does not exist")
    assert tool.run(path="src").startswith("ERROR: 'src' is a directory")
    assert tool.run(path="blob.bin").startswith("ERROR: 'blob.bin' is a binary file")
    (ws / "numbers.txt").write_text("1 2 3\n", encoding="utf-8")
    assert tool.run(path="numbers.txt") == "'numbers.txt' has no words."


def test_args_schema_bounds_top(project: Path, tmp_path: Path) -> None:
    tool = tools.build_tool(NAME, RunContext(workspace=tmp_path), project / "tools")
    with pytest.raises(ValueError, match="arguments validation failed"):
        tool.run(path="x.md", top=0)
