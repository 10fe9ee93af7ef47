"""A bug's proof starts with a failure at base for the ticket's reason, checked in the sandbox.

Through the real crew (the scripted model, a test tool, not AI, plays the roles), the real
sandbox and git: a reproduction that fails for another reason or with an import error
escalates before the developer changes anything; named ``failing_tests`` are checked the
same way against the baseline and their failure reaches the pull request; a ticket's
``test_command`` is the command the suite runs with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MakeRepo, Repo, git, snapshot
from runhelp import NEEDS_BWRAP, config_with, events, report_of
from test_repo_run import CALC, FIXED, calc_repo, playbook, run

from darkfactory.cli import main
from darkfactory.engine.repo_checks import checks_text, expected_failure
from darkfactory.errors import SpecError
from darkfactory.spec import load_spec

__all__ = ["calc_repo"]  # the fixture, shared with test_repo_run

WRONG_REASON = """from calc import mean


def test_repro_mean_of_one():
    assert mean([1]) == 2
"""
IMPORT_ERROR = """from calc import mean_of_nothing


def test_repro_mean_of_nothing():
    assert mean_of_nothing() == 0.0
"""
FAILING_AT_BASE = """from calc import mean


def test_mean_of_nothing():
    assert mean([]) == 0.0
"""


def failing_repo(make_repo: MakeRepo) -> Repo:
    """calc with a test of the bug that fails at base, beside one that passes."""
    return make_repo(
        "calc",
        {
            "pyproject.toml": '[project]\nname = "calc"\nversion = "1.0"\n',
            "calc/__init__.py": CALC,
            "tests/test_calc.py": FAILING_AT_BASE,
            "tests/test_total.py": "from calc import total\n\n\ndef test_total():\n"
            "    assert total([1, 2]) == 3\n",
        },
    )


def ticket(tmp_path: Path, repo: Path, **keys: Any) -> Path:
    data = {
        "title": "mean([]) crashes",
        "description": "calc.mean([]) raises ZeroDivisionError; it must return 0.0.",
        "acceptance_criteria": ["mean([]) returns 0.0 instead of raising"],
        "repo": str(repo),
        "kind": "bug",
        **keys,
    }
    path = tmp_path / "bug.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_expected_failure_comes_from_fails_with_or_the_exceptions_the_ticket_names(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    spec = load_spec(ticket(tmp_path, repo))
    assert expected_failure(spec) == ("ZeroDivisionError",)
    assert "showing ZeroDivisionError (never an import error)" in checks_text(spec)
    spec = load_spec(ticket(tmp_path, repo, fails_with=["assert 1 == 2", "IndexError"]))
    assert expected_failure(spec) == ("assert 1 == 2", "IndexError")
    spec = load_spec(ticket(tmp_path, repo, description="mean([]) returns None; want 0.0."))
    assert expected_failure(spec) == ()  # any failure but an import error


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"fails_with": [3]}, "a text the failure shows"),
        ({"fails_with": {"a": 1}}, "fails_with must be a text or a list of texts"),
        ({"kind": "feature", "fails_with": "ValueError"}, "fails_with is for a bug ticket"),
    ],
)
def test_a_wrong_fails_with_is_refused_at_its_key(
    tmp_path: Path, keys: dict[str, Any], says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(ticket(tmp_path, tmp_path / "repo", **keys))
    assert says in str(caught.value) and "bug.yaml" in str(caught.value)


@NEEDS_BWRAP
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("repro", "says"),
    [
        (WRONG_REASON, "it fails, but not with what the ticket reports (ZeroDivisionError)"),
        (IMPORT_ERROR, "it fails with an import error"),
    ],
    ids=["wrong-reason", "import-error"],
)
def test_a_reproduction_failing_for_another_reason_escalates_before_any_fix(
    tmp_path: Path, calc_repo: Any, repro: str, says: str
) -> None:
    before = snapshot(calc_repo.path)
    code, run_dir = run(tmp_path, ticket(tmp_path, calc_repo.path), playbook(tmp_path, repro=repro))
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "escalated"
    assert says in report["reason"]
    found = events(run_dir, "reproduction")
    assert len(found) == 1 and found[0]["ok"] is False and found[0]["why"] == says
    # The developer never ran: the code at the end is the code at base.
    ws = run_dir / "workspace"
    assert (ws / "calc" / "__init__.py").read_text() == CALC
    assert not [e for e in events(run_dir, "crew_start") if e.get("phase") == "implement"]
    assert snapshot(calc_repo.path) == before


@NEEDS_BWRAP
@pytest.mark.e2e
def test_named_failing_tests_are_the_reproduction_and_their_failure_reaches_the_pr(
    tmp_path: Path, make_repo: MakeRepo
) -> None:
    repo = failing_repo(make_repo)
    before = snapshot(repo.path)
    named = "tests/test_calc.py::test_mean_of_nothing"
    book = {
        "version": 1,
        "roles": {
            "manager": [
                {"delegate": {"to": "developer", "task": "Fix the bug.", "context": "-"}},
                {"answer": "Fixed."},
            ],
            "developer": [
                {"tool": "write_file", "args": {"path": "calc/__init__.py", "content": FIXED}},
                {"answer": "mean returns 0.0 for an empty list."},
            ],
        },
    }
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    code, run_dir = run(
        tmp_path,
        ticket(tmp_path, repo.path, failing_tests=[named]),
        path,
    )
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    found = events(run_dir, "reproduction")
    assert found and found[0]["ok"] is True and found[0]["tests"] == [named]
    assert json.loads((run_dir / "baseline.json").read_text())["outcomes"][named] == "failed"
    assert json.loads((run_dir / "final_tests.json").read_text())["outcomes"][named] == "passed"
    pr = (run_dir / "pull_request.md").read_text()
    assert named in pr and "ZeroDivisionError" in pr  # the failure at base, not just "failed"
    # Only the developer's change is on the branch: no reproduction file was written.
    ws = run_dir / "workspace"
    base = git(repo.path, "rev-parse", "HEAD")
    assert git(ws, "diff", "--name-only", base, "HEAD") == "calc/__init__.py"
    assert snapshot(repo.path) == before


@NEEDS_BWRAP
@pytest.mark.e2e
def test_named_failing_tests_failing_for_another_reason_escalate(
    tmp_path: Path, make_repo: MakeRepo
) -> None:
    repo = failing_repo(make_repo)
    named = "tests/test_calc.py::test_mean_of_nothing"
    code, run_dir = run(
        tmp_path,
        ticket(tmp_path, repo.path, failing_tests=[named], fails_with="IndexError"),
        playbook(tmp_path),
    )
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "escalated"
    assert "not with what the ticket reports (IndexError)" in report["reason"]
    assert "ZeroDivisionError" in report["reason"]  # what it did fail with, quoted


@NEEDS_BWRAP
@pytest.mark.e2e
def test_the_tickets_test_command_is_the_suite_the_run_measures(
    tmp_path: Path, calc_repo: Any
) -> None:
    code, run_dir = run(
        tmp_path,
        ticket(
            tmp_path,
            calc_repo.path,
            test_command=["python", "-m", "pytest", "-q", "-k", "not total"],
        ),
        playbook(tmp_path),
    )
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    baseline = json.loads((run_dir / "baseline.json").read_text())
    assert baseline["test_command"][-2:] == ["-k", "not total"]
    assert list(baseline["outcomes"]) == ["tests/test_calc.py::test_mean"]
    final = json.loads((run_dir / "final_tests.json").read_text())["outcomes"]
    assert "tests/test_calc.py::test_total" not in final
    assert final["tests/test_repro_mean.py::test_repro_mean_of_nothing_is_zero"] == "passed"


def test_a_tickets_test_command_that_does_not_run_pytest_exits_2_before_a_run_exists(
    tmp_path: Path, calc_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs")})
    path = ticket(tmp_path, calc_repo.path, test_command=["make", "test"])
    book = playbook(tmp_path)
    code = main(
        [
            "run",
            str(path),
            "--model",
            f"scripted:{book}",
            "--config",
            str(config),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "bug.yaml" in err and "test_command" in err and "must run pytest" in err
    assert not out.exists() or not any(out.iterdir())
