"""OpenTelemetry export of a run: its trace records as spans, sent over OTLP.

On only when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set;
spans carry names, ids and counts, never prompts, file contents or secrets.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from darkfactory import __version__
from darkfactory.errors import InputError
from darkfactory.models.prices import cost
from darkfactory.reporting.trace import ASK_TOOL, DELEGATE_TOOL, _secrets, redact

if TYPE_CHECKING:  # the SDK is imported only when a run exports
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span, Tracer

#: The variables that turn the export on (the OTLP exporter's own; either will do).
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: The protocol's variables, the first set wins (``http/protobuf`` when neither is).
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
#: ``service.name`` when neither ``OTEL_SERVICE_NAME`` nor ``OTEL_RESOURCE_ATTRIBUTES`` names one.
DEFAULT_SERVICE = "darkfactory"
SCOPE = "darkfactory"
#: Run statuses that make the ``run`` span an error (a person must look).
ERROR_STATUSES = {"failed", "escalated"}
#: Model-string prefixes (LiteLLM/CrewAI style) whose semantic-convention name differs.
PROVIDERS = {
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the user asked for an export (an endpoint set, the SDK and traces not off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARS)


def from_environment(run_id: str, environ: Mapping[str, str] = os.environ) -> SpanSink | None:
    """A ``SpanSink`` exporting over OTLP as the standard variables say, or None (not asked)."""
    if not wanted(environ):
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return SpanSink(run_id, BatchSpanProcessor(_exporter(environ)))


def _exporter(environ: Mapping[str, str]) -> Any:
    var = next((v for v in PROTOCOL_VARS if environ.get(v, "").strip()), PROTOCOL_VARS[-1])
    protocol = environ.get(var, "").strip() or "http/protobuf"
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise InputError(
                f"{var}=grpc needs opentelemetry-exporter-otlp-proto-grpc",
                hint="pip install opentelemetry-exporter-otlp-proto-grpc, or use http/protobuf "
                "(port 4318 on most collectors)",
            ) from None
        return GrpcExporter()
    raise InputError(
        f"OTLP protocol {protocol!r} is not supported for the run's spans",
        key=var,
        hint="use http/protobuf (the default) or grpc",
    )


def _resource() -> Any:
    """The user's resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) first."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    given = OTELResourceDetector().detect().attributes
    ours: dict[str, str] = {}
    if "service.name" not in given:
        ours["service.name"] = DEFAULT_SERVICE
    if "service.version" not in given:
        ours["service.version"] = __version__
    return Resource.create(ours)


