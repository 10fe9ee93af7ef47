"""Models that misbehave, rehearsed through the real crew: protocol errors, prose, refusals,
and answers that claim work nobody did (engine/protocol.py).

The scripted model is a test tool, not AI: each test plays a variant of the wordcount
playbook and asserts the end status, the trace events and the number of model calls.
The happy path takes 25 calls (manager 8, architect 3, developer 4, QA 3, writer 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runhelp import NEEDS_BWRAP, events, example_playbook, only_run, report_of, run_spec

pytestmark = [pytest.mark.e2e, NEEDS_BWRAP]

HAPPY_CALLS = 25
DEV = "Software Developer"


def run(tmp_path: Path, book: dict[str, Any]) -> tuple[int, Path, dict[str, Any]]:
    out = tmp_path / "runs"
    code = run_spec(out, book, "--max-llm-calls", "60")
    run_dir = only_run(out)
    return code, run_dir, report_of(run_dir)


def developer_first(*steps: dict[str, Any]) -> dict[str, Any]:
    """The wordcount playbook whose developer first plays ``steps``."""
    book = example_playbook()
    book["roles"]["developer"][0:0] = list(steps)
    return book


def raw_call(tool: str, args: str) -> dict[str, Any]:
    return {"raw": f"Thought: I use a tool.\nAction: {tool}\nAction Input: {args}"}


# -- protocol errors: told, asked again, recovered ---------------------------------------
@pytest.mark.parametrize(
    ("bad", "error", "told"),
    [
        (raw_call("hack_the_planet", "{}"), "unknown_tool", "Your tools are exactly: "),
        (raw_call("read_file", "{not json"), "invalid_json", '"path": string'),
        (raw_call("read_file", '{"file": "DESIGN.md"}'), "bad_arguments", '"path": string'),
    ],
    ids=["unknown_tool", "invalid_json", "bad_arguments"],
)
def test_one_protocol_error_is_explained_and_the_agent_recovers(
    tmp_path: Path, bad: dict[str, Any], error: str, told: str
) -> None:
    book = developer_first(bad)
    book["roles"]["developer"][1]["expect"] = told  # the note is in the prompt it answers
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (0, "delivered"), report["reason"]
    errors = events(run_dir, "protocol_error")
    assert [(e["role"], e["error"], e["streak"]) for e in errors] == [(DEV, error, 1)]
    assert errors[0]["phase"] == "implement"
    assert not events(run_dir, "protocol_failure")
    assert report["llm"]["calls"] == HAPPY_CALLS + 1


def test_unknown_tool_note_lists_exactly_the_agents_tools(tmp_path: Path) -> None:
    book = developer_first(raw_call("hack_the_planet", "{}"))
    book["roles"]["developer"][1]["expect"] = [
        "'hack_the_planet', which you do not have",
        "read_file",
        "run_tests",
        "write_file",
    ]
    code, _, report = run(tmp_path, book)
    assert (code, report["status"]) == (0, "delivered"), report["reason"]


def test_three_protocol_errors_in_a_row_fail_the_phase_model_protocol(tmp_path: Path) -> None:
    book = developer_first(
        raw_call("hack_the_planet", "{}"),
        raw_call("write_file", "{not json"),
        raw_call("write_file", '{"wrong": 1}'),
    )
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (1, "failed")
    assert "model_protocol" in report["reason"] and DEV in report["reason"]
    assert "phase implement" in report["reason"] and "resume" not in report["reason"]
    errors = events(run_dir, "protocol_error")
    assert [(e["error"], e["streak"]) for e in errors] == [
        ("unknown_tool", 1),
        ("invalid_json", 2),
        ("bad_arguments", 3),
    ]
    (failure,) = events(run_dir, "protocol_failure")
    assert failure["failure_class"] == "model_protocol" and failure["role"] == DEV
    assert [e["outcome"] for e in events(run_dir, "crew_end")][-1] == "ModelProtocolError"
    assert not events(run_dir, "file_op") or all(
        e["tool"] != "write_file" for e in events(run_dir, "file_op") if e["phase"] == "implement"
    )
    # design: manager 2 + architect 3; implement: the manager's delegation + 3 bad replies.
    assert report["llm"]["calls"] == 2 + 3 + 1 + 3


def test_a_good_reply_between_errors_resets_the_streak(tmp_path: Path) -> None:
    book = example_playbook()
    dev = book["roles"]["developer"]
    bad = raw_call("hack_the_planet", "{}")
    # bad, bad, read_file (good), bad, bad, write_file, run_tests, answer
    book["roles"]["developer"] = [bad, bad, dev[0], bad, bad, *dev[1:]]
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (0, "delivered"), report["reason"]
    assert [e["streak"] for e in events(run_dir, "protocol_error")] == [1, 2, 1, 2]
    assert report["llm"]["calls"] == HAPPY_CALLS + 4


# -- rambling: prose that is neither a tool call nor an answer ---------------------------
def test_prose_gets_a_reminder_and_the_next_answer_counts(tmp_path: Path) -> None:
    book = example_playbook()
    dev = book["roles"]["developer"]
    dev.insert(3, {"raw": "So that was quite a journey, and the code looks lovely to me."})
    dev[4]["expect"] = "neither a tool call nor a final answer"
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (0, "delivered"), report["reason"]
    errors = events(run_dir, "protocol_error")
    assert [(e["role"], e["error"], e["tool"]) for e in errors] == [(DEV, "prose", "")]
    assert report["llm"]["calls"] == HAPPY_CALLS + 1


def test_a_manager_that_only_rambles_fails_model_protocol_after_three(tmp_path: Path) -> None:
    book = example_playbook()
    prose = {"raw": "Let me think about the architecture of word counting in general."}
    book["roles"]["manager"][0:0] = [prose, prose, prose]
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (1, "failed")
    assert "model_protocol" in report["reason"] and "phase design" in report["reason"]
    assert [e["error"] for e in events(run_dir, "protocol_error")] == ["prose"] * 3
    assert len(events(run_dir, "protocol_failure")) == 1
    assert report["llm"]["calls"] == 3


# -- refusals ---------------------------------------------------------------------------
def test_a_refusing_final_answer_escalates_quoting_it_cleaned(tmp_path: Path) -> None:
    hostile = "I'm sorry, but I can't help with that.\x1b[2J\x07" + " Really." * 2000
    code, run_dir, report = run(tmp_path, developer_first({"answer": hostile}))
    assert (code, report["status"]) == (1, "escalated")
    reason = report["reason"]
    assert "I'm sorry, but I can't help with that." in reason and DEV in reason
    assert "\x1b" not in reason and "\x07" not in reason and len(reason) < 600
    (refusal,) = events(run_dir, "model_refusal")
    assert refusal["role"] == DEV and refusal["finish_reason"] is None
    assert len(refusal["text"]) <= 300
    assert events(run_dir, "escalation")[-1]["reason"] == reason
    assert "resume" not in reason
    # design 5, then the manager's delegation and the developer's one refusing reply.
    assert report["llm"]["calls"] == 5 + 1 + 1


def test_a_refusal_in_prose_by_the_manager_escalates(tmp_path: Path) -> None:
    book = example_playbook()
    book["roles"]["manager"].insert(0, {"raw": "I cannot assist with this request."})
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (1, "escalated")
    assert '"I cannot assist with this request."' in report["reason"]
    assert [e["role"] for e in events(run_dir, "model_refusal")] == ["Engineering Manager"]
    assert not events(run_dir, "protocol_error")
    assert report["llm"]["calls"] == 1


def test_a_provider_refusal_finish_reason_escalates(tmp_path: Path) -> None:
    filtered = {"raw": "The output was withheld.", "finish_reason": "content_filter"}
    code, run_dir, report = run(tmp_path, developer_first(filtered))
    assert (code, report["status"]) == (1, "escalated")
    assert "content_filter" in report["reason"] and DEV in report["reason"]
    (refusal,) = events(run_dir, "model_refusal")
    assert refusal["finish_reason"] == "content_filter"
    assert report["llm"]["calls"] == 5 + 1 + 1


# -- refusals that say nothing -----------------------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param({"answer": ""}, id="empty-final-answer"),  # "Final Answer:" and nothing
        pytest.param({"raw": ""}, id="no-text"),  # CrewAI turns it down and asks again
    ],
)
def test_an_empty_reply_with_a_refusal_finish_reason_escalates_at_once(
    tmp_path: Path, reply: dict[str, Any]
) -> None:
    code, run_dir, report = run(tmp_path, developer_first({**reply, "finish_reason": "refusal"}))
    assert (code, report["status"]) == (1, "escalated")
    assert (
        f'{DEV}\'s model refused in phase implement (finish reason refusal): "(no text)"'
        in (report["reason"])
    )
    (refusal,) = events(run_dir, "model_refusal")
    assert (refusal["role"], refusal["text"], refusal["finish_reason"]) == (DEV, "", "refusal")
    assert not events(run_dir, "protocol_error")
    # design 5, the manager's delegation, the developer's empty reply: no call after it.
    assert report["llm"]["calls"] == 5 + 1 + 1


def test_an_empty_final_answer_without_a_finish_reason_is_reminded_like_prose(
    tmp_path: Path,
) -> None:
    """No refusal reason, no text: a refusal or a glitch. The agent is asked again (an empty
    answer is none), at most twice in a row, like prose."""
    book = developer_first({"answer": " "})
    book["roles"]["developer"][1]["expect"] = "neither a tool call nor a final answer"
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (0, "delivered"), report["reason"]
    errors = events(run_dir, "protocol_error")
    assert [(e["role"], e["error"], e["detail"]) for e in errors] == [
        (DEV, "prose", "an empty final answer")
    ]
    assert not events(run_dir, "model_refusal")
    assert report["llm"]["calls"] == HAPPY_CALLS + 1


# -- claims without work ----------------------------------------------------------------
def test_done_without_work_is_caught_by_verify_and_the_fix_task_says_so(
    tmp_path: Path,
) -> None:
    book = example_playbook()
    real_work = book["roles"]["developer"]
    book["roles"]["developer"] = [{"answer": "Done. wordcount.py is written and all tests pass."}]
    book["roles"]["developer"] += real_work  # the fix round does the work
    manager = book["roles"]["manager"]
    fix = [
        {
            "delegate": {
                "to": "developer",
                "task": "Implement wordcount.py; nothing was written before.",
                "context": "The acceptance tests fail: wordcount does not exist.",
            },
            "expect": [
                "implement: changed no file; ran no test",
                "The previous implement answer changed nothing",
            ],
        },
        {"answer": "wordcount.py is implemented now."},
    ]
    manager[6:6] = fix  # after design, implement, qa; before document
    code, run_dir, report = run(tmp_path, book)
    assert (code, report["status"]) == (0, "delivered"), report["reason"]
    work = {e["task"]: e for e in events(run_dir, "phase_work")}
    assert (work["implement"]["files"], work["implement"]["tests_run"]) == ([], 0)
    assert work["implement"]["answer"] == "wordcount.py is implemented."  # the claim
    assert "wordcount.py" in work["fix"]["files"] and work["fix"]["tests_run"] == 1
    assert [r["round"] for r in events(run_dir, "fix_round")] == [1]
    assert report["verify_rounds"][0]["passed"] is False
    assert report["llm"]["calls"] == HAPPY_CALLS + 1 + 2  # the idle answer; the fix round
