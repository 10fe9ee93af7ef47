"""The factory through CrewAI's real OpenAI provider and a real HTTP connection, offline.

A loopback server (``darkfactory.models.testserver``) plays examples/playbooks/wordcount.yaml
as an OpenAI-compatible API, answering with native tool calls; the run reaches it with
``--model openai/playbook`` and ``BASE_URL``. Faults are injected per request to show the
retries (traced, budgeted, bounded) and the clear end when the provider stays down. Keys
never appear in what a run writes or prints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from loopback import (  # noqa: F401  (no_outside_network is a fixture)
    FAST_LLM,
    MODEL,
    config_copy,
    no_outside_network,
    only_run,
    report_of,
    run,
    server_for,
)
from runhelp import NEEDS_BWRAP, example_playbook, write_playbook

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.models.playbook import load_playbook
from darkfactory.reporting.trace import check_record, read_trace

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.usefixtures("no_outside_network"),
    NEEDS_BWRAP,
]

ROLES = {"Engineering Manager", "Software Architect", "Software Developer", "QA Engineer"}
PLAYBOOK_CALLS = 25  # the wordcount playbook's steps, all roles


def test_run_through_the_openai_provider_and_a_loopback_server_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "runs"
    with server_for() as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code = run(out)
    report = report_of(out)
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    assert report["scripted_model"] is False
    assert report["acceptance"] == {"total": 8, "passed": 8, "failed": 0}
    assert report["unit_tests"] == {"total": 4, "passed": 4, "failed": 0}
    assert all(r["passed"] is True for r in report["requirements"])
    # The model's name was checked first, once for every role (GET /v1/models).
    assert server.model_lists == 1
    # Every step of the playbook was played, over HTTP, and nothing else was asked.
    assert server.errors == []
    assert set(server.remaining().values()) == {0}
    served = server.served
    assert len(served) == PLAYBOOK_CALLS and all(s.status == 200 for s in served)
    # Native function calling: every request offered the agent's tools, and the tool steps
    # went back as OpenAI tool_calls (the final answers as plain text).
    assert all(s.tools for s in served)
    book = load_playbook(EXAMPLE_PLAYBOOK)
    steps = [step for steps in book.roles.values() for step in steps]
    assert len(steps) == PLAYBOOK_CALLS
    assert sum(s.answer == "tool_calls" for s in served) == sum(
        step.kind != "answer" for step in steps
    )
    assert {"delegate_work_to_coworker", "write_file", "run_tests"} <= {
        t for s in served for t in s.tools
    }
    # The provider's own usage numbers are what the run accounts, call by call.
    assert report["llm"]["calls"] == PLAYBOOK_CALLS
    assert report["llm"]["prompt_tokens"] == sum(s.prompt_tokens for s in served) > 0
    assert report["llm"]["completion_tokens"] == sum(s.completion_tokens for s in served) > 0
    assert report["llm"]["tokens_are_estimates"] is False
    trace = read_trace(only_run(out) / "trace.jsonl")
    assert all(check_record(r) == [] for r in trace)
    calls = [r for r in trace if r["kind"] == "llm_call"]
    assert {r["role"] for r in calls} >= ROLES
    assert {r["model"] for r in calls} == {"playbook"}
    assert not [r for r in trace if r["kind"] == "llm_retry"]
    # Offline means offline: nothing fetched tiktoken's encodings (or anything else).
    assert "tiktoken_ext.openai_public" not in sys.modules


def test_an_explicit_key_is_sent_and_never_written_or_printed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server wants a key; a wrong one gets a 401 that repeats it (as careless servers
    do). The run fails at once, and the key is in no trace, report, log or message."""
    secret = "sk-test-0123456789abcdefSECRET"
    out = tmp_path / "runs"
    with server_for(api_key=secret) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        assert run(out) == 0  # the right key: delivered
        wrong = "sk-test-WRONGkey9876543210zz"
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
        out2 = tmp_path / "runs2"
        started = time.monotonic()
        code = run(out2, config=config_copy(tmp_path, llm=FAST_LLM))
        took = time.monotonic() - started
    assert code == 1
    report = report_of(out2)
    assert report["status"] == "failed"
    assert report["reason"].startswith("model provider refused the request (HTTP 401)")
    assert "[redacted]" in report["reason"]
    assert took < 30  # no retries for a refused key
    run_dir = only_run(out2)
    assert not [r for r in read_trace(run_dir / "trace.jsonl") if r["kind"] == "llm_retry"]
    captured = capsys.readouterr()
    for key in (secret, wrong):
        for written in run_dir.rglob("*"):
            if written.is_file() and ".git" not in written.parts:
                assert key not in written.read_text(errors="replace"), written
        for written in only_run(out).rglob("*"):
            if written.is_file() and ".git" not in written.parts:
                assert key not in written.read_text(errors="replace"), written
        assert key not in captured.out
        assert key not in captured.err
        assert not [r for r in caplog.records if key in r.getMessage()]
    # CrewAI logs the provider's error text: it is there, without the key.
    assert [r for r in caplog.records if "Incorrect API key provided: [redacted]" in r.getMessage()]


