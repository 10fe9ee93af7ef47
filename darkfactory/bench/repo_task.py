"""Repository tasks of a bench suite: a ticket on a git bundle, scored by hidden tests.

``load_task`` reads a task's ``task.yaml``; ``unpack`` gives its repository a stable path;
``check_fails_at_base`` refuses a task whose hidden tests already pass at the base commit
(building the environment the run then finds in the cache);
``score`` runs the repository's suite (PASS_TO_PASS) and the hidden tests (FAIL_TO_PASS)
on the delivered branch.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from darkfactory.bench.errors import BenchError
from darkfactory.config import Config, load_config
from darkfactory.engine import repo_run
from darkfactory.repo.baseline import Baseline, run_suite
from darkfactory.repo.environment import (
    RepoEnvironment,
    prepare_environment,
    project_sandbox,
    run_setup,
)
from darkfactory.repo.project import Argv, Project, detect_project
from darkfactory.repo.source import clone_into, open_repository
from darkfactory.repo.version_file import write_version_files
from darkfactory.reporting.trace import read_trace
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Sandbox, SandboxSpec
from darkfactory.sandbox.testrun import TestRun, expected_tests, run_pytest
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import hostio
from darkfactory.yamlio import load_yaml, pydantic_errors

TASK_FILE = "task.yaml"
#: What bench keeps for repository tasks under ``repo.cache_dir``: the unpacked bundles
#: (``repos/``). Their environments are the runs' own, in ``repo.cache_dir`` itself.
BENCH_DIR = "bench"
#: The branch of the check's clone of the base commit.
CHECK_BRANCH = "bench/base-check"
#: pytest's exit codes when it ran: some tests failed (1), some could not be collected (2).
PYTEST_RAN = (1, 2)


class Upstream(BaseModel):
    """The release a task's repository was made from (for people: no run reads it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    license: str
    sha256: str | None = None
    changed: str | None = Field(default=None, description="what was changed from the release")


class TaskFile(BaseModel):
    """A repository task's ``task.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(
        min_length=1,
        description="a git bundle (git bundle create repo.bundle --all) or a repository "
        "directory, relative to the task",
    )
    base: str = Field(min_length=1, description="the branch, tag or commit the ticket starts at")
    kind: str = Field(description="the ticket's kind (bug or feature)")
    ticket: str = Field(min_length=1, description="the ticket file, relative to the task")
    test_command: Argv | None = Field(
        default=None, description="how the repository runs its tests (argv); None: detected"
    )
    upstream: Upstream | None = None


@dataclass(frozen=True)
class RepoTask:
    """A task's ``task.yaml``, its paths resolved and checked."""

    repo: Path
    base: str
    kind: str
    ticket: Path
    test_command: tuple[str, ...] | None = None


def load_task(task_dir: Path) -> RepoTask:
    """``task_dir/task.yaml`` checked; a ``BenchError`` names the file, the line and the key."""
    path = task_dir / TASK_FILE
    data, locs = load_yaml(path, error=BenchError)
    if not isinstance(data, dict):
        raise BenchError("must be a mapping (repo:, base:, kind:, ticket:)", file=path, line=1)
    try:
        found = TaskFile.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors(exc, file=path, locs=locs, error=BenchError) from None
    if found.kind not in repo_run.SUPPORTED_KINDS:
        raise BenchError(
            f"kind {found.kind!r} cannot be benched: runs on a repository take "
            f"{' and '.join(repo_run.SUPPORTED_KINDS)} tickets",
            file=path,
            line=locs.line_of(("kind",)),
            key="kind",
        )
    repo = task_dir / found.repo
    if not (repo.is_file() or repo.is_dir()):
        raise BenchError(
            f"repo {found.repo!r} not found",
            file=path,
            line=locs.line_of(("repo",)),
            key="repo",
            hint="a git bundle (git bundle create repo.bundle --all) or a repository "
            "directory, relative to the task",
        )
    ticket = task_dir / found.ticket
    if not ticket.is_file():
        raise BenchError(
            f"ticket {found.ticket!r} not found",
            file=path,
            line=locs.line_of(("ticket",)),
            key="ticket",
        )
    command = tuple(found.test_command) if found.test_command else None
    if command and ticket.suffix not in (".yaml", ".yml"):
        raise BenchError(
            "test_command needs a YAML ticket (bench passes it to the run in a copy of it)",
            file=path,
            line=locs.line_of(("test_command",)),
            key="test_command",
        )
    return RepoTask(repo, found.base, found.kind, ticket, command)


