"""run_command and run_tests through ``tool._run`` with a real RunContext and bwrap sandbox."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from darkfactory.sandbox import ACCEPTANCE_TARGET, open_sandbox
from darkfactory.sandbox.base import Limits, Mount, SandboxSpec
from darkfactory.tools import build_tool
from darkfactory.tools.run_command import RunCommandTool
from darkfactory.tools.run_tests import RunTestsTool
from darkfactory.workspace.context import RunContext

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None and not os.access("/usr/bin/bwrap", os.X_OK),
    reason="bubblewrap is not installed: apt-get install bubblewrap",
)

ACCEPTANCE = "from app import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
UNIT = (
    "from app import double\n\n\ndef test_one():\n    assert double(1) == 2\n\n\n"
    "def test_wrong():\n    assert double(3) == 7\n"
)


class Env:
    """A run-like layout: workspace (with tests/ and a stale acceptance/ copy), the frozen
    acceptance suite outside it, a bwrap sandbox, the tools."""

    def __init__(self, tmp_path: Path, *, with_acceptance_mount: bool = True) -> None:
        self.ws = tmp_path / "workspace"
        self.acceptance = tmp_path / "acceptance"
        for d in (self.ws / "tests", self.acceptance):
            d.mkdir(parents=True)
        (self.ws / "app.py").write_text("def double(x):\n    return 2 * x\n")
        (self.ws / "tests" / "test_app.py").write_text(UNIT)
        (self.acceptance / "test_spec.py").write_text(ACCEPTANCE)
        # A tampered copy in the workspace must not be what "acceptance" runs.
        (self.ws / "acceptance").mkdir()
        (self.ws / "acceptance" / "test_spec.py").write_text("def test_double():\n    pass\n")
        mounts: list[Mount] = []
        if with_acceptance_mount:
            mounts.append(Mount(self.acceptance, ACCEPTANCE_TARGET))
        self.sandbox = open_sandbox(
            "bwrap",
            SandboxSpec(workspace=self.ws, mounts=mounts, limits=Limits(timeout_s=30)),
        )
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ctx = RunContext(
            workspace=self.ws,
            sandbox=self.sandbox,
            test_timeout_s=20,
            on_event=lambda kind, data: self.events.append((kind, data)),
        )
        self.cmd = RunCommandTool(ctx=self.ctx)
        self.tests = RunTestsTool(ctx=self.ctx)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


# -- run_command --------------------------------------------------------------------------
def test_run_command_reports_exit_code_and_output(env: Env) -> None:
    out = env.cmd._run(argv=["python", "-c", "import app; print(app.double(21))"])
    assert out.startswith("exit code: 0\n")
    assert "--- stdout ---\n42" in out
    assert "--- stderr: (empty) ---" in out
    assert "KILLED" not in out
    kind, data = env.events[-1]
    assert kind == "sandbox_exec"
    assert data["argv"] == ["python", "-c", "import app; print(app.double(21))"]
    assert (data["exit_code"], data["killed"]) == (0, None)
    assert data["duration_s"] >= 0


def test_run_command_failure_and_files(env: Env) -> None:
    out = env.cmd._run(argv=["sh", "-c", "echo made > made.txt; echo bad >&2; exit 4"])
    assert out.startswith("exit code: 4\n")
    assert "--- stderr ---\nbad" in out
    assert (env.ws / "made.txt").read_text() == "made\n"
    out = env.cmd._run(argv=["cat", str(env.acceptance / "test_spec.py")])
    assert "No such file" in out  # host paths outside the workspace do not exist inside


def test_run_command_timeout_is_reported(env: Env) -> None:
    out = env.cmd._run(argv=["sleep", "30"], timeout_s=0.5)
    assert "KILLED (timeout)" in out
    assert env.events[-1][1]["killed"] == "timeout"
    out = env.cmd._run(argv=["true"], timeout_s=10_000)
    assert "lowered to the run's maximum of 20s" in out


def test_run_command_refusals(env: Env) -> None:
    assert env.cmd._run(argv=[]).startswith("ERROR: argv is empty")
    assert env.cmd._run(argv=["echo", "a\0b"]).startswith("ERROR:")
    assert env.events == []  # nothing ran


def test_run_command_long_output_is_cut(env: Env) -> None:
    out = env.cmd._run(argv=["python", "-c", "print('\\n'.join(str(i) for i in range(50000)))"])
    assert "characters cut" in out
    assert "\n49999" in out and len(out) < 10_000


# -- run_tests ----------------------------------------------------------------------------
def test_run_tests_default_is_the_unit_tests(env: Env) -> None:
    out = env.tests._run()
    assert out.startswith("pytest tests: 2 tests: 1 passed, 1 failed, 0 errors, 0 skipped")
    assert "FAILED tests/test_app.py::test_wrong" in out
    assert "assert 6 == 7" in out
    assert not list(env.ws.rglob("*.xml"))
    kinds = [k for k, _ in env.events]
    assert kinds == ["sandbox_exec", "test_run"]
    assert env.events[1][1] | {"paths": None} == {
        "tool": "run_tests",
        "paths": None,
        "total": 2,
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 0,
        "collection_error": False,
        "killed": None,
    }


def test_run_tests_acceptance_uses_the_read_only_mount(env: Env) -> None:
    out = env.tests._run(paths=["acceptance"])
    assert "1 tests: 1 passed" in out
    (env.ws / "app.py").write_text("def double(x):\n    return x\n")
    out = env.tests._run(paths=["acceptance"])
    # The tampered workspace copy would pass; the mounted suite fails.
    assert "1 tests: 0 passed, 1 failed" in out
    assert "FAILED test_spec.py::test_double" in out


def test_run_tests_acceptance_without_mount_is_a_workspace_path(tmp_path: Path) -> None:
    env = Env(tmp_path, with_acceptance_mount=False)
    out = env.tests._run(paths=["acceptance"])
    assert "1 tests: 1 passed" in out  # the workspace copy, as nothing else exists


def test_run_tests_single_test_and_refusals(env: Env) -> None:
    out = env.tests._run(paths=["tests/test_app.py::test_one"])
    assert "1 tests: 1 passed" in out
    for bad in ("../acceptance", "/etc", "tests/../../x"):
        assert env.tests._run(paths=[bad]).startswith("ERROR:"), bad
    missing = env.tests._run(paths=["nope"])
    assert missing.startswith("ERROR: 'nope' does not exist in the workspace")


def test_run_tests_reports_collection_errors_and_timeouts(env: Env) -> None:
    (env.ws / "tests" / "test_broken.py").write_text("import missing_dependency_xyz\n")
    out = env.tests._run(paths=["tests"])
    assert "COLLECTION ERROR" in out and "missing_dependency_xyz" in out
    (env.ws / "tests" / "test_broken.py").unlink()
    (env.ws / "tests" / "test_hang.py").write_text(
        "def test_hang():\n    while True:\n        pass\n"
    )
    env.ctx.test_timeout_s = 2
    out = env.tests._run(paths=["tests/test_hang.py"])
    assert "KILLED" in out and "time limit" in out


def test_tools_come_from_the_registry(env: Env) -> None:
    assert isinstance(build_tool("run_command", env.ctx), RunCommandTool)
    assert isinstance(build_tool("run_tests", env.ctx), RunTestsTool)
    assert "no network" in RunCommandTool(ctx=env.ctx).description
