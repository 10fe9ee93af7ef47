"""The deploy command imports nothing a model wrote and gets only the variables listed.

``deploy.command`` runs on the host, so a model that writes ``twine.py`` (here
``dfprobe_deploy.py``, a module that exists nowhere else) would have it imported by
``python3 -m twine`` if the command ran in the workspace. It runs instead in a temporary
export of the delivered commit, with ``PYTHONSAFEPATH=1`` and an environment of ``PATH``,
``HOME``, ``LANG``, ``LC_*`` and ``deploy.env``; ``--yes`` never approves it. The unit tests
drive ``darkfactory.engine.deploy`` on a repository in a temporary directory, the end-to-end ones
``darkfactory run`` with the scripted model (a test tool, not AI).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.config import load_config
from darkfactory.engine import deploy
from darkfactory.errors import ConfigError
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace.rundir import stored_state

if TYPE_CHECKING:
    from conftest import Planted  # tests/security/conftest.py

MODULE = "dfprobe_deploy"
PROBE_VAR = "DF_DEPLOY_PROBE"
PROBE_VALUE = "probe-value-4711"

#: What the deploy command sees: its directory, its environment's names, the files there,
#: and whether ``python -m dfprobe_deploy`` run from there found the model's module.
PROBE = f"""
import json, os, subprocess, sys
m = subprocess.run([sys.executable, "-m", {MODULE!r}], capture_output=True, text=True)
print(json.dumps({{
    "cwd": os.getcwd(),
    "keys": sorted(os.environ),
    "safepath": os.environ.get("PYTHONSAFEPATH"),
    "probe_ok": os.environ.get({PROBE_VAR!r}) == {PROBE_VALUE!r},
    "probe_value": os.environ.get({PROBE_VAR!r}),
    "files": sorted(os.listdir(".")),
    "m_exit": m.returncode,
    "m_stderr": m.stderr[-300:],
}}))
"""


def hostile_module(marker: Path) -> str:
    """The model's ``dfprobe_deploy.py``: proof of import, and the planted token printed."""
    return (
        "import os, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "print('TOKEN', os.environ.get('DF_SECURITY_TEST_TOKEN'))\n"
    )


def allowed(key: str, listed: tuple[str, ...] = ()) -> bool:
    return key in {"PATH", "HOME", "LANG", "PYTHONSAFEPATH", *listed} or key.startswith("LC_")


def probe_output(text: str) -> dict[str, Any]:
    line = next(ln for ln in text.splitlines() if ln.startswith("{"))
    data: dict[str, Any] = json.loads(line)
    return data


@pytest.fixture
def repo(tmp_path: Path, planted: Planted) -> Path:
    """A committed workspace holding the hostile module, an executable named like a tool, an
    ignored file, and an uncommitted one."""
    ws = tmp_path / "ws"
    gitrepo.init(ws)
    (ws / f"{MODULE}.py").write_text(hostile_module(planted.marker))
    tool = ws / "dfprobe-tool"
    tool.write_text(f"#!/bin/sh\ntouch {planted.marker}\n")
    tool.chmod(0o755)
    (ws / ".gitignore").write_text("ignored.txt\n")
    (ws / "ignored.txt").write_text("not tracked\n")
    (ws / "app").mkdir()
    (ws / "app" / "main.py").write_text("print('app')\n")
    assert gitrepo.commit_all(ws, "the project")
    (ws / "late.py").write_text("written after the commit\n")
    return ws


# -- darkfactory.engine.deploy on a repository --------------------------------------------------
def test_the_command_runs_in_a_fresh_export_with_only_the_listed_variables(
    repo: Path, planted: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROBE_VAR, PROBE_VALUE)
    monkeypatch.setenv("PYTHONPATH", str(repo))  # the user's: not passed unless listed
    result = deploy.run(
        [sys.executable, "-c", PROBE],
        repo=repo,
        commit=gitrepo.head(repo),
        env_names=[PROBE_VAR],
        timeout_s=60,
    )
    assert result.ok, result.output
    seen = probe_output(result.output)
    cwd = Path(seen["cwd"])
    assert cwd.name == deploy.EXPORT_NAME and not cwd.is_relative_to(repo)
    assert not cwd.exists() and not cwd.parent.exists()  # removed afterwards
    assert seen["files"] == sorted([".gitignore", "app", "dfprobe-tool", f"{MODULE}.py"])
    assert seen["safepath"] == "1"
    assert [k for k in seen["keys"] if not allowed(k, (PROBE_VAR,))] == []
    assert "DF_SECURITY_TEST_TOKEN" not in seen["keys"] and "PYTHONPATH" not in seen["keys"]
    # The listed variable got there, and its value is redacted in the output kept.
    assert seen["probe_ok"] is True and seen["probe_value"] == "[redacted]"
    assert seen["m_exit"] == 1 and f"No module named {MODULE}" in seen["m_stderr"]
    planted.assert_marker_absent()


def test_python_dash_m_does_not_import_the_models_module(repo: Path, planted: Planted) -> None:
    result = deploy.run(
        [sys.executable, "-m", MODULE], repo=repo, commit=gitrepo.head(repo), timeout_s=60
    )
    assert not result.ok and result.exit_code == 1
    assert f"No module named {MODULE}" in result.output
    assert planted.env_value not in result.output
    planted.assert_marker_absent()


def test_a_relative_path_entry_finds_no_program_in_the_export(
    repo: Path, planted: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([".", "", os.environ["PATH"]]))
    result = deploy.run(["dfprobe-tool"], repo=repo, commit=gitrepo.head(repo), timeout_s=60)
    assert not result.ok and result.exit_code is None
    assert "No such file or directory" in result.output
    planted.assert_marker_absent()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../home"])
