"""A repository's environment: wheels downloaded on the host, installed in bwrap, cached.

Wheels come from the session's own index on 127.0.0.1 (``local_index``: ``six`` 1.16.0
and 1.17.0, and ``dfsdistonly``, which has no wheel); Dark Factory's own environment has
six 1.17.0, so a sandbox that imports 1.16.0 imports what was installed for the project.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import MakeRepo
from dockerd import IMAGE, docker_engine  # noqa: F401  (a fixture)
from pypi_local import SDIST_ONLY, LocalIndex
from runhelp import NEEDS_BWRAP

from darkfactory.config import RepoConfig
from darkfactory.errors import ExitCode
from darkfactory.repo.environment import (
    REPO_DEPS_TARGET,
    RepoEnvironment,
    prepare_environment,
    project_sandbox,
)
from darkfactory.repo.errors import EnvironmentFailed, RepoError
from darkfactory.repo.project import Project, detect_project
from darkfactory.repo.source import clone_into, open_repository
from darkfactory.sandbox import bwrap_problem, open_sandbox
from darkfactory.sandbox.base import Limits, Sandbox, SandboxSpec

LIMITS = Limits(timeout_s=120)
PYPROJECT = """\
[project]
name = "tinyproj"
version = "0.4.0"
dependencies = ["six==1.16.0"]
"""
FILES: dict[str, str | bytes] = {
    "pyproject.toml": PYPROJECT,
    "src/tinyproj/__init__.py": (
        "import importlib.metadata\nimport six\n"
        "VERSION = importlib.metadata.version('tinyproj')\nSIX = six.__version__\n"
    ),
    "tests/test_tiny.py": "import tinyproj\n\ndef test_six():\n    assert tinyproj.SIX == '1.16.0'\n",
}


def prepare(
    project: Project, cache: Path, identity: str = "repo-1", backend: str = "bwrap"
) -> RepoEnvironment:
    return prepare_environment(
        project,
        identity=identity,
        backend=backend,
        limits=LIMITS,
        cache_dir=cache,
        image=IMAGE,
        timeout_s=120,
    )


@pytest.fixture(params=["bwrap", "docker"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
    elif bwrap_problem() is not None:
        pytest.skip(f"bwrap does not work here: {bwrap_problem()}")
    return str(request.param)


@pytest.fixture
def checkout(make_repo: MakeRepo, tmp_path: Path) -> Path:
    repo = make_repo(files=FILES)
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        clone_into(source, tmp_path / "ws", "darkfactory/test")
    return tmp_path / "ws"


@pytest.fixture
def run_sandbox(checkout: Path) -> Iterator[Callable[..., Sandbox]]:
    """``make(env, project, backend)``: a run's sandbox on the checkout, the entry mounted."""
    opened: list[Sandbox] = []

    def make(env: RepoEnvironment, project: Project, backend: str = "bwrap") -> Sandbox:
        spec = SandboxSpec(
            workspace=checkout, mounts=env.mounts(), limits=LIMITS, image=IMAGE, hand_over=True
        )
        inner = open_sandbox(backend, spec)
        opened.append(inner)
        return project_sandbox(inner, project)

    yield make
    for sb in opened:
        sb.close()


def test_cold_then_warm_reuses_the_entry_without_pip(
    checkout: Path,
    tmp_path: Path,
    local_index: LocalIndex,
    run_sandbox: Callable[..., Sandbox],
    backend: str,
) -> None:
    project = detect_project(checkout)
    cache = tmp_path / "cache"
    asked = len(local_index.requested)
    cold = prepare(project, cache, backend=backend)
    assert not cold.cached
    assert cold.installed == ("six 1.16.0", "tinyproj 0.4.0")
    assert cold.requirements == ("six==1.16.0",)
    assert "six-1.16.0-py2.py3-none-any.whl" in local_index.files_requested()
    meta = cold.entry / "meta.json"
    built = meta.stat().st_mtime_ns

    asked = len(local_index.requested)
    warm = prepare(project, cache, backend=backend)
    assert warm.cached and warm.entry == cold.entry and warm.installed == cold.installed
    assert len(local_index.requested) == asked, "the warm setup asked the index again"
    assert meta.stat().st_mtime_ns == built, "the entry was rebuilt"
    assert warm.setup_s < cold.setup_s
    # Only the entry, a lock, what the sandbox's Python said; no build directory left behind.
    assert sorted(p.name for p in cache.iterdir()) == sorted([".locks", ".probes", cold.entry.name])

    sandbox = run_sandbox(warm, project, backend)
    result = sandbox.run(
        [
            sandbox.python,
            "-c",
            "import tinyproj, six; print(tinyproj.SIX, tinyproj.VERSION, six.__file__)",
        ]
    )
    assert result.exit_code == 0, result
    version, own, where = result.stdout.split()
    assert (version, own) == ("1.16.0", "0.4.0")
    assert where.startswith(REPO_DEPS_TARGET + "/")
    # The cache entry is read-only in a run: the code under test cannot poison it.
    result = sandbox.run([sandbox.python, "-c", f"open('{REPO_DEPS_TARGET}/x', 'w')"])
    assert result.exit_code != 0 and "Read-only file system" in result.stderr
    assert not (warm.site / "x").exists()


