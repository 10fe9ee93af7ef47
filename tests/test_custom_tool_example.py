"""The custom-tool example of docs/extending.md, exercised for real.

``examples/tools/word_frequency.py`` is made importable as ``tools.word_frequency`` (as if
it had been dropped into ``tools/``), then: the registry lists it, the config loader
accepts a role that names it and rejects a misspelling, and the tool built by the
registry runs through CrewAI's public ``BaseTool.run`` on real files.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import darkfactory.tools as tools
from darkfactory.config import load_config
from darkfactory.errors import ConfigError
from darkfactory.workspace.context import RunContext

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_TOOLS = REPO / "examples" / "tools"
NAME = "word_frequency"


@pytest.fixture
def example_tool(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``tools.word_frequency`` importable for the duration of one test."""
    monkeypatch.setattr(tools, "__path__", [*tools.__path__, str(EXAMPLE_TOOLS)])
    tools.tool_class.cache_clear()
    try:
        yield NAME
    finally:
        tools.tool_class.cache_clear()
        sys.modules.pop(f"tools.{NAME}", None)


def config_with_developer_tool(tmp_path: Path, tool: str) -> Path:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    agents_path = config / "agents.yaml"
    agents = yaml.safe_load(agents_path.read_text(encoding="utf-8"))
    agents["developer"]["tools"].append(tool)
    agents_path.write_text(yaml.safe_dump(agents, sort_keys=False), encoding="utf-8")
    return config


def test_registry_lists_the_example_tool(example_tool: str) -> None:
    assert example_tool in tools.available_tool_names()


def test_the_example_is_not_a_builtin_tool() -> None:
    assert NAME not in tools.available_tool_names()


def test_config_accepts_the_tool_by_module_name(example_tool: str, tmp_path: Path) -> None:
    config = load_config(config_with_developer_tool(tmp_path, example_tool))
    assert example_tool in config.agents["developer"].tools


def test_config_rejects_a_misspelled_tool(example_tool: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with_developer_tool(tmp_path, "word_frequencies"))
    text = str(caught.value)
    assert "agents.yaml" in text
    assert "unknown tool 'word_frequencies'" in text
    assert "did you mean 'word_frequency'?" in text


def test_tool_counts_words_through_crewai_run(example_tool: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "docs").mkdir(parents=True)
    (ws / "docs" / "notes.md").write_text(
        "The cat saw the dog. THE dog ran; the cat didn't.\n42 dogs, 7 cats.\n",
        encoding="utf-8",
    )
    events: list[tuple[str, dict[str, object]]] = []
    ctx = RunContext(workspace=ws, on_event=lambda kind, data: events.append((kind, data)))
    tool = tools.build_tool(example_tool, ctx)

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


def test_tool_refuses_a_path_outside_the_workspace(example_tool: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret.txt").write_text("password password\n", encoding="utf-8")
    tool = tools.build_tool(example_tool, RunContext(workspace=ws))

    for path in ("../secret.txt", str(tmp_path / "secret.txt")):
        out = tool.run(path=path)
        assert out.startswith("ERROR: "), out
        assert "password" not in out

    (ws / "link.txt").symlink_to(tmp_path / "secret.txt")
    out = tool.run(path="link.txt")
    assert out.startswith("ERROR: ") and "outside the workspace" in out


def test_tool_reports_fixable_mistakes_as_text(example_tool: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "blob.bin").write_bytes(b"\x00\x01binary")
    tool = tools.build_tool(example_tool, RunContext(workspace=ws))

    assert tool.run(path="missing.md").startswith("ERROR: 'missing.md' does not exist")
    assert tool.run(path="src").startswith("ERROR: 'src' is a directory")
    assert tool.run(path="blob.bin").startswith("ERROR: 'blob.bin' is a binary file")
    (ws / "numbers.txt").write_text("1 2 3\n", encoding="utf-8")
    assert tool.run(path="numbers.txt") == "'numbers.txt' has no words."


def test_args_schema_bounds_top(example_tool: str, tmp_path: Path) -> None:
    tool = tools.build_tool(example_tool, RunContext(workspace=tmp_path))
    with pytest.raises(ValueError, match="arguments validation failed"):
        tool.run(path="x.md", top=0)
