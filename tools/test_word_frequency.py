"""The example tool, loaded by the registry the way a run loads it, and run through CrewAI's
public ``run()`` in a temporary workspace (``python -m pytest tools``)."""

from pathlib import Path

from darkfactory.tools import build_tool
from darkfactory.workspace.context import RunContext

TOOLS = Path(__file__).resolve().parent


def test_word_frequency(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("the cat saw the dog\n", encoding="utf-8")
    tool = build_tool("word_frequency", RunContext(workspace=tmp_path), TOOLS)
    assert tool.run(path="notes.md", top=1).splitlines() == [
        "'notes.md': 5 words, 4 distinct; the 1 most frequent:",
        "2 the",
    ]
    assert tool.run(path="../outside.txt").startswith("ERROR: ")
