"""OpenTelemetry: a run exported as spans to a loopback OTLP receiver; CrewAI's telemetry off
by its own switches while a user's OpenTelemetry SDK keeps working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver, Received
from runhelp import NEEDS_BWRAP, events, only_run, report_of, run_spec

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.engine.session import OFFLINE_ENV
from darkfactory.errors import InputError
from darkfactory.reporting import otel

HERE = Path(__file__).resolve().parent
SPEC_TITLE = "Word count CLI"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "factory-under-test")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        yield rx


def children(spans: list[Received], parent: Received, prefix: str = "") -> list[Received]:
    found = [s for s in spans if s.parent_id == parent.span_id and s.name.startswith(prefix)]
    return sorted(found, key=lambda s: s.start_ns)


def test_export_is_off_unless_an_endpoint_is_set() -> None:
    assert not otel.wanted({})
    assert otel.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert otel.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert not otel.wanted({**on, "OTEL_SDK_DISABLED": "true"})  # the user's own switch wins
    assert not otel.wanted({**on, "OTEL_TRACES_EXPORTER": "none"})
    assert otel.from_environment("r", {}) is None
    with pytest.raises(InputError, match="http/json"):
        otel.from_environment("r", {**on, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    # A run never turns the user's OpenTelemetry off: CrewAI's own switches only.
    assert "OTEL_SDK_DISABLED" not in OFFLINE_ENV
    assert OFFLINE_ENV["CREWAI_DISABLE_TELEMETRY"] == "true"


def test_a_late_model_call_lands_in_its_own_phase_crew() -> None:
    """CrewAI's handlers run on a thread pool: a record may come after its crew ended."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    sink = otel.SpanSink("run-1", SimpleSpanProcessor(memory))
    for record in (
        {"kind": "run_start", "phase": None, "spec": {"title": "t"}, "prices": {}},
        {"kind": "phase_start", "phase": "design"},
        {"kind": "crew_start", "phase": "design", "task": "design", "crew": "c"},
        {"kind": "crew_end", "phase": "design", "task": "design", "outcome": "ok"},
        {"kind": "phase_end", "phase": "design", "commit": "abc"},
        {"kind": "phase_start", "phase": "implement"},
        {"kind": "llm_call", "phase": "design", "role": "A", "model": "openai/m", "outcome": "ok"},
        {"kind": "run_end", "phase": "implement", "status": "failed", "reason": "x"},
    ):
        sink.observe(record)
    spans = {s.name: s for s in memory.get_finished_spans()}
    chat = spans["chat openai/m"]
    assert chat.parent is not None and chat.parent.span_id == spans["crew design"].context.span_id
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "m"
    assert spans["run"].status.status_code.name == "ERROR"
    sink.observe({"kind": "phase_start", "phase": "late"})  # after the end: ignored
    assert "phase late" not in {s.name for s in memory.get_finished_spans()}


