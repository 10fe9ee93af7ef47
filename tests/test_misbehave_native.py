"""Protocol errors of native tool calls (function calling), through CrewAI's real OpenAI
provider and a loopback server that answers with OpenAI ``tool_calls``.

Most providers call tools natively, so an unknown tool or arguments that do not fit never
come as text the reply judge could read: CrewAI runs the call. The agent is told its tools
or the expected arguments all the same, and three such errors in a row stop the phase with
class ``model_protocol``; a good call between starts the count again. Each test asserts the
end status, the trace events and the number of model calls (the loopback server plays the
wordcount playbook with the steps added; it is a test tool, not AI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from loopback import (  # noqa: F401  (no_outside_network is a fixture)
    no_outside_network,
    only_run,
    report_of,
    run,
    server_for,
)
from runhelp import NEEDS_BWRAP

from darkfactory.cli import EXAMPLE_PLAYBOOK
from darkfactory.reporting.trace import read_trace

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_outside_network"), NEEDS_BWRAP]

PLAYBOOK_CALLS = 25
UNKNOWN = {"tool": "run_shell", "args": {"cmd": "ls"}}
READ = {"tool": "read_file", "args": {"path": "DESIGN.md"}}
NO_CONTENT = {"tool": "write_file", "args": {"path": "wordcount.py"}}


def run_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_steps: list[dict[str, Any]]
) -> tuple[int, dict[str, Any], list[dict[str, Any]], str]:
    """The wordcount run with ``first_steps`` before the developer's own: code, report,
    trace and everything sent to the model (the recorded cassette)."""
    book = yaml.safe_load(EXAMPLE_PLAYBOOK.read_text())
    book["roles"]["developer"][0:0] = first_steps
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    out, cassette = tmp_path / "runs", tmp_path / "cassette.jsonl"
    with server_for(playbook=path) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code = run(out, "--record", str(cassette))
    assert server.errors == []
    trace = read_trace(only_run(out) / "trace.jsonl")
    return code, report_of(out), trace, cassette.read_text()


def protocol(trace: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["error"], e["tool"], e["streak"]) for e in trace if e["kind"] == "protocol_error"]


def test_an_unknown_native_tool_is_answered_with_the_tools_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report, trace, sent = run_with(tmp_path, monkeypatch, [UNKNOWN])
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["llm"]["calls"] == PLAYBOOK_CALLS + 1
    assert protocol(trace) == [("unknown_tool", "run_shell", 1)]
    # Not CrewAI's bare "Tool not found": the tools the developer has, by name.
    note = "You called the tool 'run_shell', which you do not have. Your tools are exactly:"
    assert note in sent and "write_file" in sent.split(note, 1)[1][:400]


def test_native_arguments_that_do_not_fit_get_the_expected_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report, trace, sent = run_with(tmp_path, monkeypatch, [NO_CONTENT])
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["llm"]["calls"] == PLAYBOOK_CALLS + 1
    [error] = [e for e in trace if e["kind"] == "protocol_error"]
    assert (error["error"], error["tool"]) == ("bad_arguments", "write_file")
    assert "content" in error["detail"]
    assert "Your arguments do not fit the tool 'write_file'" in sent


def test_three_native_protocol_errors_in_a_row_fail_the_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report, trace, _ = run_with(tmp_path, monkeypatch, [UNKNOWN, NO_CONTENT, UNKNOWN])
    assert code == 1 and report["status"] == "failed"
    assert (
        "model_protocol: the Software Developer broke the tool protocol 3 times"
        in (report["reason"])
    )
    assert protocol(trace) == [
        ("unknown_tool", "run_shell", 1),
        ("bad_arguments", "write_file", 2),
        ("unknown_tool", "run_shell", 3),
    ]
    [failure] = [e for e in trace if e["kind"] == "protocol_failure"]
    assert failure["failure_class"] == "model_protocol"
    # The design phase (the manager's 2 calls, the architect's 3), the implement phase's
    # first manager call and the developer's three bad calls; its fourth never went out.
    assert report["llm"]["calls"] == 9


def test_a_good_native_call_between_errors_starts_the_count_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report, trace, _ = run_with(
        tmp_path, monkeypatch, [UNKNOWN, UNKNOWN, READ, UNKNOWN, UNKNOWN]
    )
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["llm"]["calls"] == PLAYBOOK_CALLS + 5
    assert [s for _, _, s in protocol(trace)] == [1, 2, 1, 2]
    assert not [e for e in trace if e["kind"] == "protocol_failure"]


def test_a_native_call_whose_arguments_are_no_json_counts_too() -> None:
    """CrewAI answers such a call itself and no tool hook sees it: the failure event CrewAI's
    own native path emits is what counts (the loopback server cannot send broken JSON)."""
    from crewai.events import crewai_event_bus
    from crewai.utilities.agent_utils import execute_single_native_tool_call

    from darkfactory.engine.native_calls import NativeCalls

    calls = NativeCalls(lambda kind, tool, detail, tools: "")
    broken = {"name": "write_file", "arguments": '{"path": "wordcount.py", content'}
    with calls.enforced():
        answer = execute_single_native_tool_call(
            {"id": "call_1", "type": "function", "function": broken},
            available_functions={},
            original_tools=[],
            structured_tools=[],
            tools_handler=None,
            agent=None,  # no agent: the event names no role ("?")
            task=None,
            crew=None,
            event_source=object(),
        )
        crewai_event_bus.flush(timeout=10.0)
    assert "Failed to parse tool arguments as JSON" in answer.result
    [(kind, tool, detail)] = calls.take("?")
    assert (kind, tool) == ("invalid_json", "write_file") and "JSON" in detail
    assert calls.take("?") == []
