"""Issue 17, items 7 and 8: context overflow and fenced file contents.

Unit tests call the real tools and the real prompt guard (with the real scripted model as
the model whose context window it reads); the end-to-end tests play a playbook of the
scripted model (a test tool, not AI) through the real crew, tools and bwrap sandbox.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from runhelp import (
    NEEDS_BWRAP,
    config_with,
    events,
    example_playbook,
    good_code,
    only_run,
    report_of,
    run_spec,
)

from darkfactory.config import LLMConfig
from darkfactory.models.playbook import load_playbook
from darkfactory.models.prompt_guard import (
    DROPPED_OUTPUT,
    DROPPED_TURN,
    PromptGuard,
    PromptTooLarge,
    fit,
)
from darkfactory.models.scripted import ScriptedLLM, estimate_tokens, messages_text
from darkfactory.reporting.trace import read_trace
from darkfactory.tools import build_tool
from darkfactory.tools.read_file import ReadFileTool
from darkfactory.tools.write_file import WriteFileTool, unfence
from darkfactory.workspace.context import RunContext

Events = list[tuple[str, dict[str, Any]]]


def _ctx(tmp_path: Path) -> tuple[RunContext, Events]:
    ws = tmp_path / "ws"
    ws.mkdir()
    seen: Events = []
    return RunContext(workspace=ws, on_event=lambda kind, data: seen.append((kind, data))), seen


def _tokens(text: str) -> int:
    return estimate_tokens(text)


# == 7. Context overflow: read_file sized to the role's model ===============================


def _big(ws: Path, lines: int = 300) -> str:
    text = "".join(f"line {i:04d} lorem ipsum dolor sit amet\n" for i in range(1, lines + 1))
    (ws / "big.txt").write_text(text, encoding="utf-8")
    return text


def test_read_file_sized_to_context_is_cut_with_a_notice_and_reads_on_in_ranges(
    tmp_path: Path,
) -> None:
    ctx, seen = _ctx(tmp_path)
    _big(ctx.workspace)
    tool = build_tool("read_file", ctx, output_tokens=500)
    assert isinstance(tool, ReadFileTool) and tool.output_tokens == 500
    out = tool._run(path="big.txt")
    assert _tokens(out) <= 500
    notice = out.splitlines()[-1]
    m = re.fullmatch(
        r"\[cut after line (\d+) to fit this role's share of its model's context "
        r"\(llm.read_file_share\): call read_file with start_line=(\d+) to read on, .*\]",
        notice,
    )
    assert m is not None, notice
    shown = int(m[1])
    assert 10 < shown < 300 and int(m[2]) == shown + 1
    assert out.splitlines()[0] == f"'big.txt': lines 1-{shown} of 300 (11100 bytes)"
    assert seen[-1] == (
        "file_op",
        {"tool": "read_file", "path": "big.txt", "ok": True, "bytes": 11100, "cut": True},
    )
    # Reading on in ranges covers every line exactly once, each answer within the share.
    lines_seen: list[int] = []
    start = 1
    while True:
        out = tool._run(path="big.txt", start_line=start)
        assert _tokens(out) <= 500
        lines_seen += [int(line.split("\t")[0]) for line in out.splitlines()[1:] if "\t" in line]
        m = re.search(r"start_line=(\d+) to read on\]$", out)
        if m is None:
            break
        start = int(m[1])
    assert lines_seen == list(range(1, 301))
    assert seen[-1][1]["cut"] is False


def test_read_file_without_a_size_keeps_its_own_caps(tmp_path: Path) -> None:
    ctx, _ = _ctx(tmp_path)
    _big(ctx.workspace)
    out = ReadFileTool(ctx=ctx)._run(path="big.txt")
    assert out.splitlines()[0] == "'big.txt': lines 1-300 of 300 (11100 bytes)"
    assert "[cut after" not in out


def test_read_file_sized_to_context_bounds_one_huge_line(tmp_path: Path) -> None:
    ctx, _ = _ctx(tmp_path)
    (ctx.workspace / "min.js").write_text("x" * 100_000 + "\nsecond\n", encoding="utf-8")
    out = ReadFileTool(ctx=ctx, output_tokens=300)._run(path="min.js")
    assert _tokens(out) <= 300
    assert "[line cut: 100000 characters]" in out
    assert "start_line=2 to read on" in out


def test_read_file_share_is_a_share_of_the_roles_model_context(tmp_path: Path) -> None:
    """FactoryCrew sizes read_file from the role's model: llm.read_file_share of its window."""
    from darkfactory.config import load_config
    from darkfactory.crews.factory_crew import FactoryCrew
    from darkfactory.models import ModelPlan

    config = load_config(config_with(tmp_path, llm={"read_file_share": 0.01}))
    playbook = Path(__file__).resolve().parent.parent / "examples/playbooks/wordcount.yaml"
    plan = ModelPlan(config, cli_model=f"scripted:{playbook}")
    ctx, _ = _ctx(tmp_path)
    crew = FactoryCrew(config, ctx, plan)
    crew.load_configurations()
    reader = next(t for t in crew.agents_config["developer"]["tools"] if t.name == "read_file")
    window = plan.llm_for("developer").get_context_window_size()
    assert window == 128_000 and reader.output_tokens == 1280
    assert LLMConfig().read_file_share == 0.25 and LLMConfig().max_prompt_tokens is None


