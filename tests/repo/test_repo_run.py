"""Whole runs on an existing repository: a bug and a feature ticket, through the real crew.

The scripted model (a test tool, not AI) plays the roles; the clone, the environment, the
baseline, the sandbox, git and the delivery are real. The user's repository must come out
byte-identical (its reflogs too), the change must be a branch with a patch and a pull
request text, and the verdict must come from the tests the pipeline ran itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MakeRepo, git, snapshot
from runhelp import NEEDS_BWRAP, config_with, events, only_run, report_of

from darkfactory.cli import main

pytestmark = [NEEDS_BWRAP, pytest.mark.e2e]

CALC = '''"""Small statistics."""


def mean(values):
    """The arithmetic mean of ``values``."""
    return sum(values) / len(values)


def total(values):
    return sum(values)
'''
FIXED = CALC.replace(
    "    return sum(values) / len(values)",
    "    if not values:\n        return 0.0\n    return sum(values) / len(values)",
)
TESTS = """from calc import mean, total


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_total():
    assert total([1, 2]) == 3
"""
REPRO = """from calc import mean


def test_repro_mean_of_nothing_is_zero():
    assert mean([]) == 0.0
"""


@pytest.fixture
def calc_repo(make_repo: MakeRepo) -> Any:
    repo = make_repo(
        "calc",
        {
            "pyproject.toml": '[project]\nname = "calc"\nversion = "1.0"\n',
            "calc/__init__.py": CALC,
            "tests/test_calc.py": TESTS,
        },
    )
    git(repo.path, "tag", "v1.0")
    return repo


def bug_ticket(tmp_path: Path, repo: Path) -> Path:
    path = tmp_path / "bug.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": "mean([]) crashes",
                "description": "calc.mean([]) raises ZeroDivisionError; it must return 0.0.",
                "acceptance_criteria": ["mean([]) returns 0.0 instead of raising"],
                "repo": str(repo),
                "base": "v1.0",
                "kind": "bug",
            }
        )
    )
    return path


def playbook(tmp_path: Path, *, repro: str = REPRO, fix: str = FIXED) -> Path:
    book = {
        "version": 1,
        "description": "A bug on an existing repository: reproduce, then fix.",
        "roles": {
            "manager": [
                {"delegate": {"to": "qa_engineer", "task": "Reproduce the bug.", "context": "-"}},
                {"answer": "The reproduction test is written."},
                {"delegate": {"to": "developer", "task": "Fix the bug.", "context": "-"}},
                {"answer": "Fixed."},
            ],
            "qa_engineer": [
                {"tool": "search_code", "args": {"pattern": "def mean"}},
                {
                    "tool": "write_file",
                    "args": {"path": "tests/test_repro_mean.py", "content": repro},
                },
                {"answer": "tests/test_repro_mean.py fails now with ZeroDivisionError."},
            ],
            "developer": [
                {"tool": "write_file", "args": {"path": "calc/__init__.py", "content": fix}},
                {"answer": "mean returns 0.0 for an empty list."},
            ],
        },
    }
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return path


def run(tmp_path: Path, ticket: Path, book: Path, *extra: str, **factory: Any) -> tuple[int, Path]:
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs")}, **factory)
    out = tmp_path / "runs"
    code = main(
        [
            "run",
            str(ticket),
            "--model",
            f"scripted:{book}",
            "--sandbox",
            "bwrap",
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )
    return code, only_run(out)


def test_a_bug_is_reproduced_fixed_and_delivered_as_a_branch_a_patch_and_a_pr(
    tmp_path: Path, calc_repo: Any
) -> None:
    before = snapshot(calc_repo.path)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(calc_repo.path), str(bare)], check=True)
    code, run_dir = run(
        tmp_path,
        bug_ticket(tmp_path, calc_repo.path),
        playbook(tmp_path),
        deliver={"push": str(bare)},
    )
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert snapshot(calc_repo.path) == before  # the user's repository was only read
    # The reproduction failed at base for the reported reason, then passed.
    repro = events(run_dir, "reproduction")
    assert repro and repro[0]["ok"] is True
    assert repro[0]["tests"] == ["tests/test_repro_mean.py::test_repro_mean_of_nothing_is_zero"]
    baseline = json.loads((run_dir / "baseline.json").read_text())
    assert baseline["outcomes"] == {
        "tests/test_calc.py::test_mean": "passed",
        "tests/test_calc.py::test_total": "passed",
    }
    final = json.loads((run_dir / "final_tests.json").read_text())["outcomes"]
    assert final["tests/test_repro_mean.py::test_repro_mean_of_nothing_is_zero"] == "passed"
    assert final["tests/test_calc.py::test_mean"] == "passed"
    # The branch: one commit per phase on darkfactory/<run-id>, from the base commit.
    ws = run_dir / "workspace"
    branch = f"darkfactory/{run_dir.name}"
    assert git(ws, "rev-parse", "--abbrev-ref", "HEAD") == branch
    base = git(calc_repo.path, "rev-parse", "v1.0")
    assert git(ws, "merge-base", "HEAD", base) == base
    assert git(ws, "diff", "--name-only", base, "HEAD").split() == [
        "calc/__init__.py",
        "tests/test_repro_mean.py",
    ]
    # One commit per phase that changed something: the reproduction, then the fix.
    assert git(ws, "log", "--reverse", "--format=%s", f"{base}..HEAD").splitlines() == [
        "reproduce: tests/test_repro_mean.py::test_repro_mean_of_nothing_is_zero",
        "bug: mean([]) crashes",
    ]
    assert git(ws, "show", "--name-only", "--format=", "HEAD~1").split() == [
        "tests/test_repro_mean.py"  # the reproduction alone, before any code changed
    ]
    # The patch applies to the base; the PR text carries the evidence.
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(calc_repo.path), str(check)], check=True)
    git(check, "checkout", "-q", "v1.0")
    git(check, "apply", "--check", str(run_dir / "change.patch"))
    pr = (run_dir / "pull_request.md").read_text()
    assert "mean([]) crashes" in pr and "test_repro_mean_of_nothing_is_zero" in pr
    assert "ZeroDivisionError" in pr  # the reproduction's failure at base, verbatim
    # The report shows the change itself, with the suite at base and at the end.
    assert report["repository"]["regressions"] == []
    assert report["repository"]["final"]["passed"] == 3
    md = (run_dir / "report.md").read_text()
    assert f"## The change on `{branch}`" in md and "+        return 0.0" in md
    html = (run_dir / "report.html").read_text()
    assert "+        return 0.0" in html and "regressions: none" in html
    # Pushed to the remote, never to its base branch.
    assert git(bare, "rev-parse", branch) == git(ws, "rev-parse", "HEAD")
    assert git(bare, "rev-parse", "main") == git(calc_repo.path, "rev-parse", "main")


def test_a_reproduction_that_passes_at_base_escalates_with_its_output(
    tmp_path: Path, calc_repo: Any
) -> None:
    passing = REPRO.replace("assert mean([]) == 0.0", "assert mean([2]) == 2")
    code, run_dir = run(
        tmp_path, bug_ticket(tmp_path, calc_repo.path), playbook(tmp_path, repro=passing)
    )
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "escalated"
    assert "does not fail at the base commit" in report["reason"]
    assert "1 passed" in report["reason"]  # the test's output is quoted


def test_a_regression_is_caught_by_the_baseline(tmp_path: Path, calc_repo: Any) -> None:
    broken = FIXED.replace("return sum(values)\n", "return sum(values) + 1\n")
    code, run_dir = run(
        tmp_path,
        bug_ticket(tmp_path, calc_repo.path),
        playbook(tmp_path, fix=broken),
        max_fix_rounds=0,
    )
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "failed"
    verify = events(run_dir, "verify")[-1]
    assert verify["regressions"] == ["tests/test_calc.py::test_total"]
    assert (run_dir / "change.patch").is_file() and (run_dir / "pull_request.md").is_file()


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--repo", "{tmp}/not-a-repo", "not a git repository"),
        ("--base", "no-such-tag", "no-such-tag"),
    ],
)
def test_bad_repository_input_exits_2_and_leaves_nothing(
    tmp_path: Path,
    calc_repo: Any,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    says: str,
) -> None:
    (tmp_path / "not-a-repo").mkdir()
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs")})
    out = tmp_path / "runs"
    code = main(
        [
            "run",
            str(bug_ticket(tmp_path, calc_repo.path)),
            "--model",
            f"scripted:{playbook(tmp_path)}",
            "--config",
            str(config),
            "--out",
            str(out),
            flag,
            value.format(tmp=tmp_path),
        ]
    )
    assert code == 2
    assert says in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


MEDIAN_TEST = """from calc import median


