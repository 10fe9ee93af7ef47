"""Checkpoints, the cost budget, deploy and the acceptance-hash check, end to end.

Real crew, real tools, real bwrap sandbox; the scripted model (a test tool, not AI) plays
examples/playbooks/wordcount.yaml or a variant of it built here. Pytest's stdin is not a
terminal, so an ``ask`` checkpoint pauses the run exactly as it does in CI or a service.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from runhelp import (
    NEEDS_BWRAP,
    config_with,
    events,
    example_playbook,
    only_run,
    report_of,
    run_spec,
)

from darkfactory.cli import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC, main
from darkfactory.engine.checkpoints import APPROVED, REJECTED, TerminalProvider
from darkfactory.workspace.rundir import stored_state

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]


def pending(run_dir: Path) -> str:
    state = stored_state(run_dir) or {}
    return str((state.get("pending_checkpoint") or {}).get("checkpoint"))


def test_ask_without_a_terminal_pauses_at_each_checkpoint_and_approve_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    marker = tmp_path / "deployed.txt"
    config = config_with(
        tmp_path,
        checkpoints={"spec_approval": "ask", "output_review": "ask", "deploy_approval": "ask"},
        deploy={
            "command": [
                sys.executable,
                "-c",
                f"import pathlib; pathlib.Path({str(marker)!r}).write_text('shipped')",
            ]
        },
    )
    data = example_playbook()
    # The notes given with the spec approval reach the design task's prompt.
    data["roles"]["manager"][0]["expect"] = ["Reviewer feedback (may be empty): Keep main() small"]

    assert run_spec(out, data, config=config) == 3  # paused at spec approval, before any model call
    run_dir = only_run(out)
    r = report_of(run_dir)
    assert r["status"] == "awaiting_approval"
    assert f"darkfactory approve {run_dir.name} --out {out}" in r["reason"]
    assert r["llm"]["calls"] == 0
    assert [e["checkpoint"] for e in events(run_dir, "awaiting_approval")] == ["spec_approval"]
    capsys.readouterr()
    assert main(["runs", "--out", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["status"] == "awaiting_approval"
    # resume without a decision pauses again: nothing is lost, nothing runs.
    assert main(["resume", run_dir.name, "--out", str(out), "--quiet"]) == 3

    assert (
        main(
            ["approve", run_dir.name, "--out", str(out), "--quiet", "--reason", "Keep main() small"]
        )
        == 3
    )
    r = report_of(run_dir)  # now paused at the output review, everything checked
    assert r["status"] == "awaiting_approval"
    assert r["acceptance"]["passed"] == r["acceptance"]["total"] == 8
    assert pending(run_dir) == "output_review"
    assert not marker.exists()

    assert main(["approve", run_dir.name, "--out", str(out), "--quiet"]) == 3
    assert pending(run_dir) == "deploy_approval"
    assert not marker.exists()  # nothing deployed before the deploy approval

    assert main(["approve", run_dir.name, "--out", str(out), "--quiet"]) == 0
    r = report_of(run_dir)
    assert r["status"] == "delivered"
    assert marker.read_text() == "shipped"
    decisions = [(c["checkpoint"], c["decision"], c["reason"]) for c in r["checkpoints"]]
    assert decisions == [
        ("spec_approval", APPROVED, "Keep main() small"),
        ("output_review", APPROVED, ""),
        ("deploy_approval", APPROVED, ""),
    ]
    assert all("darkfactory approve" in c["by"] for c in r["checkpoints"])
    (deploy,) = events(run_dir, "deploy")
    assert deploy["exit_code"] == 0
    # The design ran once: no finished phase was redone by the three continuations.
    assert [p["phase"] for p in events(run_dir, "phase_start")].count("design") == 1
    # A finished run has nothing to approve.
    assert main(["approve", run_dir.name, "--out", str(out)]) == 2


def test_reject_with_a_reason_sends_the_work_back_with_that_reason(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    config = config_with(tmp_path, checkpoints={"output_review": "ask"})
    reason = "Print a usage line when --help is given"
    data = example_playbook()
    roles = data["roles"]
    code = next(s for s in roles["developer"] if s.get("tool") == "write_file")["args"]["content"]
    roles["manager"] += [
        {
            "delegate": {
                "to": "developer",
                "task": "Do what the reviewer asks.",
                "context": "The reviewer feedback is in the task.",
            },
            # The rejection's reason is in the next task's prompt, verbatim.
            "expect": [
                f"Reviewer feedback (may be empty): {reason}",
                "rejected the work at output_review",
            ],
        },
        {"answer": "Done."},
        {
            "delegate": {
                "to": "tech_writer",
                "task": "Check the docs still match the code.",
                "context": "main() changed.",
            },
        },
        {"answer": "The docs are still right."},
    ]
    roles["developer"] += [
        {
            "tool": "write_file",
            "args": {
                "path": "wordcount.py",
                "content": code.replace('"""wc-like', '"""A wc-like', 1),
            },
        },
        {"answer": "wordcount.py now prints a usage line."},
    ]
    roles["tech_writer"] += [{"answer": "The docs still match the code."}]

    assert run_spec(out, data, config=config) == 3
    run_dir = only_run(out)
    assert main(["approve", run_dir.name, "--out", str(out), "--reject"]) == 2  # no reason
    assert (
        main(
            ["approve", run_dir.name, "--out", str(out), "--quiet", "--reject", "--reason", reason]
        )
        == 3
    )
    r = report_of(run_dir)
    assert r["status"] == "awaiting_approval"  # asked again after the revision was checked
    phases = [p["phase"] for p in events(run_dir, "phase_start")]
    assert phases[phases.index("revise") :] == ["revise", "verify", "document", "docs_check"]
    assert main(["approve", run_dir.name, "--out", str(out), "--quiet"]) == 0
    r = report_of(run_dir)
    assert r["status"] == "delivered"
    assert [(c["decision"], c["reason"]) for c in r["checkpoints"]] == [
        (APPROVED, ""),  # spec approval: auto
        (REJECTED, reason),
        (APPROVED, ""),
    ]


def test_a_rejected_spec_ends_the_run_before_any_model_call(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    config = config_with(tmp_path, checkpoints={"spec_approval": "ask"})
    assert run_spec(out, EXAMPLE_PLAYBOOK, config=config) == 3
    run_dir = only_run(out)
    why = "R6 must also read files named on stdin"
    assert (
        main(["approve", run_dir.name, "--out", str(out), "--quiet", "--reject", "--reason", why])
        == 1
    )
    r = report_of(run_dir)
    assert r["status"] == "rejected"
    assert why in r["reason"] and r["llm"]["calls"] == 0


def test_yes_approves_the_spec_approval_and_the_output_review(tmp_path: Path) -> None:
    """Not the deploy approval: tests/security/test_deploy.py."""
    out = tmp_path / "runs"
    config = config_with(tmp_path, checkpoints={"spec_approval": "ask", "output_review": "ask"})
    assert run_spec(out, EXAMPLE_PLAYBOOK, "--yes", config=config) == 0
    r = report_of(only_run(out))
    assert [c["by"] for c in r["checkpoints"]] == ["--yes", "--yes"]


def test_terminal_provider_asks_and_returns_the_decision() -> None:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

    ctx = PendingFeedbackContext(
        flow_id="r",
        flow_class="x",
        method_name="output_review",
        method_output="all green",
        message="Review",
    )
    answers = iter(["maybe", "n", "", "Rename count() to tally()"])
    shown: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            shown.append(s)

        def flush(self) -> None:
            pass

    provider = TerminalProvider(interactive=True, ask=lambda prompt: next(answers), out=Out())  # type: ignore[arg-type]
    assert json.loads(provider.request_feedback(ctx, None)) == {
        "decision": REJECTED,
        "reason": "Rename count() to tally()",
    }
    assert "all green" in "".join(shown) and "please answer y or n" in "".join(shown)
    answers = iter(["y", "looks good"])
    assert json.loads(provider.request_feedback(ctx, None)) == {
        "decision": APPROVED,
        "reason": "looks good",
    }

    from crewai.flow import HumanFeedbackPending

    with pytest.raises(HumanFeedbackPending):
        TerminalProvider(interactive=False).request_feedback(ctx, None)

    def closed(prompt: str) -> str:
        raise EOFError

    with pytest.raises(HumanFeedbackPending):  # Ctrl-D at the prompt pauses the run
        TerminalProvider(interactive=True, ask=closed, out=Out()).request_feedback(ctx, None)  # type: ignore[arg-type]


def test_cost_budget_stops_the_run_and_resume_with_more_finishes_it(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    # The scripted model is free; price it here so that a cost limit can bite.
    config = config_with(tmp_path, prices={"scripted:*": {"input": 100.0, "output": 100.0}})
    assert run_spec(out, EXAMPLE_PLAYBOOK, "--max-cost-usd", "0.5", config=config) == 4
    run_dir = only_run(out)
    r = report_of(run_dir)
    assert r["status"] == "budget_exhausted"
    assert "max_cost_usd reached" in r["reason"]
    spent = r["budget"]["cost_usd"]
    assert 0.5 <= spent < 1.0  # stopped at the first call past the limit, not later
    assert r["llm"]["cost_usd"] == pytest.approx(spent, rel=0.01)  # report and meter agree
    assert main(["resume", run_dir.name, "--out", str(out), "--quiet", "--max-cost-usd", "50"]) == 0
    r = report_of(run_dir)
    assert r["status"] == "delivered"
    assert r["budget"]["cost_usd"] > spent


def test_cost_budget_with_an_unknown_price_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.setenv("BASE_URL", "http://127.0.0.1:9/v1")  # a local server's model; never called
    out = tmp_path / "runs"
    code = main(
        [
            "run",
            str(EXAMPLE_SPEC),
            "--model",
            "openai/house-model-7",
            "--sandbox",
            "bwrap",
            "--out",
            str(out),
            "--max-cost-usd",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "price of model 'openai/house-model-7'" in err and "prices:" in err
    assert not out.exists() or not any(out.iterdir())  # nothing left behind


def test_a_changed_acceptance_test_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    config = config_with(tmp_path)
    # Stop after the implementation (budget), change a frozen test, then resume.
    assert run_spec(out, EXAMPLE_PLAYBOOK, "--max-llm-calls", "9", config=config) == 4
    run_dir = only_run(out)
    frozen = next((run_dir / "acceptance").rglob("test_*.py"))
    frozen.write_text(frozen.read_text() + "\n\ndef test_always():\n    assert True\n")
    assert (
        main(["resume", run_dir.name, "--out", str(out), "--quiet", "--max-llm-calls", "100"]) == 1
    )
    r = report_of(run_dir)
    assert r["status"] == "failed"
    assert "no longer match their hashes" in r["reason"] and frozen.name in r["reason"]
    (changed,) = events(run_dir, "acceptance_changed")
    assert changed["changed"] == [str(frozen.relative_to(run_dir / "acceptance"))]


def test_ask_on_a_terminal_prompts_and_the_answer_decides(tmp_path: Path) -> None:
    """``darkfactory run`` with a terminal on stdin: the checkpoints ask there, no pause."""
    import os
    import pty
    import subprocess

    out = tmp_path / "runs"
    config = config_with(tmp_path, checkpoints={"spec_approval": "ask", "output_review": "ask"})
    master, slave = pty.openpty()
    argv = [sys.executable, "-m", "darkfactory", "run", str(EXAMPLE_SPEC), "--model"]
    argv += [f"scripted:{EXAMPLE_PLAYBOOK}", "--sandbox", "bwrap", "--config", str(config)]
    proc = subprocess.Popen(
        [*argv, "--out", str(out), "--quiet"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    # Spec approval: y, notes; output review: y, no notes (typed ahead: the terminal keeps it).
    os.write(master, b"y\nKeep it small\ny\n\n")
    _, stderr = proc.communicate(timeout=300)
    os.close(master)
    assert proc.returncode == 0, stderr[-2000:]
    assert "== Spec approval: Word count CLI ==" in stderr
    assert "== Output review: Word count CLI ==" in stderr
    r = report_of(only_run(out))
    assert r["status"] == "delivered"
    assert [(c["checkpoint"], c["decision"], c["reason"]) for c in r["checkpoints"]] == [
        ("spec_approval", APPROVED, "Keep it small"),
        ("output_review", APPROVED, ""),
    ]
    assert all(c["by"].endswith("(terminal)") for c in r["checkpoints"])