# -- faults the factory survives -----------------------------------------------------------
FAULTS = {
    # kind: (inject kwargs, the llm_retry reason)
    "429": ({"retry_after": 0.2}, "HTTP 429"),
    "500": ({}, "HTTP 500"),
    "503": ({"retry_after": 0.1}, "HTTP 503"),
    "timeout": ({"delay_s": 8}, "timed out"),  # past FAST_LLM timeout_s, with a margin for load
    "malformed": ({}, "malformed response"),
    "truncated": ({}, "connection failed"),
    "empty": ({}, "empty answer"),
    "disconnect": ({}, "connection failed"),
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_fault_is_retried_traced_budgeted_and_survived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The developer's first call fails twice (llm.max_retries: 2), then the run goes on."""
    inject, reason = FAULTS[kind]
    out = tmp_path / "runs"
    config = config_copy(tmp_path, llm=FAST_LLM)
    with server_for() as server:
        server.inject(kind, times=2, role="developer", **inject)
        monkeypatch.setenv("BASE_URL", server.base_url)
        code = run(out, config=config)
    report = report_of(out)
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    assert [s.fault for s in server.served if s.fault] == [kind, kind]
    # (On failure: what the server answered, request by request.)
    assert server.errors == [] and set(server.remaining().values()) == {0}, (
        server.remaining(),
        server.served,
    )
    trace = read_trace(only_run(out) / "trace.jsonl")
    retries = [r for r in trace if r["kind"] == "llm_retry"]
    assert [(r["role"], r["attempt"], r["reason"]) for r in retries] == [
        ("Software Developer", 1, reason),
        ("Software Developer", 2, reason),
    ]
    assert all(check_record(r) == [] for r in retries)
    if "retry_after" in inject:  # the provider's Retry-After is honoured
        assert {r["wait_s"] for r in retries} == {inject["retry_after"]}
    else:  # else exponential backoff
        assert [r["wait_s"] for r in retries] == [0.05, 0.1]
    # Each retry is a call against the budget, and the report counts them.
    assert report["budget"]["llm_calls"] == PLAYBOOK_CALLS + 2
    assert report["llm"]["retries"] == 2


def test_a_stream_cut_off_mid_answer_is_retried() -> None:
    """Streaming (``stream: true``, server-sent events): a stream that drops is retried."""
    from crewai import LLM

    from darkfactory.models.guarded import GuardedLLM, RetryEvent, RetryPolicy

    retries: list[RetryEvent] = []
    with server_for() as server:
        server.inject("truncated")
        inner = LLM(
            model=MODEL,
            base_url=server.base_url,
            api_key="unused",
            stream=True,
            timeout=5,
            max_retries=0,
        )
        llm = GuardedLLM(inner, model=MODEL, policy=RetryPolicy(max_retries=1, backoff_s=0))
        llm.observe(retries.append)
        answer = llm.call([{"role": "user", "content": "Are you there?"}])
    assert answer == "pong"
    assert [(s.fault, s.stream) for s in server.served] == [("truncated", True), (None, True)]
    assert [(r.attempt, r.reason) for r in retries] == [(1, "connection failed")]
    assert llm.get_token_usage_summary().completion_tokens > 0  # usage came in the stream


def test_a_client_without_a_timeout_of_its_own_is_timed_out_by_the_watchdog() -> None:
    """CrewAI's Gemini and Bedrock clients take no timeout: the guard's watchdog gives one."""
    from crewai import LLM

    from darkfactory.models.guarded import GuardedLLM, RetryEvent, RetryPolicy

    retries: list[RetryEvent] = []
    with server_for() as server:
        server.inject("timeout", delay_s=4)  # the first answer never comes
        # The client's own timeout is far away (60 s): only the watchdog can end the wait.
        inner = LLM(model=MODEL, base_url=server.base_url, api_key="unused", timeout=60)
        policy = RetryPolicy(max_retries=1, backoff_s=0, watchdog_s=1.0)
        llm = GuardedLLM(inner, model=MODEL, policy=policy)
        llm.observe(retries.append)
        started = time.monotonic()
        answer = llm.call([{"role": "user", "content": "Are you there?"}])
        took = time.monotonic() - started
    assert answer == "pong"
    assert [(r.attempt, r.reason) for r in retries] == [(1, "timed out")]
    assert "no answer within 1 s" in retries[0].detail
    assert took < 4  # the retry did not wait for the stalled call


def test_a_coworker_whose_provider_refuses_fails_the_run_not_the_manager_s_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CrewAI hands a coworker's error to the manager as a tool result; the run still fails.

    The server refuses the QA engineer's second call (HTTP 400: its playbook has one step),
    the manager then says the tests are written; the run must not be delivered.
    """
    book = example_playbook()
    book["roles"]["qa_engineer"] = book["roles"]["qa_engineer"][:1]
    playbook = write_playbook(tmp_path, book)
    out = tmp_path / "runs"
    with server_for(playbook=playbook) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code = run(out, config=config_copy(tmp_path, llm=FAST_LLM))
    report = report_of(out)
    assert code == 1
    assert report["status"] == "failed"
    assert report["reason"].startswith("model provider refused the request (HTTP 400)")
    assert "role QA Engineer" in report["reason"]
    assert not [p for p in report["timeline"] if p["phase"] in ("verify", "document")]


def test_a_provider_that_stays_down_fails_the_run_clearly_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    config = config_copy(tmp_path, llm=FAST_LLM)
    with server_for() as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        server.inject("503", times=None, role="developer")  # from the implement phase on
        started = time.monotonic()
        code = run(out, config=config)
        took = time.monotonic() - started
        assert code == 1
        report = report_of(out)
        assert report["status"] == "failed"
        reason = report["reason"]
        assert reason.startswith("model provider unreachable after 2 retries: HTTP 503"), reason
        assert "role Software Developer, phase implement" in reason
        assert f"darkfactory resume {only_run(out).name}" in reason
        assert took < 60
        # The three attempts of the first call, then nothing: every later call of the
        # model (CrewAI's own agent retries included) failed at once, without a request.
        assert [s.fault for s in server.served if s.role == "developer"] == ["503"] * 3
        trace = read_trace(only_run(out) / "trace.jsonl")
        assert len([r for r in trace if r["kind"] == "llm_retry"]) == 2
        assert trace[-1]["kind"] == "run_end" and trace[-1]["status"] == "failed"
        # The provider is back: the run continues where it stopped and delivers. (A model
        # answers what it is asked; the playbook answers in order, so it is put back to
        # the start of the phase that stopped: the manager had played design's 2 steps.)
        server.clear_faults()
        server.seek({"manager": 2, "developer": 0})
        capsys.readouterr()
        assert main(["resume", only_run(out).name, "--out", str(out), "--quiet"]) == 0
    assert report_of(out)["status"] == "delivered"


def test_retries_count_against_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "runs"
    config = config_copy(tmp_path, llm={**FAST_LLM, "max_retries": 10})
    with server_for() as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        server.inject("429", times=None, retry_after=0)
        code = run(out, "--max-llm-calls", "4", config=config)
    assert code == 4
    report = report_of(out)
    assert report["status"] == "budget_exhausted"
    assert "max_llm_calls" in report["reason"]
    # One call and three retries were allowed; the fourth retry was refused by the budget.
    assert len(server.served) == 4
    trace = read_trace(only_run(out) / "trace.jsonl")
    assert len([r for r in trace if r["kind"] == "llm_retry"]) == 3