# -- the repository -------------------------------------------------------------------


def store(config: Config) -> Path:
    """Bench's directory under the configured environment cache."""
    return config.factory.repo.cache_path() / BENCH_DIR


def unpack(name: str, task: RepoTask, config: Config) -> Path:
    """The task's repository as a bare repository, at a path named after the bundle's content.

    A run's environment is cached per repository path (``RepoSource.identity``): a
    repository unpacked to a new place for every bench would never find its environment
    again. A repository directory is used where it is.
    """
    if task.repo.is_dir():
        return task.repo.resolve()
    digest = hashlib.sha256(task.repo.read_bytes()).hexdigest()[:16]
    repos = store(config) / "repos"
    target = repos / f"{name}-{digest}.git"
    if (target / "HEAD").is_file():
        return target
    repos.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=repos))
    try:
        gitrepo.clone(str(task.repo.resolve()), scratch / "repo.git", bare=True)
        try:
            os.rename(scratch / "repo.git", target)
        except OSError:  # another bench unpacked the same bundle first
            if not (target / "HEAD").is_file():
                raise
    finally:
        hostio.remove(scratch)
    return target


def run_ticket(task: RepoTask, repo: Path, out: Path) -> Path:
    """The ticket the run gets: the task's own, or a copy with its ``test_command``.

    A ticket may set ``test_command`` only next to ``repo``, so the copy names both.
    """
    if task.test_command is None:
        return task.ticket
    data = yaml.safe_load(task.ticket.read_text(encoding="utf-8"))
    tests = data.get("acceptance_tests")
    if isinstance(tests, list) and any(isinstance(t, str) for t in tests):
        raise BenchError(
            "with test_command, give the ticket's acceptance_tests inline (bench runs a "
            "copy of the ticket, where paths to test files would not resolve)",
            file=task.ticket,
            key="acceptance_tests",
        )
    data.update(repo=str(repo), test_command=list(task.test_command))
    copy = out / task.ticket.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return copy


def _project(workspace: Path, task: RepoTask) -> Project:
    project = detect_project(workspace)
    if task.test_command:
        project = project.model_copy(update={"test_command": task.test_command})
    return project


def _sandbox(
    workspace: Path, env: RepoEnvironment, project: Project, config: Config, backend: str
) -> Sandbox:
    """A sandbox on ``workspace`` with the repository's environment, as a run has it."""
    sandbox = open_sandbox(
        backend,
        SandboxSpec(
            workspace=workspace,
            mounts=env.mounts(),
            limits=config.factory.limits(),
            pythonpath=[],
            image=config.factory.sandbox.image,
            hand_over=True,  # bench's own scratch copy
        ),
    )
    return project_sandbox(sandbox, project)


