"""A repository's environment setup on a cold and on a warm cache: `darkfactory/repo/environment.py`.

    python benchmarks/repo_env.py [--repo PATH] [--runs 5] [--backend bwrap] [--pip-cache]

The repository is ``--repo`` (any local git repository with a Python project), else a
small real project made here in a temporary git repository: a ``src/`` package and its
tests, depending on real packages from your package index (``--requirements``; the
default is requests, python-dateutil and attrs, with pytest-mock and hypothesis as test
extras: ten wheels). Each run goes the product's way: ``open_repository``,
``clone_into``, ``detect_project``, then ``prepare_environment``:

* cold: an empty environment cache (a new ``repo.cache_dir``): wheels downloaded by the
  host's pip (with ``PIP_NO_CACHE_DIR=1`` unless ``--pip-cache``: pip's own HTTP cache
  would make a cold setup partly warm) and installed in the sandbox;
* warm: the same repository again on the cache the cold run filled, as a second ticket
  on it starts.

Prints a Markdown table of medians (and the range) and the warm/cold ratio; the target
is a warm setup at most 20% of the cold one. The last warm environment then runs the
repository's suite at its base commit (``run_baseline``) to show it works.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from darkfactory.config import RepoConfig  # noqa: E402
from darkfactory.repo.baseline import run_baseline  # noqa: E402
from darkfactory.repo.environment import (  # noqa: E402
    RepoEnvironment,
    prepare_environment,
    project_sandbox,
)
from darkfactory.repo.project import Project, detect_project  # noqa: E402
from darkfactory.repo.source import clone_into, open_repository  # noqa: E402
from darkfactory.sandbox import open_sandbox  # noqa: E402
from darkfactory.sandbox.base import Limits, SandboxSpec  # noqa: E402

REQUIREMENTS = ["requests>=2.31", "python-dateutil>=2.8", "attrs>=23"]
TEST_EXTRAS = ["pytest-mock>=3", "hypothesis>=6"]
LIMITS = Limits(timeout_s=600, memory_mb=2048)


def sample_repo(root: Path, requirements: list[str], extras: list[str]) -> Path:
    """A small real project in a new git repository under ``root``."""
    repo = root / "dates-lib"
    files = {
        "pyproject.toml": (
            '[project]\nname = "dates-lib"\nversion = "0.1.0"\n'
            f"dependencies = {requirements!r}\n"
            f"[project.optional-dependencies]\ntest = {extras!r}\n"
        ).replace("'", '"'),
        "src/dates_lib/__init__.py": (
            "from dateutil import parser\n\n\n"
            "def year_of(text: str) -> int:\n    return parser.parse(text).year\n"
        ),
        "tests/test_dates.py": (
            "from dates_lib import year_of\n\n\n"
            "def test_year():\n    assert year_of('2024-03-01') == 2024\n\n\n"
            "def test_mocker(mocker):\n    fake = mocker.Mock(return_value=1)\n"
            "    assert fake() == 1\n"
        ),
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "v0.1"]):
        subprocess.run(["git", *argv], cwd=repo, env=env, check=True)
    return repo


def checkout(location: str, work: Path, n: int) -> tuple[Project, str, Path, str]:
    """(project, identity, workspace, base sha) of a fresh clone, as a run makes one."""
    with open_repository(location, None, limits=RepoConfig()) as source:
        ws = work / f"ws-{n}"
        sha = clone_into(source, ws, f"darkfactory/bench-{n}")
        return detect_project(ws), source.identity, ws, sha


def setup(project: Project, identity: str, cache: Path, backend: str) -> RepoEnvironment:
    return prepare_environment(
        project,
        identity=identity,
        backend=backend,
        limits=LIMITS,
        cache_dir=cache,
        timeout_s=600,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", help="a local git repository (default: a sample project)")
    p.add_argument("--runs", type=int, default=5, help="cold and warm setups each (median)")
    p.add_argument("--backend", default="bwrap", help="sandbox backend (default bwrap)")
    p.add_argument("--requirements", nargs="*", help="the sample's dependencies")
    p.add_argument("--pip-cache", action="store_true", help="let pip use its HTTP cache")
    args = p.parse_args()
    if not args.pip_cache:
        os.environ["PIP_NO_CACHE_DIR"] = "1"
    started = time.monotonic()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="df-repo-env-") as tmp:
        work = Path(tmp)
        requirements = args.requirements if args.requirements is not None else REQUIREMENTS
        location = args.repo or str(sample_repo(work, requirements, TEST_EXTRAS))
        cold: list[float] = []
        warm: list[float] = []
        last: RepoEnvironment | None = None
        for n in range(args.runs):
            project, identity, _, _ = checkout(location, work, n)
            cache = work / f"cache-{n}"
            env = setup(project, identity, cache, args.backend)
            assert not env.cached, "a new cache directory was not cold"
            cold.append(env.setup_s)
            again = setup(project, identity, cache, args.backend)
            assert again.cached, "the second setup did not reuse the cache"
            warm.append(again.setup_s)
            last = again
        assert last is not None
        project, identity, ws, sha = checkout(location, work, args.runs)
        spec = SandboxSpec(workspace=ws, mounts=last.mounts(), limits=LIMITS, hand_over=True)
        inner = open_sandbox(args.backend, spec)
        try:
            base = run_baseline(
                project_sandbox(inner, project),
                project,
                commit=sha,
                timeout=600,
                plugins=last.pytest_plugins,
            )
        finally:
            inner.close()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    mc, mw = statistics.median(cold), statistics.median(warm)
    print(
        f"median of {args.runs} runs each; backend {args.backend}; pip's HTTP cache "
        f"{'on' if args.pip_cache else 'off'}; {time.monotonic() - started:.0f} s in all; "
        f"load average {' '.join(load_before)} -> {' '.join(load_after)}\n"
    )
    print("| repository | requirements | installed | cold | warm | warm/cold |")
    print("|---|---|---|---|---|---|")
    name = Path(location).name
    print(
        f"| {name} | {len(last.requirements)} | {len(last.installed)} distributions | "
        f"{mc:.3f} s ({min(cold):.3f}-{max(cold):.3f}) | "
        f"{mw:.3f} s ({min(warm):.3f}-{max(warm):.3f}) | {mw / mc:.1%} |"
    )
    counts = base.counts()
    print(
        f"\nThe warm environment ran the suite at the base commit: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped "
        f"({base.duration_s:.2f} s). Target warm/cold at most 20%: "
        f"{'met' if mw <= 0.2 * mc else 'NOT met'}."
    )


if __name__ == "__main__":
    main()