# == 7. Context overflow: the prompt ceiling ================================================


def _scripted() -> ScriptedLLM:
    book = Path(__file__).resolve().parent.parent / "examples/playbooks/wordcount.yaml"
    return ScriptedLLM(load_playbook(book), {"Software Developer": "developer"})


SYSTEM = "You are Software Developer. " + "Rules. " * 200
TASK = "Current Task: Implement wordcount.py as DESIGN.md describes. " + "Spec. " * 200


def _text_mode(outputs: list[str]) -> list[dict[str, Any]]:
    """An agent's messages as CrewAI's text-mode loop builds them: each tool output follows
    ``Observation:`` in the assistant's message, then a short user reminder."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TASK},
    ]
    for i, output in enumerate(outputs):
        messages.append(
            {
                "role": "assistant",
                "content": f"Thought: step {i}\nAction: read_file\nAction Input: "
                f'{{"path": "f{i}"}}\nObservation: {output}',
            }
        )
        messages.append({"role": "user", "content": "Reflect on the result, then go on."})
    return messages


def test_a_prompt_under_its_ceiling_is_not_touched() -> None:
    messages = _text_mode(["small"])
    before = copy.deepcopy(messages)
    assert fit(messages, 10_000) is None
    assert messages == before


def test_cut_drops_the_oldest_tool_outputs_first_and_never_the_system_prompt_or_task() -> None:
    outputs = [f"OUTPUT{i} " + "x" * 4000 for i in range(4)]
    messages = _text_mode(outputs)
    total = estimate_tokens(messages_text(messages))
    ceiling = total - 1500  # two old outputs (~1000 tokens each) must go
    cut = fit(messages, ceiling)
    assert cut is not None
    assert (cut.tokens_before, cut.dropped, cut.turns, cut.shortened) == (total, 2, 0, 0)
    assert cut.tokens_after == estimate_tokens(messages_text(messages)) <= ceiling
    assert messages[0]["content"] == SYSTEM and messages[1]["content"] == TASK
    texts = [m["content"] for m in messages]
    assert "OUTPUT0" not in texts[2] and "OUTPUT1" not in texts[4]
    assert texts[2].endswith(f"Observation: {DROPPED_OUTPUT}") and "Action: read_file" in texts[2]
    assert "OUTPUT2" in texts[6] and "OUTPUT3" in texts[8]  # newer ones kept whole
    assert len(messages) == 10  # text replaced, never a message removed


def test_cut_keeps_native_tool_messages_paired_with_their_calls() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TASK},
    ]
    for i in range(3):
        messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{i}"}]})
        messages.append(
            {"role": "tool", "tool_call_id": f"c{i}", "name": "read_file", "content": "y" * 4000}
        )
    cut = fit(messages, estimate_tokens(messages_text(messages)) - 900)
    assert cut is not None and cut.dropped == 1
    assert messages[3] == {
        "role": "tool",
        "tool_call_id": "c0",
        "name": "read_file",
        "content": DROPPED_OUTPUT,
    }
    assert messages[5]["content"] == messages[7]["content"] == "y" * 4000
    assert [m.get("tool_call_id") for m in messages if m["role"] == "tool"] == ["c0", "c1", "c2"]


def test_cut_then_drops_earlier_turns_then_shortens_the_newest_output_keeping_both_ends() -> None:
    messages = _text_mode(["old " + "a" * 400, "HEAD " + "b" * 20_000 + " TAIL: 3 passed"])
    messages[2]["content"] = "Thought: " + "long reasoning " * 300 + messages[2]["content"]
    ceiling = estimate_tokens(SYSTEM + TASK) + 1200
    cut = fit(messages, ceiling)
    assert cut is not None
    assert (cut.dropped, cut.turns, cut.shortened) == (1, 2, 1)
    assert cut.tokens_after <= ceiling
    assert messages[2]["content"] == messages[3]["content"] == DROPPED_TURN
    newest = messages[4]["content"]
    assert "HEAD" in newest and newest.endswith("TAIL: 3 passed")
    assert "characters cut to keep the prompt under its token ceiling" in newest


def test_guard_cuts_to_the_smaller_of_its_ceiling_and_the_models_window_and_traces_it() -> None:
    llm = _scripted()
    seen: Events = []
    guard = PromptGuard(None, emit=lambda kind, **data: seen.append((kind, data)))
    assert guard.ceiling(llm) == llm.get_context_window_size() == 128_000
    guard = PromptGuard(3000, emit=lambda kind, **data: seen.append((kind, data)))
    assert guard.ceiling(llm) == 3000
    small = _text_mode(["ok"])
    guard.check(small, llm, "Software Developer")
    assert seen == []
    messages = _text_mode(["z" * 8000, "w" * 4000])
    guard.check(messages, llm, "Software Developer")
    assert estimate_tokens(messages_text(messages)) <= 3000
    assert [k for k, _ in seen] == ["prompt_cut"]
    data = seen[0][1]
    assert data["role"] == "Software Developer" and data["model"] == llm.model
    assert data["ceiling"] == 3000 and data["tokens_after"] <= 3000 < data["tokens_before"]
    assert data["dropped"] == 1


def test_guard_refuses_a_prompt_whose_system_prompt_and_task_exceed_the_ceiling() -> None:
    llm = _scripted()
    seen: Events = []
    guard = PromptGuard(500, emit=lambda kind, **data: seen.append((kind, data)))
    messages = _text_mode([])
    before = copy.deepcopy(messages)
    with pytest.raises(PromptTooLarge, match=r"over its ceiling of 500"):
        guard.check(messages, llm, "Software Developer")
    assert messages == before  # nothing that may not be cut was cut
    assert [k for k, _ in seen] == ["prompt_refused"]
    assert seen[0][1]["tokens"] == estimate_tokens(SYSTEM + "\n" + TASK)
    # Every later call of the phase is refused too (CrewAI hid the first from the manager).
    with pytest.raises(PromptTooLarge):
        guard.check(_text_mode(["tiny"])[:1], llm, "Engineering Manager")
    assert guard.refused is not None and len(seen) == 1


def test_guard_hook_is_installed_only_while_enforced() -> None:
    from crewai.hooks import get_before_llm_call_hooks

    guard = PromptGuard(1000, emit=lambda kind, **data: None)
    before = len(get_before_llm_call_hooks())
    with guard.enforced():
        assert len(get_before_llm_call_hooks()) == before + 1
    assert len(get_before_llm_call_hooks()) == before


# == 8. Fenced file contents ===============================================================

CODE = 'print("hi")\n\n\ndef f():\n    return 1\n'


@pytest.mark.parametrize(
    ("content", "path", "expected", "info"),
    [
        (f"```python\n{CODE}```\n", "a.py", CODE, "python"),
        (f"\n```python\n{CODE}```", "a.py", CODE, "python"),  # blank lines around
        (f"```\n{CODE}```\n", "a.py", CODE, ""),
        (f"~~~py\n{CODE}~~~\n", "a.py", CODE, "py"),
        ("````md\n```py\nx\n```\n````\n", "a.txt", "```py\nx\n```\n", "md"),  # inner shorter
        (f"```python\n{CODE}```\n", "README.md", None, None),  # a fence is Markdown's content
        (f"```python\n{CODE}```\n", "docs/Guide.MARKDOWN", None, None),
        (f"Here it is:\n```python\n{CODE}```\n", "a.py", None, None),  # text before
        (f"```python\n{CODE}```\nDone.\n", "a.py", None, None),  # text after
        ("```\na\n```\nb\n```\nc\n```\n", "a.py", None, None),  # two fences
        (CODE, "a.py", None, None),  # no fence
        ("x = '```'\n", "a.py", None, None),
    ],
)
def test_unfence_only_when_the_whole_content_is_exactly_one_fence(
    content: str, path: str, expected: str | None, info: str | None
) -> None:
    assert unfence(content, path) == (content if expected is None else expected, info)


def test_write_file_unwraps_a_fenced_file_and_says_so(tmp_path: Path) -> None:
    ctx, seen = _ctx(tmp_path)
    out = WriteFileTool(ctx=ctx)._run(path="pkg/app.py", content=f"```python\n{CODE}```\n")
    assert (ctx.workspace / "pkg/app.py").read_text(encoding="utf-8") == CODE
    assert out.startswith(f"Wrote 'pkg/app.py' (created): {len(CODE)} bytes, 5 lines.")
    assert "Markdown fence around the content (```python) was removed" in out
    assert seen == [
        ("file_op", {"tool": "write_file", "path": "pkg/app.py", "ok": True, "bytes": len(CODE)}),
        ("fence_unwrapped", {"tool": "write_file", "path": "pkg/app.py", "info": "python"}),
    ]


def test_write_file_keeps_a_fenced_markdown_file_as_given(tmp_path: Path) -> None:
    ctx, seen = _ctx(tmp_path)
    content = f"```python\n{CODE}```\n"
    out = WriteFileTool(ctx=ctx)._run(path="docs/example.md", content=content)
    assert (ctx.workspace / "docs/example.md").read_text(encoding="utf-8") == content
    assert "fence" not in out
    assert [k for k, _ in seen] == ["file_op"]


# == end to end: playbooks through the real crew ===========================================


def _steps(book: dict[str, Any]) -> int:
    return sum(len(steps) for steps in book["roles"].values())


def _calls(run: Path) -> int:
    return len(events(run, "llm_call"))


@pytest.mark.e2e
@NEEDS_BWRAP
def test_e2e_fenced_code_is_unwrapped_and_the_run_delivers(tmp_path: Path) -> None:
    book = example_playbook()
    code = good_code(book)
    write = next(s for s in book["roles"]["developer"] if s.get("tool") == "write_file")
    write["args"]["content"] = f"```python\n{code}```\n"
    assert run_spec(tmp_path / "runs", book) == 0
    run = only_run(tmp_path / "runs")
    assert report_of(run)["status"] == "delivered"
    assert (run / "workspace" / "wordcount.py").read_text(encoding="utf-8") == code
    unwrapped = events(run, "fence_unwrapped")
    assert [(e["path"], e["info"], e["phase"]) for e in unwrapped] == [
        ("wordcount.py", "python", "implement")
    ]
    assert _calls(run) == _steps(book)


def _developer_reads_big_file(book: dict[str, Any], big: str) -> None:
    """The developer writes a 3,600-token file, reads it whole, then works as usual."""
    dev = book["roles"]["developer"]
    dev[:0] = [
        {"tool": "write_file", "args": {"path": "notes/big.txt", "content": big}},
        {"tool": "read_file", "args": {"path": "notes/big.txt"}},
    ]


@pytest.mark.e2e
@NEEDS_BWRAP
def test_e2e_prompts_over_the_ceiling_are_cut_and_the_run_delivers(tmp_path: Path) -> None:
    ceiling = 4000
    book = example_playbook()
    big = "".join(f"line {i:04d} lorem ipsum dolor sit amet\n" for i in range(1, 351))
    _developer_reads_big_file(book, big)
    # The developer's last prompt still holds its task, and says what was cut.
    book["roles"]["developer"][-1]["expect"] = [
        "Implement wordcount.py as DESIGN.md describes",
        DROPPED_OUTPUT,
    ]
    cfg = config_with(tmp_path, llm={"max_prompt_tokens": ceiling})
    assert run_spec(tmp_path / "runs", book, config=cfg) == 0
    run = only_run(tmp_path / "runs")
    assert report_of(run)["status"] == "delivered"
    cuts = events(run, "prompt_cut")
    assert {e["role"] for e in cuts} >= {"Software Developer"}
    assert all(e["ceiling"] == ceiling and e["tokens_after"] <= ceiling for e in cuts)
    assert any(e["shortened"] for e in cuts) and any(e["dropped"] for e in cuts)
    calls = events(run, "llm_call")
    assert len(calls) == _steps(book)  # cutting costs no model call
    assert max(c["prompt_tokens"] for c in calls) <= ceiling
    assert not events(run, "prompt_refused")


@pytest.mark.e2e
@NEEDS_BWRAP
def test_e2e_a_protocol_error_re_ask_is_cut_to_the_ceiling_too(tmp_path: Path) -> None:
    """The protocol guard asks the model again outside CrewAI's before-call hooks, with the
    bad reply (~1,000 tokens here) and its note added: that prompt is cut too (it was ~5,055
    tokens, over a 4,000 ceiling, before the guard got the phase's prompt guard)."""
    ceiling = 4000
    book = example_playbook()
    big = "".join(f"line {i:04d} lorem ipsum dolor sit amet\n" for i in range(1, 351))
    _developer_reads_big_file(book, big)
    bad = "Thought: I write it.\nAction: write_file\nAction Input: {not json " + "y" * 3900
    dev = book["roles"]["developer"]
    dev.insert(2, {"raw": bad})
    dev[3]["expect"] = "is not a JSON object"  # the re-ask: the note survived the cut
    cfg = config_with(tmp_path, llm={"max_prompt_tokens": ceiling})
    assert run_spec(tmp_path / "runs", book, "--max-llm-calls", "60", config=cfg) == 0
    run = only_run(tmp_path / "runs")
    assert report_of(run)["status"] == "delivered"
    records = read_trace(run / "trace.jsonl")
    [error_at] = [i for i, r in enumerate(records) if r["kind"] == "protocol_error"]
    assert records[error_at]["error"] == "invalid_json"
    # What came next: the re-ask's prompt cut (the trace says so), then its call.
    cut, call = [r for r in records[error_at:] if r["kind"] in ("prompt_cut", "llm_call")][:2]
    assert (cut["kind"], cut["role"], cut["phase"]) == (
        "prompt_cut",
        "Software Developer",
        "implement",
    )
    assert cut["tokens_before"] > ceiling >= cut["tokens_after"]
    assert call["kind"] == "llm_call" and call["prompt_tokens"] <= ceiling
    calls = events(run, "llm_call")
    assert len(calls) == _steps(book)  # the re-ask is one of the playbook's steps
    assert max(c["prompt_tokens"] for c in calls) <= ceiling
    assert not events(run, "prompt_refused")


@pytest.mark.e2e
@NEEDS_BWRAP
def test_e2e_a_task_over_the_ceiling_is_refused_before_any_model_call(tmp_path: Path) -> None:
    cfg = config_with(tmp_path, llm={"max_prompt_tokens": 300})
    assert run_spec(tmp_path / "runs", example_playbook(), config=cfg) == 1
    run = only_run(tmp_path / "runs")
    report = report_of(run)
    assert report["status"] == "failed"
    assert "PromptTooLarge" in report["reason"] and "Engineering Manager" in report["reason"]
    [refused] = events(run, "prompt_refused")
    assert refused["role"] == "Engineering Manager" and refused["ceiling"] == 300
    assert refused["phase"] == "design"
    assert _calls(run) == 0


@pytest.mark.e2e
@NEEDS_BWRAP
def test_e2e_a_coworker_refused_ends_the_phase_not_the_manager_looping(tmp_path: Path) -> None:
    """A delegation whose context alone is over the ceiling: the coworker's first prompt is
    refused, CrewAI tells the manager, the manager's next call is refused too, the run fails."""
    book = example_playbook()
    book["roles"]["manager"][2]["delegate"]["context"] = "Background. " * 6000
    # Over every prompt of the design phase (at most ~1,600 tokens), under the coworker's.
    cfg = config_with(tmp_path, llm={"max_prompt_tokens": 2500})
    assert run_spec(tmp_path / "runs", book, config=cfg) == 1
    run = only_run(tmp_path / "runs")
    report = report_of(run)
    assert report["status"] == "failed" and "PromptTooLarge" in report["reason"]
    assert "Software Developer" in report["reason"]
    [refused] = events(run, "prompt_refused")
    assert (refused["role"], refused["phase"]) == ("Software Developer", "implement")
    design = len(book["roles"]["architect"]) + 2  # the design phase, whole
    assert _calls(run) == design + 1  # and the manager's delegation in implement


@pytest.mark.e2e
@NEEDS_BWRAP
def test_e2e_a_large_file_is_read_in_ranges_sized_to_the_model(tmp_path: Path) -> None:
    share = 0.004  # of the scripted model's 128,000 tokens: 512 tokens a read
    book = example_playbook()
    big = "".join(f"line {i:04d} lorem ipsum dolor sit amet\n" for i in range(1, 121))
    # What the developer will be shown: the first range and its notice.
    probe, _ = _ctx(tmp_path)
    (probe.workspace / "notes").mkdir()
    (probe.workspace / "notes/big.txt").write_text(big, encoding="utf-8")
    first = ReadFileTool(ctx=probe, output_tokens=int(128_000 * share))._run(path="notes/big.txt")
    notice = first.splitlines()[-1]
    start = int(re.search(r"start_line=(\d+)", notice)[1])  # type: ignore[index]
    _developer_reads_big_file(book, big)
    book["roles"]["developer"][2:2] = [
        {
            "tool": "read_file",
            "args": {"path": "notes/big.txt", "start_line": start},
            "expect": [notice, "llm.read_file_share"],
        }
    ]
    cfg = config_with(tmp_path, llm={"read_file_share": share})
    assert run_spec(tmp_path / "runs", book, config=cfg) == 0
    run = only_run(tmp_path / "runs")
    assert report_of(run)["status"] == "delivered"
    reads = [e for e in events(run, "file_op") if e["tool"] == "read_file"]
    # (The tool's own answers are bounded in the unit tests above; a tool_call's
    # output_chars also counts what CrewAI appends to every third tool output.)
    assert [(e["path"], e["cut"]) for e in reads][:3] == [
        ("notes/big.txt", True),
        ("notes/big.txt", True),
        ("DESIGN.md", False),
    ]
    assert _calls(run) == _steps(book)
