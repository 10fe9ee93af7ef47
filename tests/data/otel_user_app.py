"""A user's program with its own OpenTelemetry SDK, running Dark Factory inside one of its spans.

Run by tests/test_otel.py in a fresh interpreter: ``python otel_user_app.py RESULT.json RUNS_DIR``.
Every name lookup and connection beyond loopback is refused and recorded (CrewAI's telemetry
goes to telemetry.crewai.com); RESULT.json is written at exit, after CrewAI's own exit-time
flush, with the lookups, the user's finished spans and whether CrewAI's telemetry was set up.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: netguard
from netguard import is_loopback, refuse_outside_network

result_file, runs_dir = sys.argv[1], sys.argv[2]
lookups: list[str] = []
real_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not is_loopback(host):
        lookups.append(str(host))
        raise socket.gaierror(f"test: no name lookup beyond loopback ({host})")
    return real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
attempts, _ = refuse_outside_network()
result: dict[str, Any] = {"lookups": lookups, "connects": attempts}
# Registered first, so it runs last: after CrewAI's telemetry flushed at exit (if it was on).
atexit.register(lambda: Path(result_file).write_text(json.dumps(result), encoding="utf-8"))

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("user-app")

from darkfactory.cli import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC, main  # noqa: E402

with tracer.start_as_current_span("the user's work") as span:
    code = main(
        [
            "run",
            str(EXAMPLE_SPEC),
            "--model",
            f"scripted:{EXAMPLE_PLAYBOOK}",
            "--sandbox",
            "bwrap",
            "--out",
            runs_dir,
            "--quiet",
        ]
    )
    span.set_attribute("exit_code", code)
with tracer.start_as_current_span("after the run"):
    pass

from crewai.telemetry import Telemetry  # noqa: E402

result.update(
    code=code,
    spans=[s.name for s in memory.get_finished_spans()],
    crewai_telemetry_ready=Telemetry().ready,
    env={
        k: os.environ.get(k)
        for k in ("OTEL_SDK_DISABLED", "CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING")
    },
)