def hidden_sources(hidden: Path) -> dict[str, bytes]:
    """The hidden ``.py`` files' content, by their path in the repository."""
    return {
        p.relative_to(hidden).as_posix(): p.read_bytes()
        for p in sorted(hidden.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _overlay(source: Path, files: list[str], workspace: Path) -> str | None:
    """Copy ``files`` (paths under ``source``) into ``workspace``, over what is there.

    None, or why they cannot be (a directory on their path is not one in ``workspace``).
    """
    for rel in files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = workspace.joinpath(*parts[:i])
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                return f"{'/'.join(parts[:i])} in the delivery is not a directory"
        data = hostio.read_bytes(source, rel)  # the repository's: no link, no '..'
        hostio.remove(workspace / rel)
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_bytes(data)
    return None


def _hidden_files(hidden: Path) -> tuple[list[str], list[str]]:
    """(every file under ``hidden``, the test files among them), as repository paths."""
    files = [
        p.relative_to(hidden).as_posix()
        for p in sorted(hidden.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    ]
    name = [f.rpartition("/")[2] for f in files]
    tests = [
        f
        for f, n in zip(files, name, strict=True)
        if n.endswith(".py") and (n.startswith("test_") or n.endswith("_test.py"))
    ]
    return files, tests


def _run_hidden(
    sandbox: Sandbox, tests: list[str], hidden: Path, env: RepoEnvironment, timeout: float
) -> TestRun:
    plugins = [a for module in env.pytest_plugins for a in ("-p", module)]
    run = run_pytest(sandbox, tests, timeout=timeout, extra_args=plugins)
    return run.expecting(expected_tests(hidden_sources(hidden)))


# -- before the run: the hidden tests must fail at the base commit -------------------------


@dataclass(frozen=True)
class BaseCheck:
    """The hidden tests' outcomes at the base commit, and the environment they ran with."""

    outcomes: dict[str, str]
    environment: RepoEnvironment


def check_fails_at_base(
    name: str,
    task: RepoTask,
    repo: Path,
    hidden: Path,
    *,
    config: Config,
    backend: str,
    scratch: Path,
) -> BaseCheck:
    """The hidden tests' outcomes at the base commit, in the sandbox; every one must fail.

    A hidden test is a FAIL_TO_PASS test: one that already passes at base proves nothing
    about the delivery, so the task is refused (``BenchError``). The environment is built
    as the run builds it, in the run's cache (``repo.cache_dir``): the run then finds it
    there instead of building it again, and this check's setup is the cold one.
    """
    source = open_repository(str(repo), task.base, limits=config.factory.repo)
    workspace = scratch / "workspace"
    with source:
        clone_into(source, workspace, CHECK_BRANCH)
    project = _project(workspace, task)
    write_version_files(workspace, project.version_files)  # as the run's setup writes them
    env = prepare_environment(
        project,
        identity=source.identity,
        backend=backend,
        limits=config.factory.limits(),
        cache_dir=config.factory.repo.cache_path(),
        image=config.factory.sandbox.image,
        timeout_s=config.factory.sandbox.deps_timeout_s,
    )
    files, tests = _hidden_files(hidden)
    _overlay(hidden, files, workspace)  # a clean checkout of the base commit: no refusal
    sandbox = _sandbox(workspace, env, project, config, backend)
    try:
        run_setup(sandbox, project, timeout_s=config.factory.tests.timeout_s)
        run = _run_hidden(sandbox, tests, hidden, env, config.factory.tests.timeout_s)
    finally:
        sandbox.close()
    passing = [o.nodeid for o in run.outcomes if o.outcome == "passed"]
    if passing:
        shown = ", ".join(passing[:5]) + (
            f" and {len(passing) - 5} more" if len(passing) > 5 else ""
        )
        raise BenchError(
            f"task {name!r}: {len(passing)} hidden test(s) already pass at the base commit "
            f"{task.base} ({source.base_sha[:12]}): {shown}",
            file=hidden,
            hint="every hidden test must fail at the base commit and pass after a correct "
            "change (FAIL_TO_PASS); the repository's own suite covers what already passes",
        )
    if run.killed is not None or run.exec.exit_code not in PYTEST_RAN:
        raise BenchError(
            f"task {name!r}: the hidden tests did not run at the base commit {task.base} "
            f"({source.base_sha[:12]}), so nothing shows that they fail there:\n"
            + run.summary(2000),
            file=hidden,
            hint="run them at the base commit yourself: they must be collected and fail",
        )
    outcomes: dict[str, str] = {o.nodeid: o.outcome for o in run.outcomes}
    outcomes |= {t: "error" for t in run.unreported if t not in outcomes}
    return BaseCheck(outcomes, env)


# -- after the run: the delivered branch, scored ---------------------------------------------


@dataclass
class RepoScore:
    """The delivered branch against the hidden tests and the suite's baseline."""

    f2p_passed: int = 0
    f2p_total: int = 0
    f2p_failures: list[str] = field(default_factory=list)
    p2p_passed: int = 0
    p2p_total: int = 0
    regressions: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def f2p_ok(self) -> bool:
        return self.f2p_total > 0 and self.f2p_passed == self.f2p_total

    @property
    def p2p_ok(self) -> bool:
        return self.problem is None and not self.regressions


def score(run_dir: Path, task: RepoTask, hidden: Path, *, backend: str, scratch: Path) -> RepoScore:
    """The delivered branch's last commit, exported to ``scratch``, scored with the run's
    environment: the repository's suite, its test files as they were at the base commit,
    against ``baseline.json`` (PASS_TO_PASS), then the hidden tests added (FAIL_TO_PASS).

    The test files (those the baseline ran, and every ``conftest.py``) are put back as the
    base commit has them, as SWE-bench resets them: a delivery that edits a test to pass
    does not pass it.
    """
    files, tests = _hidden_files(hidden)
    found = RepoScore(f2p_total=len(expected_tests(hidden_sources(hidden))))
    record = repo_run.load_record(run_dir)
    baseline = run_dir / "baseline.json"
    if record is None or not baseline.is_file():
        found.problem = "the run left no baseline (it ended before the repository's tests ran)"
        return found
    base = Baseline.load(baseline)
    config = load_config(run_dir / "config")
    workspace, base_tree = scratch / "workspace", scratch / "base"
    hostio.remove(scratch)
    scratch.mkdir(parents=True)
    head = gitrepo.head(run_dir / "workspace")
    try:
        gitrepo.export(run_dir / "workspace", head, workspace)
        gitrepo.export(run_dir / "workspace", record.base_sha, base_tree)
    except (subprocess.CalledProcessError, tarfile.TarError, OSError) as exc:
        found.problem = f"the delivered branch cannot be exported: {exc}"
        return found
    why = _overlay(base_tree, _base_test_files(base, base_tree), workspace)
    if why is not None:
        found.problem = f"the base commit's test files cannot be put back: {why}"
        return found
    write_version_files(workspace, record.project.version_files)  # git-ignored in the run
    env = repo_run.environment(record, config, backend=backend)
    sandbox = _sandbox(workspace, env, record.project, config, backend)
    timeout = config.factory.tests.timeout_s
    try:
        run_setup(sandbox, record.project, timeout_s=timeout)
        suite = run_suite(sandbox, record.project, timeout=timeout, plugins=env.pytest_plugins)
        now = {o.nodeid: o.outcome for o in suite.outcomes}
        found.p2p_total, found.p2p_passed, found.regressions = pass_to_pass(base.outcomes, now)
        if suite.killed is not None or suite.collection_error is not None:
            found.problem = "the suite did not run to its end: " + (
                suite.killed or (suite.collection_error or "").splitlines()[0][:300]
            )
        why = _overlay(hidden, files, workspace)
        if why is not None:
            found.problem = f"the hidden tests cannot be added: {why}"
            return found
        run = _run_hidden(sandbox, tests, hidden, env, timeout)
    finally:
        sandbox.close()
    found.f2p_passed, found.f2p_total = run.passed, run.total + len(run.unreported)
    found.f2p_failures = [o.nodeid for o in run.outcomes if o.outcome != "passed"][:20]
    found.f2p_failures += list(run.unreported[: 20 - len(found.f2p_failures)])
    if run.killed is not None and found.problem is None:
        found.problem = f"the hidden tests were killed ({run.killed})"
    return found


def _base_test_files(base: Baseline, base_tree: Path) -> list[str]:
    """The files the baseline's tests are in, and every ``conftest.py``, at the base commit."""
    files = {test.split("::", 1)[0] for test in base.outcomes}
    files |= {
        e.path
        for e in hostio.walk(base_tree, max_entries=hostio.MAX_ENTRIES * 10)
        if e.kind == "file" and e.path.rpartition("/")[2] == "conftest.py"
    }
    return sorted(f for f in files if _is_plain_file(base_tree, f))


def _is_plain_file(root: Path, rel: str) -> bool:
    try:
        return hostio.is_file(root, rel)
    except hostio.Refused:  # a test id that is not a path under the root ('..', absolute)
        return False


def pass_to_pass(base: Mapping[str, str], now: Mapping[str, str]) -> tuple[int, int, list[str]]:
    """(tests that passed at base, how many of them pass now, the ones that do not).

    A test is matched by its id. A parametrized test's id may not be in both runs: pytest
    numbers the parameters it cannot name (``expected3``) in the order the test module
    builds them, and one built from a set changes order with each process's hash seed.
    Such a test then counts as passing when every instance of its function passes now,
    and there are at least as many as at base.
    """
    passed = sorted(t for t, o in base.items() if o == "passed")

    def function(test: str) -> str:
        return test.split("[", 1)[0]

    instances: dict[str, list[str]] = {}
    for test, outcome in now.items():
        instances.setdefault(function(test), []).append(outcome)
    at_base: dict[str, int] = {}
    for test in base:
        at_base[function(test)] = at_base.get(function(test), 0) + 1
    failing = []
    for test in passed:
        if test in now:
            ok = now[test] == "passed"
        else:
            found = instances.get(function(test), [])
            ok = len(found) >= at_base[function(test)] and all(o == "passed" for o in found)
        if not ok:
            failing.append(test)
    return len(passed), len(passed) - len(failing), failing


def environment_setup(run_dir: Path) -> tuple[float | None, bool | None]:
    """(seconds, from the cache) of the run's environment setup, from its ``baseline`` event."""
    path = run_dir / "trace.jsonl"
    if not path.is_file():
        return None, None
    for record in read_trace(path):
        if record.get("kind") == "baseline":
            env: dict[str, Any] = record.get("environment") or {}
            setup = env.get("setup_s")
            cached = env.get("cached")
            return (
                float(setup) if setup is not None else None,
                bool(cached) if cached is not None else None,
            )
    return None, None