@NEEDS_BWRAP
def test_a_run_is_exported_as_a_span_tree(tmp_path: Path, receiver: OtlpReceiver) -> None:
    out = tmp_path / "runs"
    assert run_spec(out) == 0
    run = only_run(out)
    report = report_of(run)
    spans = receiver.spans
    trace_id, root_id = otel.run_ids(run.name)

    # One trace, one root: the run, with the user's resource settings.
    assert {s.trace_id for s in spans} == {f"{trace_id:032x}"}
    (root,) = [s for s in spans if s.name == "run"]
    assert root.parent_id == "" and root.span_id == f"{root_id:016x}"
    assert root.resource["service.name"] == "factory-under-test"
    assert root.resource["deployment.environment"] == "test"
    assert root.attributes["darkfactory.run.id"] == run.name
    assert root.attributes["darkfactory.run.status"] == "delivered"
    assert root.attributes["darkfactory.spec.title"] == SPEC_TITLE
    assert root.attributes["darkfactory.llm.calls"] == report["llm"]["calls"] == 25
    assert root.attributes["gen_ai.usage.input_tokens"] == report["llm"]["prompt_tokens"]
    assert root.attributes["gen_ai.usage.output_tokens"] == report["llm"]["completion_tokens"]
    assert root.events == ("checkpoint", "checkpoint")  # spec_approval, output_review

    # A span per phase, in the order of the report's timeline.
    phases = children(spans, root, "phase ")
    assert [s.name.removeprefix("phase ") for s in phases] == [
        t["phase"] for t in report["timeline"]
    ]
    by_phase = {s.attributes["darkfactory.phase"]: s for s in phases}
    assert by_phase["verify"].attributes["darkfactory.passed"] is True
    assert by_phase["docs_check"].attributes["darkfactory.docs.examples_passed"] == 3

    # A crew kickoff per crew phase, inside its phase.
    crews = {
        p: children(spans, by_phase[p], "crew ") for p in ("design", "implement", "qa", "document")
    }
    assert {p: [c.name for c in cs] for p, cs in crews.items()} == {
        "design": ["crew design"],
        "implement": ["crew implement"],
        "qa": ["crew verify"],
        "document": ["crew document"],
    }
    crew_ids = {cs[0].span_id for cs in crews.values()}
    assert crews["design"][0].attributes["darkfactory.crew.manager"] == "Engineering Manager"

    # Model calls: every one, under its crew, with tokens by the GenAI conventions' names.
    chats = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(chats) == len(events(run, "llm_call")) == 25
    assert {c.parent_id for c in chats} <= crew_ids
    assert (
        sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats)
        == (report["llm"]["prompt_tokens"])
    )
    assert {c.attributes["gen_ai.request.model"] for c in chats} == {f"scripted:{EXAMPLE_PLAYBOOK}"}
    by_role = Counter(c.attributes["gen_ai.agent.name"] for c in chats)
    assert by_role == {r: v["calls"] for r, v in report["llm"]["by_role"].items()}
    assert all(c.attributes["darkfactory.cost_usd"] == 0.0 for c in chats)

    # Tool calls, as CrewAI ran them.
    tools = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "execute_tool"]
    assert Counter(t.attributes["gen_ai.tool.name"] for t in tools) == Counter(
        r["tool"] for r in events(run, "tool_call")
    )
    assert {t.parent_id for t in tools} <= crew_ids
    delegations = [t for t in tools if t.attributes["gen_ai.tool.name"].startswith("delegate")]
    assert {t.attributes["darkfactory.coworker"] for t in delegations} == {
        "Software Architect",
        "Software Developer",
        "QA Engineer",
        "Technical Writer",
    }

    # Test runs: the agents' (in their crews) and the pipeline's verify (in its phase).
    tests = [s for s in spans if s.name == "test_run"]
    counts = {
        (t.attributes["darkfactory.test.by"], t.attributes["darkfactory.test.suite"]): (
            t.attributes["darkfactory.tests.passed"],
            t.attributes["darkfactory.tests.total"],
        )
        for t in tests
    }
    assert counts == {
        ("agent", "acceptance"): (8, 8),
        ("agent", "tests"): (4, 4),
        ("pipeline", "acceptance"): (8, 8),
        ("pipeline", "unit"): (4, 4),
    }
    assert {t.parent_id for t in tests if t.attributes["darkfactory.test.by"] == "pipeline"} == {
        by_phase["verify"].span_id
    }
    assert all(s.start_ns <= s.end_ns for s in spans)

    # Names, ids and counts only: no prompt, no file content, no tool argument.
    sent = b"".join(receiver.bodies)
    for text in (
        "wc-like counts",  # the module the developer wrote
        "DESIGN.md",  # a tool argument and a task text
        "Thought:",  # the agents' prompts and answers
        "Final Answer",
    ):
        assert text.encode() not in sent, text


@NEEDS_BWRAP
def test_a_resumed_run_continues_its_trace(tmp_path: Path, receiver: OtlpReceiver) -> None:
    out = tmp_path / "runs"
    assert run_spec(out, EXAMPLE_PLAYBOOK, "--max-llm-calls", "9") == 4
    run = only_run(out)
    (first,) = [s for s in receiver.spans if s.name == "run"]
    assert first.attributes["darkfactory.run.status"] == "budget_exhausted"
    assert first.attributes["darkfactory.budget.exhausted"] == "max_llm_calls"
    stopped = [s for s in receiver.spans if s.name.startswith("crew ")][-1]
    assert stopped.attributes["darkfactory.outcome"] == "BudgetExhausted"

    assert main(["resume", run.name, "--out", str(out), "--quiet", "--max-llm-calls", "100"]) == 0
    runs = [s for s in receiver.spans if s.name == "run"]
    assert len(runs) == 2
    resumed = next(s for s in runs if s is not first)
    # The same trace; the new attempt hangs under the first one.
    assert resumed.trace_id == first.trace_id and resumed.parent_id == first.span_id
    assert resumed.attributes["darkfactory.run.resumed"] is True
    assert resumed.attributes["darkfactory.run.status"] == "delivered"
    later = [s.name for s in children(receiver.spans, resumed, "phase ")]
    assert later[-1] == "phase deliver" and "phase intake" not in later


@pytest.mark.parametrize("crewai_telemetry", ["left to Dark Factory", "turned on by the user"])
@NEEDS_BWRAP
def test_crewai_telemetry_stays_off_while_the_users_opentelemetry_works(
    tmp_path: Path, crewai_telemetry: str
) -> None:
    """A user's program with its own SDK runs a run: its spans are recorded, and CrewAI
    sends nothing (the second case shows what a CrewAI telemetry attempt looks like here,
    and that a user's explicit choice is theirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREWAI_", "OTEL_"))}
    env["CREWAI_TESTING"] = "true"
    if crewai_telemetry == "turned on by the user":
        env.update(CREWAI_DISABLE_TELEMETRY="false", CREWAI_DISABLE_TRACKING="false")
    result = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "data" / "otel_user_app.py"), str(result), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(result.read_text(encoding="utf-8"))
    assert found["code"] == 0
    assert found["spans"] == ["the user's work", "after the run"]  # the user's SDK still on
    assert found["env"]["OTEL_SDK_DISABLED"] is None
    assert found["connects"] == []
    if crewai_telemetry == "left to Dark Factory":
        assert found["env"]["CREWAI_DISABLE_TELEMETRY"] == "true"
        assert found["crewai_telemetry_ready"] is False
        assert found["lookups"] == []
    else:
        assert found["crewai_telemetry_ready"] is True
        assert "telemetry.crewai.com" in found["lookups"]
