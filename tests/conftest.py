"""Test-wide settings: offline, no telemetry, no real model can be reached by accident."""

from __future__ import annotations

import os

# Set before anything imports crewai.
os.environ.update(
    {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_DISABLE_TRACKING": "true",
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_DISABLE_VERSION_CHECK": "true",
        "CREWAI_TESTING": "true",
        "CREWAI_TRACING_ENABLED": "false",
    }
)
# No provider key or endpoint from the developer's shell may leak into a test run.
for _name in list(os.environ):
    if _name.endswith("_API_KEY") or _name in {
        "MODEL",
        "MODEL_NAME",
        "OPENAI_MODEL_NAME",
        "BASE_URL",
        "OPENAI_API_BASE",
        "OPENAI_BASE_URL",
        "API_BASE",
    }:
        del os.environ[_name]


# In CI (.ci/run sets DARKFACTORY_NO_SKIPS=1) everything a test needs is installed and
# started, so a skipped test means a missing install step: fail the session.
_skipped: list[str] = []


def pytest_runtest_logreport(report):  # type: ignore[no-untyped-def]
    if report.skipped and os.environ.get("DARKFACTORY_NO_SKIPS") == "1":
        _skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    if _skipped:
        print("\nDARKFACTORY_NO_SKIPS=1 and these tests were skipped:\n  " + "\n  ".join(_skipped))
        session.exitstatus = 1