def run_ids(run_id: str) -> tuple[int, int]:
    """The run's trace id and its first ``run`` span's id: every attempt joins one trace."""
    digest = hashlib.sha256(f"darkfactory run {run_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def _ns(seconds: Any) -> int:
    try:
        return max(0, int(float(seconds) * 1e9))
    except (TypeError, ValueError):
        return 0


@dataclass
class _PytestRun:
    """A pipeline pytest run (``sandbox_exec``) waiting for its ``test_outcome`` records."""

    suite: str
    duration_ns: int
    killed: bool
    counts: dict[str, int] = field(default_factory=dict)


class SpanSink:
    """A ``Trace`` observer that turns the run's records into spans.

    ``run`` > ``phase NAME`` > ``crew TASK`` > ``chat MODEL`` / ``execute_tool TOOL`` /
    ``test_run``. Records come from several threads (CrewAI's event handlers), so a model or
    tool span is placed by the record's own phase and timed by its measured duration.
    """

    def __init__(self, run_id: str, processor: SpanProcessor) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self.run_id = run_id
        self.trace_id, self.root_span_id = run_ids(run_id)
        sink = self

        class _Ids(RandomIdGenerator):  # the run's trace id; the first run span's own id
            def generate_trace_id(self) -> int:
                return sink.trace_id

            def generate_span_id(self) -> int:
                if sink._root_id_pending:
                    sink._root_id_pending = False
                    return sink.root_span_id
                return super().generate_span_id()

        self._root_id_pending = False
        self.provider = TracerProvider(resource=_resource(), id_generator=_Ids())
        self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer(SCOPE)
        self._lock = threading.Lock()
        self._secrets = _secrets()
        self._closed = False
        self._root: Span | None = None
        self._phase: Span | None = None
        self._phases: dict[str | None, Span] = {}
        self._crew: Span | None = None
        self._crews: dict[str | None, Span] = {}
        self._pytest: list[_PytestRun] = []
        self._agent_pytest_ns = 0
        self._prices: dict[str, Any] = {}
        self._totals = {"calls": 0, "input": 0, "output": 0}
        self._cost: float | None = 0.0

    # -- the observer -------------------------------------------------------------------
    def observe(self, record: dict[str, Any]) -> None:
        """Called by ``Trace.write`` with every record (``Trace.observers``)."""
        with self._lock:
            if self._closed:
                return
            kind = record.get("kind")
            now = time.time_ns()
            if self._root is None:
                self._start_root(record, now)
            if self._pytest and kind not in ("test_outcome", "sandbox_exec"):
                self._end_pytest_runs(record, now)
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(record, now)

    def close(self) -> None:
        """End what is open and send every span (also called at ``run_end``)."""
        with self._lock:
            self._close(time.time_ns())

    # -- spans --------------------------------------------------------------------------
    def _start(self, name: str, parent: Span | None, start: int, attrs: dict[str, Any]) -> Span:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        clean = {k: self._clean(v) for k, v in attrs.items() if v is not None}
        return self.tracer.start_span(name, context=context, start_time=start, attributes=clean)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self._secrets)
        if isinstance(value, list | tuple):
            return [redact(str(v), self._secrets) for v in value]
        return value

    def _set(self, span: Span | None, attrs: dict[str, Any]) -> None:
        if span is not None and span.is_recording():  # not yet ended
            span.set_attributes({k: self._clean(v) for k, v in attrs.items() if v is not None})

    def _start_root(self, record: dict[str, Any], now: int) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        resumed = record.get("kind") == "run_resumed"
        parent = None
        if resumed:  # a child of the first attempt's run span, in the same trace
            parent = NonRecordingSpan(
                SpanContext(
                    self.trace_id,
                    self.root_span_id,
                    is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            )
        self._root_id_pending = not resumed
        context = trace.set_span_in_context(parent) if parent is not None else None
        self._root = self.tracer.start_span(
            "run",
            context=context,
            start_time=now,
            attributes={
                "darkfactory.run.id": self.run_id,
                "darkfactory.run.resumed": resumed,
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": "darkfactory",
            },
        )
        self._root_id_pending = False

    def _parent(self, record: dict[str, Any]) -> Span | None:
        """Where a model, tool or test span goes: its phase's crew, its phase, the run."""
        phase = record.get("phase")
        return self._crews.get(phase) or self._phases.get(phase) or self._root

    def _end_phase(self, now: int) -> None:
        if self._crew is not None:
            self._crew.end(end_time=now)
            self._crew = None
        if self._phase is not None:
            self._phase.end(end_time=now)
            self._phase = None

    def _close(self, now: int) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pytest:
            self._end_pytest_runs({}, now)
        self._end_phase(now)
        if self._root is not None:
            self._set(
                self._root,
                {
                    "darkfactory.llm.calls": self._totals["calls"],
                    "gen_ai.usage.input_tokens": self._totals["input"],
                    "gen_ai.usage.output_tokens": self._totals["output"],
                    "darkfactory.cost_usd": self._cost,
                },
            )
            self._root.end(end_time=now)
        self.provider.shutdown()  # sends what is left; waits at most the exporter's timeout

    # -- records ------------------------------------------------------------------------
    def _on_run_start(self, record: dict[str, Any], now: int) -> None:
        spec = record.get("spec") or {}
        self._prices = record.get("prices") or {}
        self._set(
            self._root,
            {
                "darkfactory.spec.format": spec.get("format"),
                "darkfactory.spec.title": spec.get("title"),
                "darkfactory.sandbox": record.get("sandbox"),
            },
        )

    def _on_run_resumed(self, record: dict[str, Any], now: int) -> None:
        self._prices = record.get("prices") or {}
        self._set(self._root, {"darkfactory.run.steps_done": len(record.get("after") or [])})

    def _on_run_end(self, record: dict[str, Any], now: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        status = str(record.get("status"))
        self._set(self._root, {"darkfactory.run.status": status})
        if self._root is not None and status in ERROR_STATUSES:
            self._root.set_status(Status(StatusCode.ERROR, status))
        self._close(now)

    def _on_phase_start(self, record: dict[str, Any], now: int) -> None:
        self._end_phase(now)
        name = record.get("phase")
        self._phase = self._start(f"phase {name}", self._root, now, {"darkfactory.phase": name})
        self._phases[name] = self._phase
        self._crews.pop(name, None)

    def _on_phase_end(self, record: dict[str, Any], now: int) -> None:
        self._set(
            self._phase,
            {
                "darkfactory.commit": record.get("commit"),
                "darkfactory.passed": record.get("passed"),
            },
        )
        self._end_phase(now)

    def _on_crew_start(self, record: dict[str, Any], now: int) -> None:
        phase = record.get("phase")
        parent = self._phases.get(phase) or self._root
        self._crew = self._start(
            f"crew {record.get('task')}",
            parent,
            now,
            {
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": record.get("crew"),
                "darkfactory.crew.task": record.get("task"),
                "darkfactory.crew.manager": record.get("manager"),
                "darkfactory.crew.agents": list(record.get("agents") or []),
            },
        )
        self._crews[phase] = self._crew

    def _on_crew_end(self, record: dict[str, Any], now: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        if self._crew is None:
            return
        outcome = str(record.get("outcome"))
        self._set(self._crew, {"darkfactory.outcome": outcome})
        if outcome != "ok":
            self._crew.set_status(Status(StatusCode.ERROR, outcome))
        self._crew.end(end_time=now)
        self._crew = None

    def _on_llm_call(self, record: dict[str, Any], now: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        model = str(record.get("model") or "")
        provider, _, name = model.partition("/") if "/" in model.split(":")[0] else ("", "", "")
        prompt = int(record.get("prompt_tokens") or 0)
        completion = int(record.get("completion_tokens") or 0)
        usd = cost(model, prompt, completion, self._prices)
        ok = record.get("outcome") == "ok"
        if ok:
            self._totals["calls"] += 1
            self._totals["input"] += prompt
            self._totals["output"] += completion
            self._cost = None if usd is None or self._cost is None else self._cost + usd
        span = self._start(
            f"chat {model}",
            self._parent(record),
            now - _ns(record.get("latency_s")),
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDERS.get(provider, provider) or None,
                "gen_ai.request.model": name or model,
                "gen_ai.agent.name": record.get("role"),
                "gen_ai.usage.input_tokens": prompt if ok else None,
                "gen_ai.usage.output_tokens": completion if ok else None,
                "darkfactory.cost_usd": usd if ok else None,
            },
        )
        if not ok:
            span.set_attribute("error.type", "llm_call_failed")
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=now)

    def _open(self) -> Span | None:
        """The innermost span still open (for an event): the crew, the phase or the run."""
        return self._crew or self._phase or self._root

    def _on_llm_retry(self, record: dict[str, Any], now: int) -> None:
        target = self._open()
        if target is not None:
            target.add_event(
                "llm_retry",
                {
                    "gen_ai.agent.name": self._clean(str(record.get("role"))),
                    "darkfactory.attempt": int(record.get("attempt") or 0),
                    "darkfactory.reason": self._clean(str(record.get("reason"))),
                },
                timestamp=now,
            )

    def _on_tool_call(self, record: dict[str, Any], now: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        tool = record.get("tool")
        args = record.get("args") if tool in (DELEGATE_TOOL, ASK_TOOL) else None
        span = self._start(
            f"execute_tool {tool}",
            self._parent(record),
            now - _ns(record.get("duration_s")),
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.agent.name": record.get("role"),
                "darkfactory.outcome": record.get("outcome"),
                "darkfactory.tool.output_chars": record.get("output_chars"),
                "darkfactory.coworker": args.get("coworker") if isinstance(args, dict) else None,
            },
        )
        if record.get("outcome") != "ok":
            span.set_status(Status(StatusCode.ERROR, str(record.get("outcome"))))
        span.end(end_time=now)

    def _on_sandbox_exec(self, record: dict[str, Any], now: int) -> None:
        argv = record.get("argv") or []
        if not argv or argv[0] != "pytest":
            return
        if record.get("tool"):  # an agent's run_tests: its test_run record follows
            self._agent_pytest_ns = _ns(record.get("duration_s"))
            return
        suite = str(argv[1]) if len(argv) > 1 else "tests"
        self._pytest.append(
            _PytestRun(suite, _ns(record.get("duration_s")), record.get("killed") is not None)
        )

    def _on_test_outcome(self, record: dict[str, Any], now: int) -> None:
        if self._pytest:
            counts = self._pytest[-1].counts
            outcome = str(record.get("outcome"))
            counts[outcome] = counts.get(outcome, 0) + 1

    def _on_test_run(self, record: dict[str, Any], now: int) -> None:
        span = self._start(
            "test_run",
            self._parent(record),
            now - self._agent_pytest_ns,
            {
                "darkfactory.test.by": "agent",
                "darkfactory.test.suite": ", ".join(str(p) for p in record.get("paths") or []),
                "darkfactory.tests.total": record.get("total"),
                "darkfactory.tests.passed": record.get("passed"),
                "darkfactory.tests.failed": record.get("failed"),
                "darkfactory.tests.errors": record.get("errors"),
                "darkfactory.tests.skipped": record.get("skipped"),
                "darkfactory.test.killed": record.get("killed") is not None
                and record.get("killed") is not False,
            },
        )
        self._agent_pytest_ns = 0
        span.end(end_time=now)

    def _end_pytest_runs(self, record: dict[str, Any], now: int) -> None:
        """The pipeline's pytest runs, back to back and ending now (they ran before their
        records were written); counted from their ``test_outcome`` records."""
        runs, self._pytest = self._pytest, []
        parent = self._parent(record) if record else self._phase or self._root
        end = now
        spans = []
        for run in reversed(runs):
            start = end - run.duration_ns
            spans.append((run, start, end))
            end = start
        for run, start, end in reversed(spans):
            c = run.counts
            span = self._start(
                "test_run",
                parent,
                start,
                {
                    "darkfactory.test.by": "pipeline",
                    "darkfactory.test.suite": run.suite,
                    "darkfactory.tests.total": sum(c.values()),
                    "darkfactory.tests.passed": c.get("passed", 0),
                    "darkfactory.tests.failed": c.get("failed", 0),
                    "darkfactory.tests.errors": c.get("error", 0),
                    "darkfactory.tests.skipped": c.get("skipped", 0),
                    "darkfactory.test.killed": run.killed,
                },
            )
            span.end(end_time=end)

    def _on_verify(self, record: dict[str, Any], now: int) -> None:
        self._set(
            self._phases.get(record.get("phase")),
            {
                "darkfactory.verify.round": record.get("round"),
                "darkfactory.passed": record.get("passed"),
            },
        )

    def _on_docs_check(self, record: dict[str, Any], now: int) -> None:
        self._set(
            self._phases.get(record.get("phase")),
            {
                "darkfactory.docs.pages": record.get("pages"),
                "darkfactory.docs.warnings": record.get("warnings"),
                "darkfactory.docs.errors": record.get("errors"),
                "darkfactory.docs.examples_run": record.get("examples_run"),
                "darkfactory.docs.examples_passed": record.get("examples_passed"),
            },
        )

    def _on_checkpoint(self, record: dict[str, Any], now: int) -> None:
        target = self._open()
        if target is not None:
            target.add_event(
                "checkpoint",
                {k: self._clean(str(record.get(k))) for k in ("checkpoint", "mode", "decision")},
                timestamp=now,
            )

    def _on_budget(self, record: dict[str, Any], now: int) -> None:
        self._set(self._root, {"darkfactory.budget.exhausted": record.get("exhausted")})