def test_a_link_out_of_the_commit_fails_the_deploy_before_it_runs(
    repo: Path, planted: Planted, target: str
) -> None:
    (repo / "leak").symlink_to(target)
    assert gitrepo.commit_all(repo, "a link out")
    touch = [sys.executable, "-c", f"open({str(planted.marker)!r}, 'w')"]
    result = deploy.run(touch, repo=repo, commit=gitrepo.head(repo), timeout_s=60)
    assert not result.ok and result.exit_code is None
    assert "could not be exported for the deploy" in result.output
    assert "leak" in result.output
    planted.assert_marker_absent()


def test_deploy_env_takes_names_only(tmp_path: Path) -> None:
    config = config_with(tmp_path, deploy={"command": ["true"], "env": ["TWINE_PASSWORD"]})
    assert load_config(config).factory.deploy.env == ["TWINE_PASSWORD"]
    for bad in ("TWINE_PASSWORD=hunter2", "1ST", "A B", "$HOME"):
        config = config_with(tmp_path / bad.replace("/", "_"), deploy={"env": [bad]})
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        text = str(caught.value)
        assert "factory.yaml" in text and "deploy.env.0" in text, text
        assert "is not an environment variable name: list names only" in text, text


# -- end to end ---------------------------------------------------------------------------
def with_hostile_module(marker: Path) -> dict[str, Any]:
    """The example playbook; the developer also writes ``dfprobe_deploy.py``."""
    book = example_playbook()
    developer = book["roles"]["developer"]
    developer.insert(
        1,
        {"tool": "write_file", "args": {"path": f"{MODULE}.py", "content": hostile_module(marker)}},
    )
    return book


@NEEDS_BWRAP
@pytest.mark.e2e
def test_a_deploy_by_python_dash_m_never_imports_the_models_module(
    tmp_path: Path, planted: Planted
) -> None:
    config = config_with(
        tmp_path,
        checkpoints={"deploy_approval": "auto"},
        deploy={"command": [sys.executable, "-m", MODULE]},
    )
    out = tmp_path / "runs"
    assert run_spec(out, with_hostile_module(planted.marker), config=config) == 1
    run_dir = only_run(out)
    r = report_of(run_dir)
    assert r["status"] == "failed"
    assert r["reason"].startswith("the deploy command failed: exit code 1"), r["reason"]
    (event,) = events(run_dir, "deploy")
    assert f"No module named {MODULE}" in event["output"]
    assert event["commit"] == r["deploy"]["commit"] == gitrepo.head(run_dir / "workspace")
    planted.assert_marker_absent()
    planted.assert_absent(run_dir)


@NEEDS_BWRAP
@pytest.mark.e2e
def test_the_deploy_sees_an_export_and_only_the_listed_variables(
    tmp_path: Path, planted: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROBE_VAR, PROBE_VALUE)
    config = config_with(
        tmp_path,
        checkpoints={"deploy_approval": "auto"},
        deploy={"command": [sys.executable, "-c", PROBE], "env": [PROBE_VAR]},
    )
    out = tmp_path / "runs"
    assert run_spec(out, with_hostile_module(planted.marker), config=config) == 0
    run_dir = only_run(out)
    assert report_of(run_dir)["status"] == "delivered"
    (event,) = events(run_dir, "deploy")
    seen = probe_output(event["output"])
    cwd = Path(seen["cwd"])
    assert not cwd.is_relative_to(run_dir) and not cwd.parent.exists()
    assert {"wordcount.py", f"{MODULE}.py", "acceptance"} <= set(seen["files"])
    assert seen["safepath"] == "1" and seen["probe_ok"] is True
    assert [k for k in seen["keys"] if not allowed(k, (PROBE_VAR,))] == []
    assert seen["m_exit"] == 1 and f"No module named {MODULE}" in seen["m_stderr"]
    assert event["env"] == ["PATH", "HOME", "LANG", "LC_*", PROBE_VAR]
    planted.assert_marker_absent()
    planted.assert_absent(run_dir)


@NEEDS_BWRAP
@pytest.mark.e2e
def test_yes_does_not_approve_the_deploy(tmp_path: Path, planted: Planted) -> None:
    deployed = tmp_path / "deployed.txt"
    config = config_with(
        tmp_path,
        checkpoints={"spec_approval": "ask", "output_review": "ask", "deploy_approval": "ask"},
        deploy={"command": [sys.executable, "-c", f"open({str(deployed)!r}, 'w')"]},
    )
    out = tmp_path / "runs"
    assert run_spec(out, EXAMPLE_PLAYBOOK, "--yes", config=config) == 3
    run_dir = only_run(out)
    r = report_of(run_dir)
    assert r["status"] == "awaiting_approval"
    assert [(c["checkpoint"], c["by"]) for c in r["checkpoints"]] == [
        ("spec_approval", "--yes"),
        ("output_review", "--yes"),
    ]
    assert ((stored_state(run_dir) or {}).get("pending_checkpoint") or {}).get(
        "checkpoint"
    ) == "deploy_approval"
    assert [e["checkpoint"] for e in events(run_dir, "awaiting_approval")] == ["deploy_approval"]
    assert not deployed.exists()
    # A person's approval deploys it.
    assert main(["approve", run_dir.name, "--out", str(out), "--quiet"]) == 0
    assert deployed.exists()
    assert report_of(run_dir)["checkpoints"][-1]["checkpoint"] == "deploy_approval"
    planted.assert_absent(run_dir)
