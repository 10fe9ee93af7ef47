"""Whole runs that deliver: the pull request's target branch, one pull request per ticket,
the delivery of runs that stop early, and uncommitted changes said everywhere.

The scripted model (a test tool, not AI) plays the roles; the clone, sandbox, git and push
are real (a local bare repository), and the forge is the loopback test double
(forge_double.py), which checks every request and refuses any it does not expect.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MakeRepo, git, snapshot
from forge_double import ForgeDouble
from runhelp import NEEDS_BWRAP, config_with, events, report_of
from test_repo_run import CALC, REPRO, TESTS, bug_ticket, playbook, run

from darkfactory.cli import main
from darkfactory.engine.repo_run import RepoRecord

pytestmark = [NEEDS_BWRAP, pytest.mark.e2e]

TOKEN = "tok_" + "D3liveryT0ken" * 3
REPRO_TEST = "tests/test_repro_mean.py::test_repro_mean_of_nothing_is_zero"


@pytest.fixture
def master_repo(make_repo: MakeRepo) -> Any:
    """The calc repository with ``master`` as its only branch (and HEAD), tagged v1.0."""
    repo = make_repo(
        "calc",
        {
            "pyproject.toml": '[project]\nname = "calc"\nversion = "1.0"\n',
            "calc/__init__.py": CALC,
            "tests/test_calc.py": TESTS,
        },
    )
    repo.git("branch", "-m", "main", "master")
    repo.tag("v1.0")
    return repo


def bare_clone(repo: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(dest)], check=True)
    return dest


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", TOKEN)
    return TOKEN


def pull_request_config(double: ForgeDouble) -> dict[str, Any]:
    return {
        "forge": double.forge,
        "repo": double.repo,
        "token_env": "DF_TEST_FORGE_TOKEN",
        "api_url": double.api_url,
    }


@pytest.fixture
def github(tmp_path: Path, master_repo: Any, token: str) -> Iterator[ForgeDouble]:
    remote = bare_clone(master_repo.path, tmp_path / "remote.git")
    with ForgeDouble("github", repo="octo/calc", token=token, remote=remote) as double:
        yield double
    assert double.violations == []


def test_a_tag_base_on_a_master_repository_opens_one_pull_request_into_master(
    tmp_path: Path, master_repo: Any, github: ForgeDouble
) -> None:
    deliver = {"push": str(github.remote), "pull_request": pull_request_config(github)}
    ticket = bug_ticket(tmp_path, master_repo.path)  # base: v1.0, a tag
    code, first = run(tmp_path / "first", ticket, playbook(tmp_path), deliver=deliver)
    assert code == 0, report_of(first)["reason"]
    record = RepoRecord.model_validate_json((first / "repo.json").read_text())
    assert (record.base_branch, record.default_branch) == (None, "master")
    [posted] = github.posts()
    assert posted.body["base"] == "master" and posted.body["head"] == f"darkfactory/{first.name}"
    assert posted.body["body"].rstrip().endswith("-->")  # the ticket's hidden marker, last
    [opened] = [e for e in events(first, "deliver") if e["what"] == "pull_request"]
    assert (opened["created"], opened["target"]) == (True, "master")
    assert "v1.0 is not a branch" in opened["why"]
    pr = (first / "pull_request.md").read_text()
    assert "· into `master` ·" in pr and "the repository's default branch" in pr

    # The same ticket again: a new run and branch, and still the one pull request.
    code, second = run(tmp_path / "second", ticket, playbook(tmp_path), deliver=deliver)
    assert code == 0, report_of(second)["reason"]
    assert git(github.remote, "rev-parse", f"darkfactory/{second.name}")  # pushed
    assert len(github.posts()) == 1 and len(github.pulls) == 1
    [again] = [e for e in events(second, "deliver") if e["what"] == "pull_request"]
    assert (again["url"], again["created"]) == (opened["url"], False)


def test_a_head_base_on_a_master_repository_merges_into_master_on_gitlab(
    tmp_path: Path, master_repo: Any, token: str
) -> None:
    remote = bare_clone(master_repo.path, tmp_path / "remote.git")
    ticket = bug_ticket(tmp_path, master_repo.path)
    data = yaml.safe_load(ticket.read_text())
    del data["base"]  # the repository's HEAD: master
    ticket.write_text(yaml.safe_dump(data))
    with ForgeDouble("gitlab", repo="group/calc", token=token) as gitlab:
        deliver = {"push": str(remote), "pull_request": pull_request_config(gitlab)}
        code, run_dir = run(tmp_path, ticket, playbook(tmp_path), deliver=deliver)
    assert gitlab.violations == []
    assert code == 0, report_of(run_dir)["reason"]
    [posted] = gitlab.posts()
    assert posted.body["target_branch"] == "master"
    assert posted.body["source_branch"] == f"darkfactory/{run_dir.name}"
    assert git(remote, "rev-parse", "master") == git(master_repo.path, "rev-parse", "master")
    assert "not a branch" not in (run_dir / "pull_request.md").read_text()


def test_a_pull_request_with_no_branch_to_merge_into_is_refused_before_any_model_call(
    tmp_path: Path, master_repo: Any, github: ForgeDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    master_repo.git("checkout", "-q", "--detach")  # no branch HEAD names, no origin/HEAD
    deliver = {"push": str(github.remote), "pull_request": pull_request_config(github)}
    code, run_dir = run_no_dir(tmp_path, bug_ticket(tmp_path, master_repo.path), deliver)
    assert code == 2
    assert "deliver.pull_request.target_branch" in capsys.readouterr().err
    assert run_dir is None and github.requests == []


def run_no_dir(tmp_path: Path, ticket: Path, deliver: dict[str, Any]) -> tuple[int, Path | None]:
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs")}, deliver=deliver)
    out = tmp_path / "runs"
    argv = ["run", str(ticket), "--model", f"scripted:{playbook(tmp_path)}", "--config"]
    code = main([*argv, str(config), "--out", str(out), "--sandbox", "bwrap", "--quiet"])
    runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    return code, runs[0] if runs else None


# -- runs that stop early still deliver ------------------------------------------------------


@pytest.mark.parametrize("push_failed", [True, False])
def test_an_escalated_run_writes_its_patch_and_pull_request_md_and_pushes_only_if_asked(
    tmp_path: Path, master_repo: Any, push_failed: bool
) -> None:
    remote = bare_clone(master_repo.path, tmp_path / "remote.git")
    passing = REPRO.replace("assert mean([]) == 0.0", "assert mean([2]) == 2")
    code, run_dir = run(
        tmp_path,
        bug_ticket(tmp_path, master_repo.path),
        playbook(tmp_path, repro=passing),
        deliver={"push": str(remote), "push_failed": push_failed},
    )
    assert code == 1 and report_of(run_dir)["status"] == "escalated"
    ws = run_dir / "workspace"
    base = git(master_repo.path, "rev-parse", "v1.0")
    # The run's branch and work tree are as the run left them; the test it wrote is kept
    # in a commit of its own, off the branch, in change.patch and the -failed branch.
    assert git(ws, "rev-parse", "HEAD") == base
    assert git(ws, "status", "--porcelain") == "?? tests/test_repro_mean.py"
    patch = (run_dir / "change.patch").read_text()
    assert "Subject: [PATCH] escalated: the work left when it stopped" in patch
    assert "+    assert mean([2]) == 2" in patch
    pr = (run_dir / "pull_request.md").read_text()
    assert "This run ended escalated: it was not delivered" in pr
    assert "`tests/test_repro_mean.py` | +5 | -0" in pr
    # The report shows the change the patch holds, the work set aside included.
    [patched] = [e for e in events(run_dir, "deliver") if e["what"] == "patch"]
    assert (
        patched["head"] != base
        and "+    assert mean([2]) == 2" in report_of(run_dir)["repository"]["diff"]
    )
    assert "+    assert mean([2]) == 2" in (run_dir / "report.md").read_text()
    failed = f"darkfactory/{run_dir.name}-failed"
    pushed = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    pushes = [e["branch"] for e in events(run_dir, "deliver") if e["what"] == "push"]
    if push_failed:
        assert pushed.split() == [failed, "master"]
        assert git(remote, "show", f"{failed}:tests/test_repro_mean.py") == passing.rstrip()
        assert git(remote, "rev-parse", failed) == patched["head"]
        assert pushes == [failed]
    else:
        assert pushed.split() == ["master"] and pushes == []


def test_a_run_out_of_budget_writes_its_patch_and_pushes_its_failed_branch(
    tmp_path: Path, master_repo: Any
) -> None:
    remote = bare_clone(master_repo.path, tmp_path / "remote.git")
    code, run_dir = run(
        tmp_path,
        bug_ticket(tmp_path, master_repo.path),
        playbook(tmp_path),
        deliver={"push": str(remote), "push_failed": True},
        budget={"max_llm_calls": 2},
    )
    report = report_of(run_dir)
    assert code == 4 and report["status"] == "budget_exhausted", report["reason"]
    assert (run_dir / "change.patch").is_file()
    assert "budget\\_exhausted: it was not delivered" in (run_dir / "pull_request.md").read_text()
    failed = f"darkfactory/{run_dir.name}-failed"
    assert git(remote, "rev-parse", failed) == git(run_dir / "workspace", "rev-parse", "HEAD")
    # Resumable: nothing the stopped phase wrote was committed or set aside.
    assert git(run_dir / "workspace", "log", "--format=%s", "v1.0..HEAD") == ""


# -- uncommitted changes are said everywhere ------------------------------------------------


def test_uncommitted_changes_are_said_on_the_console_in_the_report_and_the_pull_request(
    tmp_path: Path, master_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (master_repo.path / "calc" / "__init__.py").write_text(CALC + "# work in progress\n")
    (master_repo.path / "notes.txt").write_text("untracked\n")
    before = snapshot(master_repo.path)
    code, run_dir = run(tmp_path, bug_ticket(tmp_path, master_repo.path), playbook(tmp_path))
    assert code == 0, report_of(run_dir)["reason"]
    assert snapshot(master_repo.path) == before  # the working tree, byte for byte
    sha = git(master_repo.path, "rev-parse", "v1.0")[:12]
    said = f"runs on v1.0 {sha}; uncommitted changes are not included"
    err = capsys.readouterr().err
    assert f"darkfactory: warning: {master_repo.path}: {said}\n" in err  # even with --quiet
    assert (
        f"> **Note:** Runs on v1.0 {sha}; uncommitted changes are not included"
        in (run_dir / "pull_request.md").read_text()
    )
    assert report_of(run_dir)["repository"]["warnings"] == [said]
    assert f"- **Warning:** {said}" in (run_dir / "report.md").read_text()
    assert f"<strong>Warning:</strong> {said}" in (run_dir / "report.html").read_text()
    assert "work in progress" not in (run_dir / "change.patch").read_text()


def test_a_delivery_that_fails_after_verify_is_resumed_and_only_the_delivery_runs_again(
    tmp_path: Path, master_repo: Any, github: ForgeDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", "tok_revoked")  # the forge answers 401
    deliver = {"push": str(github.remote), "pull_request": pull_request_config(github)}
    code, run_dir = run(
        tmp_path, bug_ticket(tmp_path, master_repo.path), playbook(tmp_path), deliver=deliver
    )
    report = report_of(run_dir)
    assert code == 1 and report["status"] == "failed"
    assert "the change passed verify, but its delivery failed" in report["reason"]
    assert f"darkfactory resume {run_dir.name}" in report["reason"]
    assert "tok_revoked" not in (run_dir / "trace.jsonl").read_text()
    assert github.pulls == []
    calls, verified = report["llm"]["calls"], len(events(run_dir, "verify"))

    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", TOKEN)
    assert main(["resume", run_dir.name, "--out", str(run_dir.parent), "--quiet"]) == 0
    report = report_of(run_dir)
    assert report["status"] == "delivered"
    assert report["llm"]["calls"] == calls  # no model call: only the delivery ran again
    assert len(events(run_dir, "verify")) == verified  # and no test run
    assert (
        len(github.pulls) == 1 and github.pulls[0]["head"]["ref"] == f"darkfactory/{run_dir.name}"
    )
