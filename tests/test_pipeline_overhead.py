"""benchmarks/pipeline_overhead.py counts what it says it counts.

The benchmark compares a Dark Factory run with a stock CrewAI hierarchical crew driven by
the same scripted answers (the scripted model is a test tool, not AI). Here its measuring
function runs once and the counting is checked: both sides made the delegations the
playbook scripts, every scripted step was asked for, every call's prompt tokens are the
budget's estimate of the messages the model received, and the breakdown accounts for all
of them. Dark Factory's run stays within 40,000 prompt tokens; the stock crew's file tools
are crewai-tools', and without crewai-tools the benchmark refuses. Nothing here is timed:
the timings are the benchmark's to print, not a test's.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from runhelp import NEEDS_BWRAP

from darkfactory.models.scripted import estimate_tokens, messages_text

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "pipeline_overhead.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pipeline_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_without_crewai_tools_the_benchmark_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a stock crew with Dark Factory's file tools in crewai-tools' place."""
    bench = load_benchmark()
    # As if not installed: importing it raises ImportError, find_spec finds nothing.
    monkeypatch.setitem(sys.modules, "crewai_tools", None)
    with pytest.raises(SystemExit) as stopped:
        bench.crewai_file_tools(tmp_path)
    assert stopped.value.code == bench.NO_CREWAI_TOOLS
    assert "pip install -e '.[bench]'" in bench.NO_CREWAI_TOOLS

    with pytest.raises(SystemExit) as stopped:
        bench.main(["--runs", "1"])  # refused before the warm-up run
    assert stopped.value.code == bench.NO_CREWAI_TOOLS


def test_both_sides_play_the_same_delegations_and_are_counted_alike(tmp_path: Path) -> None:
    bench = load_benchmark()
    df, stock = bench.measure(tmp_path, backend="bwrap")

    # Both sides delegated each phase's task to the coworker the playbook names.
    scripted = [
        ("design", "Software Architect"),
        ("implement", "Software Developer"),
        ("verify", "QA Engineer"),
        ("document", "Technical Writer"),
    ]
    assert df.delegations == scripted
    assert stock.delegations == scripted
    assert df.status == "delivered"
    assert df.checks == {"verify rounds": 1, "docs checks": 1}
    assert stock.checks == {}
    # The target of docs/benchmarks.md: a whole run of the example within 40,000 prompt tokens.
    assert df.prompt_tokens <= 40_000

    # The stock crew's file tools are crewai-tools' (the benchmark refuses without them).
    stock_prompts = "\n".join(content for c in stock.calls for _, content in c.messages)
    for name in ("read_a_files_content", "list_files_in_directory", "file_writer_tool"):
        assert name in stock_prompts

    # Every scripted step was asked for, once, by the role it belongs to, on both sides.
    book = yaml.safe_load(bench.PLAYBOOK.read_text(encoding="utf-8"))
    steps = {role: len(s) for role, s in book["roles"].items()}
    for side in (df, stock):
        assert set(side.steps_left.values()) == {0}, side.name
        assert Counter(c.role for c in side.calls) == steps, side.name
        assert {c.phase for c in side.calls} == set(bench.TASKS), side.name

    # A call's tokens are the budget's estimate of exactly the messages the model got.
    for side in (df, stock):
        for call in side.calls:
            text = messages_text([{"content": content} for _, content in call.messages])
            assert call.prompt_tokens == estimate_tokens(text) > 0
            assert call.messages[0][0] == "system"
        assert side.prompt_tokens == sum(c.prompt_tokens for c in side.calls)
        assert 0 < side.model_s < side.wall_s
        assert 0 < side.crew_s <= side.wall_s

    # The workers got the same delegations, each side in its own prompt texts: CrewAI's
    # defaults on the stock side, crews/prompts.json's on Dark Factory's.
    def first_prompts(side: Any) -> dict[str, str]:
        calls = [c for c in side.calls if c.role != "manager"]
        return {c.role: c.messages[1][1] for c in reversed(calls)}

    delegated = {
        s["delegate"]["to"]: s["delegate"]["task"]
        for s in book["roles"]["manager"]
        if "delegate" in s
    }
    for side, begin in ((df, False), (stock, True)):
        prompts = first_prompts(side)
        assert set(prompts) == set(delegated), side.name
        for role, prompt in prompts.items():
            assert delegated[role] in prompt, (side.name, role)
            assert ("Begin! This is VERY important" in prompt) is begin, (side.name, role)

    # The breakdown by part of the prompt accounts for every token (rounded per part).
    templates = yaml.safe_load((REPO / "config" / "tasks.yaml").read_text(encoding="utf-8"))
    for side in (df, stock):
        parts = bench.where_tokens_go(side.calls, templates)
        assert abs(sum(parts.values()) - side.prompt_tokens) <= len(parts)
        assert parts["tools/: worker tools (name, JSON schema, description)"] > 0
        assert parts["input: requirements"] > 0
    table = bench.summary_table([(df, stock)])
    n = sum(steps.values())
    assert f"| LLM calls | {n} | {n} | 1.000x |" in table
