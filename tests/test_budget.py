"""Each budget kind stops a run before the call that would exceed it, and resume finishes it.

Real crew, tools and bwrap sandbox; the scripted model (a test tool, not AI) plays
examples/playbooks/wordcount.yaml: 25 calls and about 72,000 estimated tokens when
nothing stops it. (``max_cost_usd`` is covered with checkpoints in test_checkpoints.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runhelp import NEEDS_BWRAP, example_playbook, only_run, report_of, run_spec, write_playbook

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.reporting.trace import read_trace

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]


def slow_playbook(tmp_path: Path) -> Path:
    """The example playbook with the architect's first answer taking 1.5 s."""
    book = example_playbook()
    book["roles"]["architect"][0]["delay_s"] = 1.5
    return write_playbook(tmp_path, book, "slow.yaml")


@pytest.mark.parametrize(
    ("flag", "limit", "raised"),
    [
        ("--max-llm-calls", "9", "100"),
        ("--max-tokens", "20000", "10000000"),
        ("--max-wall-s", "1", "600"),
    ],
)
def test_each_budget_stops_the_run_and_resume_with_more_delivers(
    tmp_path: Path, flag: str, limit: str, raised: str
) -> None:
    out = tmp_path / "runs"
    playbook = slow_playbook(tmp_path) if flag == "--max-wall-s" else EXAMPLE_PLAYBOOK
    assert run_spec(out, playbook, flag, limit) == 4
    run = only_run(out)
    report = report_of(run)
    key = flag.removeprefix("--").replace("-", "_")
    assert report["status"] == "budget_exhausted"
    assert f"budget {key} reached" in report["reason"]
    used = report["budget"]
    calls = used["llm_calls"]
    assert 0 < calls < 25 and report["llm"]["calls"] == calls  # no call past the stop
    if key == "max_llm_calls":
        assert calls == 9  # the tenth call was never made
        assert "max_llm_calls reached: used 9 of 9" in report["reason"]
    elif key == "max_tokens":
        # It stopped at the first call after the limit was reached, not one later.
        per_call = [r for r in read_trace(run / "trace.jsonl") if r["kind"] == "llm_call"]
        before_last = sum(r["prompt_tokens"] + r["completion_tokens"] for r in per_call[:-1])
        assert before_last < 20000 <= used["tokens"]
    else:
        assert used["wall_s"] >= 1.0
    phases_before = [
        r["phase"] for r in read_trace(run / "trace.jsonl") if r["kind"] == "phase_start"
    ]
    committed = set((run / "workspace" / f).relative_to(run / "workspace") for f in report["files"])

    assert main(["resume", run.name, "--out", str(out), "--quiet", flag, raised]) == 0
    report = report_of(run)
    assert report["status"] == "delivered"
    assert report["budget"]["llm_calls"] >= 25
    # Nothing lost: every file committed before the stop is still in the workspace.
    assert committed <= {Path(f) for f in report["files"]}
    trace = read_trace(run / "trace.jsonl")
    phases = [r["phase"] for r in trace if r["kind"] == "phase_start"]
    # Each phase that had finished before the stop ran once; only the stopped one again.
    for phase in set(phases_before[:-1]):
        assert phases.count(phase) == 1, (phase, phases)
