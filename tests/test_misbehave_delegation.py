"""A manager that misbehaves at delegating: no delegation, malformed delegations, loops.

Real crew, tools and bwrap sandbox; the scripted model (a test tool, not AI) plays a
variant of examples/playbooks/wordcount.yaml (25 model calls when nothing goes wrong).
``raw:`` steps write what a well-formed step cannot: objects for text, loose names.
Each test asserts the end status, the trace events and the number of model calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runhelp import (
    NEEDS_BWRAP,
    config_with,
    events,
    example_playbook,
    only_run,
    report_of,
    run_spec,
)

from darkfactory.reporting.trace import check_record, read_trace

pytestmark = [pytest.mark.e2e, NEEDS_BWRAP]

HAPPY_CALLS = 25
#: The phases of the happy path's delegations, one each.
DELEGATED = ["design", "implement", "qa", "document"]
DESIGN = {
    "to": "architect",
    "task": "Write DESIGN.md for the word count CLI.",
    "context": "The spec asks for a wordcount module.",
}


def raw_delegation(args: dict[str, Any]) -> dict[str, Any]:
    """A manager step calling CrewAI's delegation tool with exactly these arguments."""
    return {
        "raw": "Thought: I delegate.\nAction: Delegate work to coworker\n"
        f"Action Input: {json.dumps(args)}"
    }


def run(tmp_path: Path, book: dict[str, Any], **factory: Any) -> tuple[int, Path]:
    out = tmp_path / "runs"
    config = config_with(tmp_path, **factory) if factory else None
    code = run_spec(out, book, config=config)
    run_dir = only_run(out)
    for record in read_trace(run_dir / "trace.jsonl"):
        assert not check_record(record), record
    return code, run_dir


def calls(run_dir: Path) -> int:
    return len([r for r in events(run_dir, "llm_call") if r["outcome"] == "ok"])


# -- 1. no delegation --------------------------------------------------------------------


def test_manager_answering_without_delegating_is_reminded_then_delivers(tmp_path: Path) -> None:
    book = example_playbook()
    manager = book["roles"]["manager"]
    manager[0]["expect"] = "came without delegating any work"  # the reminder reached it
    manager.insert(0, {"answer": "I designed it myself: one module, wordcount.py."})
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    [missed] = events(run_dir, "no_delegation")
    assert missed["attempt"] == 1 and missed["phase"] == "design"
    assert "designed it myself" in missed["answer"]
    assert calls(run_dir) == HAPPY_CALLS + 1


def test_manager_answering_twice_without_delegating_escalates(tmp_path: Path) -> None:
    book = example_playbook()
    book["roles"]["manager"][:0] = [
        {"answer": "Done: the design is in my head."},
        {"answer": "Still done: I wrote nothing down."},
    ]
    code, run_dir = run(tmp_path, book)
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "escalated"
    assert "twice without delegating" in report["reason"]
    assert "Still done: I wrote nothing down." in report["reason"]  # the answer, quoted
    assert "resume" not in report["reason"]
    assert [e["attempt"] for e in events(run_dir, "no_delegation")] == [1, 2]
    assert calls(run_dir) == 2


# -- 2. malformed delegations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fixed"),
    [
        pytest.param(
            {
                "task": {"description": DESIGN["task"], "type": "str"},
                "context": {"description": DESIGN["context"], "type": "str"},
                "coworker": "Software Architect",
            },
            ["task: dict -> text", "context: dict -> text"],
            id="task-and-context-objects",
        ),
        pytest.param(
            {"description": DESIGN["task"], "coworker": "Software Architect"},
            ["description -> task"],
            id="task-under-another-name-no-context",
        ),
        pytest.param(
            {"task": DESIGN["task"], "context": "", "coworker": "architect"},
            ["coworker 'architect' -> 'Software Architect'"],
            id="role-key",
        ),
        pytest.param(
            {"task": DESIGN["task"], "context": "", "coworker": "Senior Architect"},
            ["coworker 'Senior Architect' -> 'Software Architect'"],
            id="loose-role",
        ),
        pytest.param(
            {"task": DESIGN["task"], "context": "", "coworker": "SOFTWARE architect"},
            ["coworker 'SOFTWARE architect' -> 'Software Architect'"],
            id="other-case",
        ),
    ],
)
def test_malformed_delegation_is_normalised_and_delivers(
    tmp_path: Path, args: dict[str, Any], fixed: list[str]
) -> None:
    book = example_playbook()
    book["roles"]["manager"][0] = raw_delegation(args)
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    [mended] = events(run_dir, "delegation_normalised")
    assert mended["fixed"] == fixed and mended["coworker"] == "Software Architect"
    assert not events(run_dir, "delegation_refused")
    assert events(run_dir, "delegation")[0]["coworker"] == "Software Architect"
    assert calls(run_dir) == HAPPY_CALLS