@NEEDS_BWRAP
def test_each_repository_dependency_set_and_python_has_its_own_entry(
    checkout: Path, tmp_path: Path, local_index: LocalIndex
) -> None:
    project = detect_project(checkout)
    cache = tmp_path / "cache"
    first = prepare(project, cache)
    other_repo = prepare(project, cache, identity="repo-2")
    other_deps = prepare(project.model_copy(update={"requirements": ("six==1.17.0",)}), cache)
    assert len({first.entry, other_repo.entry, other_deps.entry}) == 3
    assert not other_repo.cached and not other_deps.cached
    assert other_deps.installed == ("six 1.17.0", "tinyproj 0.4.0")


@NEEDS_BWRAP
def test_concurrent_runs_build_one_entry(
    checkout: Path, tmp_path: Path, local_index: LocalIndex
) -> None:
    project = detect_project(checkout).model_copy(update={"name": "concurrent"})
    cache = tmp_path / "cache"
    results: list[RepoEnvironment] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(prepare(project, cache))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    before = local_index.files_requested().count("six-1.16.0-py2.py3-none-any.whl")
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r.entry for r in results}) == 1
    assert sorted(r.cached for r in results) == [False, True]
    after = local_index.files_requested().count("six-1.16.0-py2.py3-none-any.whl")
    assert after - before == 1, "the second run downloaded again instead of waiting"


@NEEDS_BWRAP
def test_a_dependency_without_a_wheel_fails_and_builds_nothing(
    checkout: Path, tmp_path: Path, local_index: LocalIndex
) -> None:
    project = detect_project(checkout).model_copy(update={"requirements": (SDIST_ONLY,)})
    cache = tmp_path / "cache"
    with pytest.raises(EnvironmentFailed) as caught:
        prepare(project, cache)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert "could not be downloaded as wheels" in caught.value.message
    assert (
        caught.value.hint is not None
        and "no source distribution is ever built" in caught.value.hint
    )
    assert not local_index.sdist_marker.exists()
    assert sorted(p.name for p in cache.iterdir()) == [".locks", ".probes"]  # no entry


@NEEDS_BWRAP
def test_a_developer_dependency_without_a_wheel_is_left_out(
    checkout: Path, tmp_path: Path, local_index: LocalIndex
) -> None:
    project = detect_project(checkout).model_copy(update={"optional": (SDIST_ONLY,)})
    env = prepare(project, tmp_path / "cache")
    assert env.dropped == (SDIST_ONLY,)
    assert env.installed == ("six 1.16.0", "tinyproj 0.4.0")
    assert not local_index.sdist_marker.exists()


@NEEDS_BWRAP
def test_a_project_without_dependencies(checkout: Path, tmp_path: Path) -> None:
    project = detect_project(checkout).model_copy(update={"requirements": ()})
    env = prepare(project, tmp_path / "cache")
    assert env.installed == ("tinyproj 0.4.0",) and env.requirements == ()


@NEEDS_BWRAP
def test_the_python_the_repository_asks_for_is_checked(checkout: Path, tmp_path: Path) -> None:
    project = detect_project(checkout).model_copy(update={"python": "2.7"})
    with pytest.raises(RepoError, match=r"asks for Python 2\.7"):
        prepare(project, tmp_path / "cache")


@NEEDS_BWRAP
def test_a_warm_entry_starts_no_sandbox_and_another_interpreter_misses(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bwrap runs through a shim that logs each sandbox it starts; the sandbox's Python
    (this process's ``sys.executable``) is a link that is then pointed at another one."""
    shim = tmp_path / "shim" / "bwrap"
    calls = tmp_path / "bwrap-calls"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec /usr/bin/bwrap "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    python = tmp_path / "py" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(os.path.realpath(sys.executable))
    monkeypatch.setattr(sys, "executable", str(python))

    def sandboxes() -> int:
        lines = calls.read_text().splitlines() if calls.exists() else []
        return sum("--unshare-all" in line for line in lines)

    project = detect_project(checkout).model_copy(update={"requirements": ()})
    cache = tmp_path / "cache"
    cold = prepare(project, cache)
    assert not cold.cached and sandboxes() == 1  # the probe (no dependency to install)
    warm = prepare(project, cache)
    assert warm.cached and warm.entry == cold.entry and warm.key == cold.key
    assert sandboxes() == 1, "the warm setup started a sandbox"

    # Another interpreter at the same path: what was remembered of the first is not used.
    other = "/usr/bin/python3.11"
    if not os.access(other, os.X_OK) or os.path.samefile(other, python):
        pytest.skip(f"no second interpreter at {other}")
    python.unlink()
    python.symlink_to(other)
    moved = prepare(project, cache)
    assert sandboxes() == 2, "the sandbox's new Python was not asked"
    version = subprocess.run([other, "--version"], capture_output=True, text=True).stdout
    if version.split()[-1] != platform.python_version():  # 3.11.2 here, against 3.11.7
        assert moved.key != cold.key and not moved.cached  # an entry of its own
    else:
        assert moved.key == cold.key and moved.cached
    again = prepare(project, cache)
    assert again.cached and again.key == moved.key and sandboxes() == 2
    assert len(list((cache / ".probes").iterdir())) == 2
