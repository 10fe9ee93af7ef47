"""run_pytest in a real sandbox: outcomes come from the runner's report, problems are explained."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from darkfactory.sandbox import open_sandbox, with_pythonpath
from darkfactory.sandbox.base import Limits, Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.testrun import TestRun, run_pytest

HAVE_BWRAP = shutil.which("bwrap") is not None or os.access("/usr/bin/bwrap", os.X_OK)
BACKENDS = [
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(
            not HAVE_BWRAP, reason="bubblewrap is not installed: apt-get install bubblewrap"
        ),
    ),
    "local",
]

MIXED = """
import pytest


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_pass():
    assert 1 + 1 == 2


def test_fail():
    x = 3
    assert x == 4, "x should be four"


def test_error(broken):
    pass


@pytest.mark.skip(reason="not today")
def test_skip():
    pass


class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        assert n == 1
"""


class Env:
    def __init__(self, root: Path, backend: str, mounts: list[Mount] | None = None) -> None:
        self.ws = root / "ws"
        self.ws.mkdir()
        self.sb: Sandbox = open_sandbox(
            backend,
            SandboxSpec(
                workspace=self.ws,
                mounts=list(mounts or []),
                limits=Limits(timeout_s=60),
            ),
        )

    def write(self, rel: str, text: str) -> None:
        path = self.ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def run(self, targets: list[str], timeout: float = 60, rootdir: str | None = None) -> TestRun:
        return run_pytest(self.sb, targets, timeout=timeout, rootdir=rootdir)


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    return Env(tmp_path, request.param)


def test_exact_outcomes(env: Env) -> None:
    env.write("tests/test_mixed.py", MIXED)
    run = env.run(["tests"])
    assert {o.nodeid: o.outcome for o in run.outcomes} == {
        "tests/test_mixed.py::test_pass": "passed",
        "tests/test_mixed.py::test_fail": "failed",
        "tests/test_mixed.py::test_error": "error",
        "tests/test_mixed.py::test_skip": "skipped",
        "tests/test_mixed.py::TestGroup::test_param[1]": "passed",
        "tests/test_mixed.py::TestGroup::test_param[2]": "failed",
    }
    assert (run.total, run.passed, run.failed, run.errors, run.skipped) == (6, 2, 2, 1, 1)
    assert run.collection_error is None and run.killed is None and not run.ok
    by_name = {o.name: o for o in run.outcomes}
    assert by_name["test_fail"].file == "tests/test_mixed.py"
    assert "x should be four" in by_name["test_fail"].message
    assert "assert 3 == 4" in by_name["test_fail"].message
    assert "fixture broke" in by_name["test_error"].message
    assert by_name["test_skip"].message == "not today"
    assert by_name["test_pass"].message == ""
    summary = run.summary(4000)
    assert summary.startswith("6 tests: 2 passed, 2 failed, 1 errors, 1 skipped")
    assert "FAILED tests/test_mixed.py::test_fail" in summary
    assert "ERROR tests/test_mixed.py::test_error" in summary
    assert "test_pass" not in summary
    assert not list(env.ws.rglob("*.xml"))  # nothing is written into the workspace


SET_IDS = """
import os
import sys

import pytest

NAMES = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"}


@pytest.mark.parametrize("name", list(NAMES))
def test_named(name):
    assert name


def test_the_sandbox_path_is_on_sys_path_and_passed_on():
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] in sys.path
"""


def test_ids_built_from_a_set_are_the_same_in_every_run(env: Env) -> None:
    # -I ignores PYTHONHASHSEED: the runner re-executes itself with a fixed seed, so the
    # order of a set of strings (and so the ids) is the same in every process.
    env.write("tests/test_sets.py", SET_IDS)
    env.sb = with_pythonpath(env.sb, [env.sb.workdir])
    runs = [env.run(["tests"]) for _ in range(3)]
    ids = [[o.nodeid for o in run.outcomes] for run in runs]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 10
    assert all(run.ok for run in runs), runs[0].summary()


def test_coverage_is_measured_in_the_same_run(env: Env) -> None:
    env.write("pkg/__init__.py", "def f(x):\n    if x:\n        return 1\n    return 2\n")
    env.write("tests/test_f.py", "from pkg import f\n\n\ndef test_f():\n    assert f(1) == 1\n")
    env.sb = with_pythonpath(env.sb, [env.sb.workdir])
    run = run_pytest(env.sb, ["tests"], timeout=60, coverage={"source_pkgs": ["pkg"]})
    assert run.ok and run.coverage is not None
    assert run.coverage["files"] == {
        "pkg/__init__.py": {"statements": 4, "covered": 3, "missing": [4]}
    }
    assert run_pytest(env.sb, ["tests"], timeout=60).coverage is None


def test_all_passing_is_ok(env: Env) -> None:
    env.write("tests/test_ok.py", "def test_a():\n    assert True\n")
    run = env.run(["tests"])
    assert run.ok and run.exec.exit_code == 0 and run.total == 1


def test_import_error_is_a_collection_error(env: Env) -> None:
    env.write("tests/test_ok.py", "def test_a():\n    assert True\n")
    env.write("tests/test_broken.py", "import no_such_module_xyz\n\ndef test_b():\n    pass\n")
    run = env.run(["tests"])
    assert run.collection_error is not None
    assert "no_such_module_xyz" in run.collection_error
    assert "tests/test_broken.py" in run.collection_error
    assert run.exec.exit_code == 2
    assert run.outcomes == []
    assert "COLLECTION ERROR" in run.summary()


def test_missing_path_and_no_tests(env: Env) -> None:
    run = env.run(["nowhere"])
    assert run.collection_error is not None and "nowhere" in run.collection_error
    env.write("tests/test_empty.py", "X = 1\n")
    run = env.run(["tests"])
    assert run.collection_error is not None and "no tests" in run.collection_error


def test_timeout_is_reported_not_crashed(env: Env) -> None:
    env.write("tests/test_ok.py", "def test_a():\n    assert True\n")
    env.write("tests/test_slow.py", "import time\n\ndef test_hang():\n    time.sleep(60)\n")
    run = env.run(["tests"], timeout=3)
    assert run.killed == "timeout"
    assert run.outcomes == []
    assert run.collection_error is None
    summary = run.summary()
    assert "KILLED" in summary and "time limit of 3s" in summary


def test_selected_test_and_summary_limit(env: Env) -> None:
    env.write("tests/test_mixed.py", MIXED)
    run = env.run(["tests/test_mixed.py::test_fail"])
    assert [o.nodeid for o in run.outcomes] == ["tests/test_mixed.py::test_fail"]
    many = "".join(f"def test_{i}():\n    assert {i} == -1, 'x' * 500\n\n" for i in range(30))
    env.write("tests/test_many.py", many)
    run = env.run(["tests/test_many.py"])
    assert run.failed == 30
    short = run.summary(1500)
    assert len(short) <= 1500
    assert "more failing tests not shown" in short


def test_acceptance_suite_from_a_read_only_mount(tmp_path: Path) -> None:
    acc = tmp_path / "acc"
    acc.mkdir()
    (acc / "test_spec.py").write_text(
        "from app import double\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    backend = "bwrap" if HAVE_BWRAP else "local"
    env = Env(tmp_path, backend, mounts=[Mount(acc, "/acceptance")])
    env.write("app.py", "def double(x):\n    return 2 * x\n")  # importable via PYTHONPATH
    run = env.run([env.sb.path_of("/acceptance")], rootdir=env.sb.path_of("/acceptance"))
    assert [(o.nodeid, o.outcome) for o in run.outcomes] == [
        ("test_spec.py::test_double", "passed")
    ]