@pytest.mark.parametrize(
    ("coworker", "why"),
    [("Backend Engineer", "unknown_coworker"), ("Software", "ambiguous_coworker")],
)
def test_unmatched_coworker_gets_the_exact_roles_and_the_retry_delivers(
    tmp_path: Path, coworker: str, why: str
) -> None:
    book = example_playbook()
    manager = book["roles"]["manager"]
    manager[0]["expect"] = (
        "Delegate to exactly one of: Software Architect, Software Developer, QA Engineer, "
        "Technical Writer."
    )
    task, context = DESIGN["task"], DESIGN["context"]
    manager.insert(0, raw_delegation({"task": task, "context": context, "coworker": coworker}))
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    [refused] = events(run_dir, "delegation_refused")
    assert (refused["reason"], refused["coworker"], refused["attempt"]) == (why, coworker, 1)
    assert calls(run_dir) == HAPPY_CALLS + 1


@pytest.mark.parametrize(
    "task",
    [pytest.param(" \n ", id="blank"), pytest.param(None, id="null")],
)
def test_a_delegation_with_an_empty_task_is_refused_and_the_retry_delivers(
    tmp_path: Path, task: str | None
) -> None:
    book = example_playbook()
    manager = book["roles"]["manager"]
    manager[0]["expect"] = "Error: say what to do in 'task' (text). Coworkers: Software Architect"
    manager.insert(0, raw_delegation({"coworker": "architect", "task": task, "context": ""}))
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    refused = events(run_dir, "delegation_refused")
    assert [(r["reason"], r["mode"], r["attempt"]) for r in refused] == [
        ("missing_task", "delegate", 1)
    ]
    # The refused one never reached a coworker.
    assert [d["phase"] for d in events(run_dir, "delegation")] == DELEGATED
    assert not events(run_dir, "protocol_error")
    assert calls(run_dir) == HAPPY_CALLS + 1


def test_a_delegation_without_a_task_field_is_explained_and_the_retry_delivers(
    tmp_path: Path,
) -> None:
    """No ``task`` at all does not fit the tool's schema: a protocol error (engine/protocol.py)
    tells the manager the arguments, before the delegation guard sees the call."""
    book = example_playbook()
    manager = book["roles"]["manager"]
    manager[0]["expect"] = ["task: Field required", '{"task": string, "context": string']
    manager.insert(0, raw_delegation({"coworker": "Software Architect", "context": "c"}))
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    errors = events(run_dir, "protocol_error")
    assert [(e["role"], e["error"], e["tool"]) for e in errors] == [
        ("Engineering Manager", "bad_arguments", "delegate_work_to_coworker")
    ]
    assert not events(run_dir, "delegation_refused")
    assert [d["phase"] for d in events(run_dir, "delegation")] == DELEGATED
    assert calls(run_dir) == HAPPY_CALLS + 1


# -- the other delegation tool: asking a coworker a question ------------------------------


def test_a_question_to_a_loosely_named_coworker_is_answered_and_the_run_delivers(
    tmp_path: Path,
) -> None:
    book = example_playbook()
    # CrewAI's other delegation tool, its coworker named by a shortened role ("arch").
    question = {"question": "Which module name should I use?", "context": "", "coworker": "arch"}
    ask = "Thought: I ask first.\nAction: Ask question to coworker\nAction Input: "
    book["roles"]["manager"].insert(0, {"raw": ask + json.dumps(question)})
    book["roles"]["manager"][1]["expect"] = "Call it wordcount."  # the answer came back
    book["roles"]["architect"].insert(0, {"answer": "Call it wordcount."})
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    [mended] = events(run_dir, "delegation_normalised")
    assert (mended["mode"], mended["coworker"]) == ("ask", "Software Architect")
    assert mended["fixed"] == ["coworker 'arch' -> 'Software Architect'"]
    [asked] = [d for d in events(run_dir, "delegation") if d["mode"] == "ask"]
    assert (asked["coworker"], asked["phase"]) == ("Software Architect", "design")
    assert not events(run_dir, "no_delegation") and not events(run_dir, "delegation_refused")
    assert calls(run_dir) == HAPPY_CALLS + 2  # the question and its answer


def test_a_phase_with_only_a_question_counts_as_no_delegation(tmp_path: Path) -> None:
    book = example_playbook()
    manager = book["roles"]["manager"]
    manager[0]["expect"] = "came without delegating any work"  # the reminder, on the rerun
    manager[0:0] = [
        {"ask": {"to": "architect", "question": "Is a design needed at all?"}},
        {"answer": "The architect says it is simple; nothing to do."},
    ]
    book["roles"]["architect"].insert(0, {"answer": "It is simple."})
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    [missed] = events(run_dir, "no_delegation")
    assert (missed["attempt"], missed["phase"]) == (1, "design")
    assert calls(run_dir) == HAPPY_CALLS + 3  # the question, its answer, the idle answer


