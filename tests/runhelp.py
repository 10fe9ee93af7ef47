"""What the end-to-end tests share: playbook variants, config copies, running and reading a run.

The scripted model these runs use is a test tool, not AI: it plays a playbook, so what a
test asserts is what the real pipeline, crew, tools and sandbox did with those answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from darkfactory.cli import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC, main
from darkfactory.reporting.trace import read_trace
from darkfactory.sandbox import bwrap_problem

REPO = Path(__file__).resolve().parent.parent

#: Skips a test (module) that runs generated code in bwrap where bwrap cannot run, saying
#: how to get it (in CI, ``DARKFACTORY_NO_SKIPS=1`` turns the skip into a failure).
NEEDS_BWRAP = pytest.mark.skipif(
    bwrap_problem() is not None,
    reason=f"bubblewrap does not work here ({bwrap_problem()}): apt-get install bubblewrap",
)


def example_playbook() -> dict[str, Any]:
    """examples/playbooks/wordcount.yaml, to be varied by a test."""
    book: dict[str, Any] = yaml.safe_load(EXAMPLE_PLAYBOOK.read_text(encoding="utf-8"))
    return book


def good_code(book: dict[str, Any]) -> str:
    """The wordcount.py the example playbook's developer writes (it passes every test)."""
    return str(
        next(s for s in book["roles"]["developer"] if s.get("tool") == "write_file")["args"][
            "content"
        ]
    )


def write_playbook(tmp_path: Path, book: dict[str, Any], name: str = "playbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(book, sort_keys=False), encoding="utf-8")
    return path


def config_with(tmp_path: Path, **factory: Any) -> Path:
    """A copy of the repo's config/ with ``factory`` merged into factory.yaml (one level deep)."""
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    path = cfg / "factory.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in factory.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return cfg


def run_spec(
    out: Path,
    playbook: Path | dict[str, Any] = EXAMPLE_PLAYBOOK,
    *extra: str,
    spec: Path = EXAMPLE_SPEC,
    config: Path | None = None,
    backend: str = "bwrap",
) -> int:
    """``darkfactory run`` with the scripted model; a dict playbook is written next to ``out``."""
    if isinstance(playbook, dict):
        playbook = write_playbook(out.parent, playbook)
    argv = ["run", str(spec), "--model", f"scripted:{playbook}", "--sandbox", backend]
    if config is not None:
        argv += ["--config", str(config)]
    return main([*argv, "--out", str(out), "--quiet", *extra])


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def report_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return data


def events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The run's trace records of one kind, in order."""
    return [r for r in read_trace(run_dir / "trace.jsonl") if r["kind"] == kind]
