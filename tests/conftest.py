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
    if _name.endswith("_API_KEY") or _name in {"MODEL", "MODEL_NAME", "OPENAI_MODEL_NAME", "BASE_URL", "OPENAI_API_BASE", "OPENAI_BASE_URL", "API_BASE"}:
        del os.environ[_name]
