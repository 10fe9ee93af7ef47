"""A ticket on a repository seals some of its acceptance tests: a developer who teaches to
the visible tests is caught by the sealed ones, whose source no agent ever sees.

Through the real crew (the scripted model, a test tool, not AI, plays the roles), sandbox
and git, on a repository with its own suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import snapshot
from runhelp import NEEDS_BWRAP, events, report_of
from test_holdout import agent_visible_text
from test_repo_run import CALC, WITH_MEDIAN, calc_repo, run

from darkfactory.cli import main
from darkfactory.workspace.rundir import stored_state

__all__ = ["calc_repo"]  # the fixture, shared with test_repo_run

pytestmark = [NEEDS_BWRAP, pytest.mark.e2e]

#: In the sealed test only: found anywhere an agent could look, it leaked.
MARK = "SEALED-MEDIAN-OF-FIVE-7f3a"
ACCEPTANCE = f'''from calc import median


def test_median_of_odd():
    assert median([3, 1, 2]) == 2


def test_median_of_even():
    assert median([1, 2, 3, 4]) == 2.5


def test_median_of_five():
    """{MARK}"""
    assert median([9, 7, 5, 3, 1]) == 5
'''
SEALED = "test_acceptance.py::test_median_of_five"
HONEST = WITH_MEDIAN
#: The visible tests' expected values, hard-coded: what a model teaching to the test writes.
CHEAT = CALC + "\n\ndef median(values):\n    return {3: 2, 4: 2.5}[len(values)]\n"


def ticket(tmp_path: Path, repo: Path) -> Path:
    path = tmp_path / "median.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": "Add median",
                "acceptance_tests": ACCEPTANCE,
                "repo": str(repo),
                "kind": "feature",
                "holdout": [SEALED],
            }
        )
    )
    return path


def playbook(tmp_path: Path, code: str) -> Path:
    book = {
        "version": 1,
        "roles": {
            "manager": [
                {"delegate": {"to": "developer", "task": "Add median.", "context": "-"}},
                {"answer": "Done."},
            ],
            "developer": [
                {"tool": "read_file", "args": {"path": "calc/__init__.py"}},
                {"tool": "write_file", "args": {"path": "calc/__init__.py", "content": code}},
                {"answer": "median added."},
            ],
        },
    }
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return path


def test_a_cheat_passes_the_visible_tests_and_fails_the_sealed_one(
    tmp_path: Path, calc_repo: Any
) -> None:
    before = snapshot(calc_repo.path)
    cassette = tmp_path / "cassette.jsonl"
    code, run_dir = run(
        tmp_path,
        ticket(tmp_path, calc_repo.path),
        playbook(tmp_path, CHEAT),
        "--record",
        str(cassette),
        max_fix_rounds=0,
    )
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "failed"
    assert report["holdout"]["sealed_tests"] == [SEALED]
    assert report["holdout"]["visible"]["passed"] == report["holdout"]["visible"]["total"] == 2
    assert report["holdout"]["sealed"] == {"total": 1, "passed": 0, "rate": 0.0}
    sealed = [e for e in events(run_dir, "test_outcome") if e["suite"] == "sealed"]
    assert [(e["test"], e["outcome"]) for e in sealed] == [(SEALED, "failed")]
    assert events(run_dir, "verify")[-1]["sealed"] == {"total": 1, "passed": 0}
    # The sealed source stays out of every prompt, the trace, the workspace and git.
    seen = agent_visible_text(run_dir, cassette)
    assert MARK not in seen and "def test_median_of_five(" not in seen
    assert "def test_median_of_odd(" in seen  # the visible tests do reach the prompts
    assert MARK in (run_dir / "sealed" / "test_acceptance.py").read_text()
    assert MARK not in (run_dir / "pull_request.md").read_text()
    assert snapshot(calc_repo.path) == before


def test_an_honest_change_is_delivered_with_both_pass_rates(tmp_path: Path, calc_repo: Any) -> None:
    code, run_dir = run(
        tmp_path, ticket(tmp_path, calc_repo.path), playbook(tmp_path, HONEST), max_fix_rounds=0
    )
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["holdout"]["sealed"] == {"total": 1, "passed": 1, "rate": 1.0}
    assert report["repository"]["regressions"] == []
    assert "Shadow score (sealed holdout): visible 2/2" in (run_dir / "report.md").read_text()
    held = json.loads((run_dir / "holdout.json").read_text())
    assert held["sealed"] == [SEALED] and len(held["visible"]) == 2


def test_the_output_review_shows_the_diff_and_the_sealed_pass_rate(
    tmp_path: Path, calc_repo: Any
) -> None:
    code, run_dir = run(
        tmp_path,
        ticket(tmp_path, calc_repo.path),
        playbook(tmp_path, HONEST),
        checkpoints={"output_review": "ask"},
    )
    assert code == 3  # no terminal: the run waits for a person
    state = stored_state(run_dir) or {}
    summary = state["pending_checkpoint"]["summary"]
    assert state["pending_checkpoint"]["checkpoint"] == "output_review"
    assert "Acceptance tests: 2/2 passed" in summary
    assert "sealed holdout: 1/1 passed" in summary
    assert "Change against HEAD" in summary and "+def median(values):" in summary
    assert MARK not in summary
    out = run_dir.parent
    assert main(["approve", run_dir.name, "--out", str(out), "--quiet"]) == 0
    assert report_of(run_dir)["status"] == "delivered"
