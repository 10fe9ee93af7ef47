"""Test-wide settings: offline, no telemetry, no real model can be reached by accident.

Loopback only (netguard.py): this process may connect to loopback and Unix sockets and
nothing else, from collection to the end; a test that tries fails. A pip that a test
starts reads no pip setting but an index on loopback: nothing listens there, unless the
test uses ``local_index`` (pypi_local.py), the session's own package index.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pypi_local
import pytest
from netguard import NO_INDEX_URL, loopback_only_environment, refuse_outside_network

# Set before anything imports crewai.
os.environ.update(
    {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_DISABLE_TRACKING": "true",
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
# Nor an OpenTelemetry setting: the tests that export spans set their own (test_otel.py).
for _name in [n for n in os.environ if n.startswith("OTEL_")]:
    del os.environ[_name]
loopback_only_environment(os.environ)
#: Connections beyond loopback refused outside any test (e.g. at import): fail the session.
_outside_attempts, _ = refuse_outside_network()


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Fails the test (at teardown) that tried to connect beyond loopback."""
    before = len(_outside_attempts)
    yield
    tried = _outside_attempts[before:]
    del _outside_attempts[before:]
    assert not tried, f"the test tried to reach beyond loopback (refused): {tried}"


@pytest.fixture(scope="session")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pypi_local.LocalIndex]:
    """The session's package index on 127.0.0.1; PIP_INDEX_URL points at it meanwhile."""
    root = pypi_local.build_index(tmp_path_factory.mktemp("pypi-local"))
    with pypi_local.serve(root) as index:
        os.environ["PIP_INDEX_URL"] = index.url
        try:
            yield index
        finally:
            os.environ["PIP_INDEX_URL"] = NO_INDEX_URL


# In CI (.ci/run sets DARKFACTORY_NO_SKIPS=1) everything a test needs is installed and
# started, so a skipped test means a missing install step: fail the session.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and os.environ.get("DARKFACTORY_NO_SKIPS") == "1":
        _skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _outside_attempts:
        print(f"\nOutside any test, connections beyond loopback were refused: {_outside_attempts}")
        session.exitstatus = 1
    if _skipped:
        print("\nDARKFACTORY_NO_SKIPS=1 and these tests were skipped:\n  " + "\n  ".join(_skipped))
        session.exitstatus = 1


def mkdocs_command() -> list[str]:
    """The mkdocs of the interpreter running the tests (the project's venv)."""
    script = Path(sys.executable).with_name("mkdocs")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mkdocs"]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's docs, built once a session with ``mkdocs build --strict``."""
    site_dir = tmp_path_factory.mktemp("site")
    out = subprocess.run(
        [*mkdocs_command(), "build", "--strict", "--site-dir", str(site_dir)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout}\n{out.stderr}"
    return site_dir
