"""The repository's suite at the base commit, in bwrap, and the suite at the end compared to it.

A tiny real project (a ``src/`` package, one dependency from ``local_index``, tests that
pass, fail, error and skip) is cloned, its environment prepared and its suite run by the
verdict runner; then the workspace changes as a run would change it and runs again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PLUGIN, MakeRepo
from pypi_local import LocalIndex
from runhelp import NEEDS_BWRAP

from darkfactory.config import RepoConfig
from darkfactory.repo.baseline import BASELINE_FILE, Baseline, compare, run_baseline
from darkfactory.repo.environment import prepare_environment, project_sandbox, run_setup
from darkfactory.repo.project import detect_project
from darkfactory.repo.source import clone_into, open_repository
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Limits, Sandbox, SandboxSpec

LIMITS = Limits(timeout_s=120)
FILES: dict[str, str | bytes] = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "1.0"\ndependencies = ["six==1.16.0"]\n',
    "src/calc/__init__.py": "def add(a, b):\n    return a + b\n\ndef div(a, b):\n    return a / b\n",
    "tests/test_calc.py": (
        "import pytest\nimport six\nfrom calc import add, div\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n"
        "def test_six_is_the_projects():\n    assert six.__version__ == '1.16.0'\n\n"
        "def test_div_by_zero_is_none():  # a known bug at base\n    assert div(1, 0) is None\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture breaks')\n\n"
        "def test_uses_broken(broken):\n    pass\n\n"
        "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\ndef test_param(n):\n    assert add(n, 0) == n\n"
    ),
    "tests/test_unit.py": (
        "import unittest\nfrom calc import add\n\n"
        "class AddTest(unittest.TestCase):\n    def test_zero(self):\n        self.assertEqual(add(0, 0), 0)\n"
    ),
}
BASE_OUTCOMES = {
    "tests/test_calc.py::test_add": "passed",
    "tests/test_calc.py::test_six_is_the_projects": "passed",
    "tests/test_calc.py::test_div_by_zero_is_none": "failed",
    "tests/test_calc.py::test_uses_broken": "error",
    "tests/test_calc.py::test_skipped": "skipped",
    "tests/test_calc.py::test_param[1]": "passed",
    "tests/test_calc.py::test_param[2]": "passed",
    "tests/test_unit.py::AddTest::test_zero": "passed",
}


@pytest.fixture
def opened(
    make_repo: MakeRepo, tmp_path: Path, local_index: LocalIndex
) -> Iterator[tuple[Path, Sandbox, str]]:
    """(the workspace, the run's sandbox with the project importable, the base sha)."""
    repo = make_repo(files=FILES)
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        sha = clone_into(source, tmp_path / "ws", "darkfactory/baseline-test")
        identity = source.identity
    project = detect_project(tmp_path / "ws")
    env = prepare_environment(
        project,
        identity=identity,
        backend="bwrap",
        limits=LIMITS,
        cache_dir=tmp_path / "cache",
    )
    inner = open_sandbox(
        "bwrap", SandboxSpec(workspace=tmp_path / "ws", mounts=env.mounts(), limits=LIMITS)
    )
    yield tmp_path / "ws", project_sandbox(inner, project), sha
    inner.close()


@NEEDS_BWRAP
def test_the_baseline_records_every_outcome_and_compares(
    opened: tuple[Path, Sandbox, str], tmp_path: Path
) -> None:
    ws, sandbox, sha = opened
    project = detect_project(ws)
    base = run_baseline(sandbox, project, commit=sha, timeout=120)
    assert base.outcomes == BASE_OUTCOMES
    assert base.commit == sha and base.test_command == ("python", "-m", "pytest", "-q")
    assert base.collection_error is None and base.killed is None
    assert (
        "assert None is None" not in base.messages["tests/test_calc.py::test_div_by_zero_is_none"]
    )
    assert "ZeroDivisionError" in base.messages["tests/test_calc.py::test_div_by_zero_is_none"]
    assert base.counts() == {"passed": 5, "failed": 1, "error": 1, "skipped": 1}

    path = base.save(tmp_path)
    assert path == tmp_path / BASELINE_FILE
    assert json.loads(path.read_text())["outcomes"] == BASE_OUTCOMES
    assert Baseline.load(path) == base

    # A run fixes the known bug, breaks add() for negatives, drops a test and adds two.
    (ws / "src/calc/__init__.py").write_text(
        "def add(a, b):\n    return a + b if a >= 0 else 0\n\n"
        "def div(a, b):\n    return None if b == 0 else a / b\n"
    )
    calc = (ws / "tests/test_calc.py").read_text()
    calc = calc.replace("assert add(2, 3) == 5", "assert add(-2, 3) == 1")
    calc = calc.replace("def test_param(n):\n    assert add(n, 0) == n\n", "")
    calc = calc.replace("@pytest.mark.parametrize('n', [1, 2])\n", "")
    (ws / "tests/test_calc.py").write_text(calc)
    (ws / "tests/test_new.py").write_text(
        "from calc import div\n\ndef test_div():\n    assert div(4, 2) == 2\n\n"
        "def test_div_zero():\n    assert div(1, 0) is None\n"
    )
    final = run_baseline(sandbox, project, commit="final", timeout=120)
    result = compare(base, final)
    assert result.pass_to_pass == [
        "tests/test_calc.py::test_six_is_the_projects",
        "tests/test_unit.py::AddTest::test_zero",
    ]
    assert result.regressions == {
        "tests/test_calc.py::test_add": "failed",
        "tests/test_calc.py::test_param[1]": "missing",
        "tests/test_calc.py::test_param[2]": "missing",
    }
    assert result.failing_at_base == {
        "tests/test_calc.py::test_div_by_zero_is_none": "passed",
        "tests/test_calc.py::test_uses_broken": "error",
    }
    assert result.new_tests == {
        "tests/test_new.py::test_div": "passed",
        "tests/test_new.py::test_div_zero": "passed",
    }
    assert result.skipped_at_base == ["tests/test_calc.py::test_skipped"]
    assert not result.ok
    assert "3 regressions" in result.summary()
    assert "REGRESSION tests/test_calc.py::test_param[1]: missing" in result.summary()


@NEEDS_BWRAP
def test_setup_commands_and_a_test_command_of_the_repository(
    opened: tuple[Path, Sandbox, str],
) -> None:
    ws, sandbox, sha = opened
    (ws / ".darkfactory.yaml").write_text(
        "setup:\n  - [python, -c, \"open('data.txt', 'w').write('42')\"]\n"
        "test_command: [python, -m, pytest, -q, tests/test_data.py]\n"
    )
    (ws / "tests/test_data.py").write_text(
        "def test_data():\n    assert open('data.txt').read() == '42'\n"
    )
    project = detect_project(ws)
    done = run_setup(sandbox, project, timeout_s=60)
    assert [r.exit_code for r in done] == [0]
    base = run_baseline(sandbox, project, commit=sha, timeout=120)
    assert base.outcomes == {"tests/test_data.py::test_data": "passed"}
    assert base.test_command == ("python", "-m", "pytest", "-q", "tests/test_data.py")


@NEEDS_BWRAP
def test_a_failing_setup_command_stops_the_rest(opened: tuple[Path, Sandbox, str]) -> None:
    ws, sandbox, _ = opened
    (ws / ".darkfactory.yaml").write_text(
        "setup:\n  - [python, -c, 'raise SystemExit(3)']\n  - [python, -c, 'print(1)']\n"
    )
    done = run_setup(sandbox, detect_project(ws), timeout_s=60)
    assert [r.exit_code for r in done] == [3]


def test_compare_without_a_sandbox() -> None:
    base = Baseline(
        commit="a",
        test_command=("pytest",),
        outcomes={"t::a": "passed", "t::b": "failed", "t::c": "skipped"},
    )
    same = Baseline(commit="b", test_command=("pytest",), outcomes=dict(base.outcomes))
    result = compare(base, same)
    assert (
        result.ok
        and result.pass_to_pass == ["t::a"]
        and result.failing_at_base == {"t::b": "failed"}
    )
    broken = base.model_copy(update={"outcomes": {"t::a": "skipped"}, "collection_error": "x"})
    result = compare(base, broken)
    assert result.regressions == {"t::a": "skipped"} and result.final_incomplete and not result.ok
    new_failure = base.model_copy(update={"outcomes": {**base.outcomes, "t::d": "failed"}})
    assert not compare(base, new_failure).ok


@NEEDS_BWRAP
def test_the_repositorys_pytest_plugins_are_loaded(
    make_repo: MakeRepo, tmp_path: Path, plugin_index: LocalIndex
) -> None:
    repo = make_repo(
        files={
            "requirements-test.txt": f"{PLUGIN}==1.0\npytest>=7\n",
            "setup.py": "",
            "tests/test_fixture.py": "def test_uses_plugin(dfmark):\n    assert dfmark == 'plugin'\n",
        }
    )
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        sha = clone_into(source, tmp_path / "ws", "darkfactory/plugins")
    project = detect_project(tmp_path / "ws")
    assert project.requirements == (f"{PLUGIN}==1.0",)  # pytest is the sandbox's own
    env = prepare_environment(
        project, identity="plugins", backend="bwrap", limits=LIMITS, cache_dir=tmp_path / "c"
    )
    assert env.pytest_plugins == ("pytest_dfmark",)
    inner = open_sandbox(
        "bwrap", SandboxSpec(workspace=tmp_path / "ws", mounts=env.mounts(), limits=LIMITS)
    )
    try:
        sandbox = project_sandbox(inner, project)
        without = run_baseline(sandbox, project, commit=sha, timeout=120)
        assert without.outcomes == {"tests/test_fixture.py::test_uses_plugin": "error"}
        base = run_baseline(sandbox, project, commit=sha, timeout=120, plugins=env.pytest_plugins)
        assert base.outcomes == {"tests/test_fixture.py::test_uses_plugin": "passed"}
    finally:
        inner.close()