# -- 3. delegation loops -----------------------------------------------------------------


def test_third_identical_delegation_is_refused_and_the_manager_finishes(tmp_path: Path) -> None:
    book = example_playbook()
    manager = book["roles"]["manager"]
    again = {"delegate": dict(DESIGN)}
    manager[0] = {"delegate": dict(DESIGN)}
    manager[1:1] = [again, again]
    manager[3]["expect"] = "was already given this task twice"  # the answer after the third
    code, run_dir = run(tmp_path, book)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    [refused] = events(run_dir, "delegation_refused")
    assert (refused["reason"], refused["attempt"]) == ("repeated", 3)
    # The second, identical, is CrewAI's own "reusing the same input": no coworker call.
    assert calls(run_dir) == HAPPY_CALLS + 2


def _looping(tasks: list[str], *, answers: int) -> dict[str, Any]:
    book = example_playbook()
    book["roles"]["manager"] = [{"delegate": {**DESIGN, "task": t}} for t in tasks]
    book["roles"]["architect"] = [{"answer": "DESIGN.md is written."}] * answers
    return book


def _assert_stuck(run_dir: Path, code: int, limit: int) -> dict[str, Any]:
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "escalated"
    assert f"max_delegations_per_phase={limit}" in report["reason"]
    assert "resume" not in report["reason"]
    [stuck] = events(run_dir, "delegation_stuck")
    assert (stuck["attempts"], stuck["limit"]) == (limit + 1, limit)
    [crew_end] = [e for e in events(run_dir, "crew_end") if e["phase"] == "design"]
    assert crew_end["outcome"] == "DelegationStuck"
    return report


LAST = "this was the last; it did not run"  # the refusal of the limit-th delegation


def test_identical_delegation_loop_ends_stuck_not_failed(tmp_path: Path) -> None:
    book = _looping([DESIGN["task"]] * 12, answers=1)
    code, run_dir = run(tmp_path, book)
    _assert_stuck(run_dir, code, 6)
    refused = [(r["reason"], r["attempt"]) for r in events(run_dir, "delegation_refused")]
    assert refused == [("repeated", 3), ("repeated", 4), ("repeated", 5), ("limit_reached", 6)]
    # 7 manager calls (the 7th delegation is the stop) and the architect's one answer.
    assert calls(run_dir) == 8


def test_delegation_loop_with_changing_words_ends_stuck(tmp_path: Path) -> None:
    tasks = [f"{DESIGN['task']} (attempt {n})" for n in range(1, 13)]
    book = _looping(tasks, answers=12)
    book["roles"]["manager"][6]["expect"] = LAST  # the 6th was refused, and it was told why
    code, run_dir = run(tmp_path, book)
    _assert_stuck(run_dir, code, 6)
    refused = events(run_dir, "delegation_refused")
    assert [(r["reason"], r["attempt"]) for r in refused] == [("limit_reached", 6)]
    # 5 delegations answered at once (10 calls), the 6th refused unrun, the 7th the stop:
    # at most twice max_delegations_per_phase.
    assert calls(run_dir) == 12
    assert len(events(run_dir, "delegation")) == 5


def test_max_delegations_per_phase_comes_from_factory_yaml(tmp_path: Path) -> None:
    tasks = [f"{DESIGN['task']} (attempt {n})" for n in range(1, 13)]
    code, run_dir = run(tmp_path, _looping(tasks, answers=12), max_delegations_per_phase=3)
    _assert_stuck(run_dir, code, 3)
    refused = events(run_dir, "delegation_refused")
    assert [(r["reason"], r["attempt"]) for r in refused] == [("limit_reached", 3)]
    assert calls(run_dir) == 6  # 2 delegations answered, the 3rd refused, the 4th the stop


def test_the_last_delegation_is_refused_and_the_manager_finishes(tmp_path: Path) -> None:
    """A manager that wants one delegation more than the phase allows is told to answer;
    when it does, the phase ends as usual (no stuck, no escalation)."""
    book = example_playbook()
    manager = book["roles"]["manager"]
    manager.insert(1, {"delegate": {**DESIGN, "task": "Also add a FAQ to DESIGN.md."}})
    manager[2]["expect"] = LAST  # the design phase's final answer, after the refusal
    code, run_dir = run(tmp_path, book, max_delegations_per_phase=2)
    assert code == 0 and report_of(run_dir)["status"] == "delivered"
    refused = events(run_dir, "delegation_refused")
    assert [(r["reason"], r["attempt"], r["phase"]) for r in refused] == [
        ("limit_reached", 2, "design")
    ]
    assert not events(run_dir, "delegation_stuck")
    assert calls(run_dir) == HAPPY_CALLS + 1  # the refused delegation's manager call