def test_median_of_odd():
    assert median([3, 1, 2]) == 2


def test_median_of_even():
    assert median([1, 2, 3, 4]) == 2.5
"""
WITH_MEDIAN = (
    CALC
    + """

def median(values):
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
"""
)


def test_a_feature_with_acceptance_tests_lands_on_a_branch_and_the_review_sees_the_diff(
    tmp_path: Path, calc_repo: Any
) -> None:
    before = snapshot(calc_repo.path)
    ticket = tmp_path / "feature.yaml"
    ticket.write_text(
        yaml.safe_dump(
            {
                "title": "Add median",
                "acceptance_tests": MEDIAN_TEST,
                "repo": str(calc_repo.path),
                "kind": "feature",
            }
        )
    )
    book = {
        "version": 1,
        "roles": {
            "manager": [
                {"delegate": {"to": "developer", "task": "Add median.", "context": "-"}},
                {"answer": "Done."},
            ],
            "developer": [
                {"tool": "repo_map", "args": {}},
                {
                    "tool": "write_file",
                    "args": {"path": "calc/__init__.py", "content": WITH_MEDIAN},
                },
                {"answer": "median added."},
            ],
        },
    }
    path = tmp_path / "feature-playbook.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    code, run_dir = run(tmp_path, ticket, path, "--yes", checkpoints={"output_review": "ask"})
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["acceptance"] == {"total": 2, "passed": 2, "failed": 0}
    assert report["repository"]["baseline"]["passed"] == 2
    assert report["repository"]["regressions"] == []
    ws = run_dir / "workspace"
    assert git(ws, "diff", "--name-only", git(calc_repo.path, "rev-parse", "HEAD"), "HEAD") == (
        "calc/__init__.py"  # the ticket's tests stay outside the change
    )
    assert snapshot(calc_repo.path) == before
    pr = (run_dir / "pull_request.md").read_text()
    assert "## The ticket's acceptance tests" in pr and "2 of 2 pass" in pr
    assert "`test_acceptance.py::test_median_of_even`: passed" in pr
    review = [e for e in events(run_dir, "checkpoint") if e["checkpoint"] == "output_review"]
    assert review and review[0]["decision"] == "approved"


def test_other_languages_are_refused_with_exit_2(
    tmp_path: Path, make_repo: MakeRepo, calc_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs")})
    out = tmp_path / "runs"
    book = playbook(tmp_path)
    ticket = bug_ticket(tmp_path, calc_repo.path)
    argv = ["run", str(ticket), "--model", f"scripted:{book}", "--config", str(config)]
    js = make_repo("web", {"package.json": "{}\n", "index.js": "console.log(1)\n"})
    assert main([*argv, "--out", str(out), "--repo", str(js.path), "--base", "main"]) == 2
    assert "Python" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
