"""Helpers for tests that reach a model over HTTP: the loopback playbook server only.

``no_outside_network`` (a fixture) refuses, and remembers, every connection to an address
other than loopback or a Unix socket made by this process while a test runs, so a test
that would reach a real provider (or download anything, e.g. tiktoken's encodings) fails
instead of hanging on a network that is not there. (conftest.py installs the same guard,
from netguard.py, for the whole session; this one also asserts at the end of the test.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from netguard import LOOPBACK, outside_network_refused  # noqa: F401  (re-exported)

from darkfactory.cli import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC, main
from darkfactory.config import load_config
from darkfactory.models.testserver import PlaybookServer

REPO = Path(__file__).resolve().parent.parent
#: The model string a run uses to reach the server (through CrewAI's OpenAI provider).
MODEL = "openai/playbook"
#: factory.yaml ``llm:`` for fault tests: small timeouts, two retries, short backoff.
FAST_LLM = {"timeout_s": 5, "max_retries": 2, "retry_backoff_s": 0.05, "retry_max_wait_s": 1}


@pytest.fixture
def no_outside_network() -> Iterator[list[str]]:
    with outside_network_refused() as attempts:
        yield attempts


def config_copy(tmp_path: Path, *, llm: dict[str, Any] | None = None) -> Path:
    """A copy of the repo's config/ with ``llm:`` settings of factory.yaml replaced."""
    dst = tmp_path / "config"
    shutil.copytree(REPO / "config", dst)
    if llm is not None:
        factory = yaml.safe_load((dst / "factory.yaml").read_text(encoding="utf-8"))
        factory["llm"] = {**factory.get("llm", {}), **llm}
        (dst / "factory.yaml").write_text(yaml.safe_dump(factory), encoding="utf-8")
    return dst


def server_for(
    config_dir: Path | None = None, playbook: Path = EXAMPLE_PLAYBOOK, **kwargs: Any
) -> PlaybookServer:
    return PlaybookServer.for_config(playbook, load_config(config_dir), **kwargs)


def run(out: Path, *args: str, model: str = MODEL, config: Path | None = None) -> int:
    """``darkfactory run`` of the example spec, in this process, with bwrap."""
    argv = ["run", str(EXAMPLE_SPEC), "--model", model, "--sandbox", "bwrap"]
    argv += ["--out", str(out), "--quiet", *args]
    if config is not None:
        argv += ["--config", str(config)]
    return main(argv)


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def report_of(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((only_run(out) / "report.json").read_text())
    return report
