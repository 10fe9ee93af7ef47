"""The bench runner: run every spec of a suite, score each delivery with hidden tests.

``darkfactory bench SUITE_DIR`` (``darkfactory.cli.bench``) calls ``bench``.

A suite is a directory with one sub-directory per entry (names starting with ``.`` or
``_`` are skipped)::

    SUITE_DIR/<entry>/spec.yaml | spec.md | spec.txt | spec.schema.json | spec/   the spec
    SUITE_DIR/<entry>/hidden/test_*.py                                      hidden tests
    SUITE_DIR/<entry>/playbook.yaml               the scripted model's script (--model scripted)

The spec is the one entry named ``spec`` or ``spec.<ext>`` (a file, or a directory of tests:
a test-suite spec), in any format ``darkfactory run`` reads.

An entry with a ``task.yaml`` is a ticket on an existing repository (``repo_task``): its
run gets ``--repo``, ``--base`` and ``--kind``, its hidden tests are laid out as in the
repository and must fail at the base commit (checked before any run), and it is resolved
when every hidden test passes on the delivered branch (FAIL_TO_PASS) and every test that
passed at base still does (PASS_TO_PASS).

Each entry runs as its own ``darkfactory run`` process, with its own runs directory under
``--out`` (so its own flow database, lock and sandbox), ``--jobs`` processes at a time.

**Hidden tests score the delivery; they never feed the run.** An entry's ``hidden/`` tests
are not in the spec, not in the run's workspace or acceptance suite, not in any prompt and
not visible in the run's sandbox: the run only ever gets the spec's path. (``local`` is no
isolation: there a command could read them from the host; bench a real model on bwrap or
docker.) When the run has
ended, bench copies the delivered workspace and the hidden tests to a scratch directory
under ``--out`` and runs the hidden tests in a sandbox of the backend the run used, the
tests mounted read-only at ``/hidden`` outside the workspace, the way the verify phase mounts
the acceptance suite at ``/acceptance``. Their outcome goes to the bench table only: it
cannot steer the fix loop, so it cannot leak into what the agents see, and a suite measures
a real model honestly. ``discover`` also refuses a suite whose spec carries a hidden test.

Exit code: 0 when every entry was delivered and passed all its hidden tests, 1 otherwise,
2 for a bad suite (nothing is run then).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from darkfactory.bench import repo_task
from darkfactory.bench.errors import BenchError
from darkfactory.bench.table import totals, write_summary
from darkfactory.config import load_config
from darkfactory.engine.deps import DEPS_TARGET
from darkfactory.errors import ExitCode
from darkfactory.reporting.trace import read_trace
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Mount, SandboxSpec
from darkfactory.sandbox.testrun import expected_tests, run_pytest
from darkfactory.spec import load_spec
from darkfactory.workspace import hostio

_SKIP = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", "site")

HIDDEN_DIR = "hidden"
PLAYBOOK_FILE = "playbook.yaml"
SPEC_STEM = "spec"
HIDDEN_TARGET = "/hidden"
#: ``--model scripted``: every entry plays its own playbook.
SCRIPTED = "scripted"
#: Longest a single run may take before bench kills it (its whole process group).
RUN_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Entry:
    """One suite entry: its spec, its hidden tests and (for ``--model scripted``) its playbook."""

    name: str
    dir: Path
    spec: Path
    hidden: Path
    playbook: Path | None
    format: str = "?"
    #: A ticket on a repository (``task.yaml``); then ``spec`` is its ticket.
    task: repo_task.RepoTask | None = None
    #: The task's repository as its run gets it (``repo_task.unpack``).
    repo: Path | None = None
    #: The environment setup of the check at base (seconds, from the cache): the run's is
    #: then a cache hit.
    check_env_setup_s: float | None = None
    check_env_cached: bool | None = None


@dataclass
class Result:
    """What one entry's run delivered and what its hidden tests said about it."""

    entry: str
    format: str
    status: str
    exit_code: int
    reason: str = ""
    acceptance_passed: int = 0
    acceptance_total: int = 0
    hidden_passed: int = 0
    hidden_total: int = 0
    hidden_ok: bool = False
    hidden_problem: str | None = None
    hidden_failures: list[str] = field(default_factory=list)
    fix_rounds: int = 0
    llm_calls: int = 0
    tokens: int = 0
    #: Requirements whose tests passed, when the run was delivered (0 when it was not); a
    #: repository task's: all of its ticket's when it was resolved, else 0.
    requirements_delivered: int = 0
    cost_usd: float | None = 0.0
    wall_s: float = 0.0
    #: Seconds from starting the process to the run's first trace record / first LLM call.
    to_run_start_s: float | None = None
    to_first_llm_s: float | None = None
    run_dir: str | None = None
    log: str | None = None
    #: A repository task's kind (None: a spec entry). Its hidden tests are FAIL_TO_PASS.
    kind: str | None = None
    #: Tests that passed at the base commit (``baseline.json``) and pass on the delivery.
    p2p_passed: int = 0
    p2p_total: int = 0
    p2p_ok: bool = False
    regressions: list[str] = field(default_factory=list)
    #: The run's environment setup (its trace's ``baseline`` event) and whether it was cached.
    env_setup_s: float | None = None
    env_cached: bool | None = None
    #: The environment setup of the check at base, before the run (``Entry``).
    check_env_setup_s: float | None = None
    check_env_cached: bool | None = None

    @property
    def passed(self) -> bool:
        """Delivered and every hidden test passing; for a repository task (resolved) also
        no test that passed at base failing."""
        repo_ok = self.kind is None or self.p2p_ok
        return self.status == "delivered" and self.hidden_ok and repo_ok


# -- the suite --------------------------------------------------------------------------------
def discover(suite_dir: Path, *, scripted: bool, only: list[str] | None = None) -> list[Entry]:
    """Every entry of ``suite_dir``, checked; a ``BenchError`` names the entry and what is missing."""
    if not suite_dir.is_dir():
        raise BenchError(
            "suite directory not found" if not suite_dir.exists() else "not a directory",
            file=suite_dir,
            hint="a suite has one sub-directory per entry, each with a spec, hidden/ and "
            "playbook.yaml (see docs/benchmarks.md)",
        )
    dirs = sorted(
        d for d in suite_dir.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))
    )
    if only:
        unknown = sorted(set(only) - {d.name for d in dirs})
        if unknown:
            raise BenchError(
                f"no entry named {', '.join(unknown)} in the suite",
                file=suite_dir,
                hint=f"entries: {', '.join(d.name for d in dirs) or '(none)'}",
            )
        dirs = [d for d in dirs if d.name in only]
    if not dirs:
        raise BenchError("the suite has no entry (no sub-directory)", file=suite_dir)
    entries = []
    for d in dirs:
        task = repo_task.load_task(d) if (d / repo_task.TASK_FILE).is_file() else None
        entry = _entry(d, scripted=scripted, ticket=task.ticket if task else None)
        spec = load_spec(entry.spec)
        _check_no_leak(entry, [t.content for t in spec.acceptance_tests])
        entries.append(replace(entry, format=spec.format, task=task))
    return entries


def _entry(d: Path, *, scripted: bool, ticket: Path | None = None) -> Entry:
    """The entry in ``d``: its spec (or a repository task's ``ticket``), hidden tests, playbook."""
    specs = (
        [ticket] if ticket else sorted(p for p in d.iterdir() if p.name.split(".")[0] == SPEC_STEM)
    )
    if not specs:
        raise BenchError(
            f"entry {d.name!r} has no spec: missing spec.yaml, spec.md, spec.txt, "
            "spec.schema.json or a spec/ directory of tests",
            file=d,
        )
    if len(specs) > 1:
        raise BenchError(
            f"entry {d.name!r} has {len(specs)} specs ({', '.join(p.name for p in specs)}); "
            "keep exactly one",
            file=d,
        )
    hidden = d / HIDDEN_DIR
    if not hidden.is_dir() or not any(hidden.rglob("test_*.py")):
        raise BenchError(
            f"entry {d.name!r} has no hidden tests: missing {HIDDEN_DIR}/test_*.py",
            file=hidden,
            hint="hidden tests score the delivered workspace; every entry needs some",
        )
    playbook = d / PLAYBOOK_FILE
    if scripted and not playbook.is_file():
        raise BenchError(
            f"entry {d.name!r} has no playbook: missing {PLAYBOOK_FILE}, which --model "
            "scripted plays",
            file=playbook,
        )
    return Entry(d.name, d, specs[0], hidden, playbook if playbook.is_file() else None)


def _check_no_leak(entry: Entry, acceptance: list[str]) -> None:
    """Refuse an entry whose spec would show the agents a hidden test."""
    spec = entry.spec.resolve()
    hidden = entry.hidden.resolve()
    if spec.is_dir() and (hidden == spec or spec in hidden.parents):
        raise BenchError(
            f"entry {entry.name!r}: hidden/ is inside the spec directory, so the agents would "
            "see it",
            file=entry.hidden,
        )
    shown = {text.strip() for text in acceptance}
    for test in sorted(hidden.rglob("*.py")):
        if test.read_text(encoding="utf-8").strip() in shown:
            raise BenchError(
                f"entry {entry.name!r}: the hidden test {test.name} is also an acceptance test "
                "of the spec, so the agents would see it",
                file=test,
            )


def model_for(entry: Entry, model: str | None) -> str | None:
    """The ``--model`` of the entry's run: its own playbook for ``scripted``, else ``model``."""
    if model == SCRIPTED:
        assert entry.playbook is not None  # discover() checked it
        return f"scripted:{entry.playbook.resolve()}"
    return model


# -- one entry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """What every run of a bench shares."""

    out: Path
    model: str | None = None
    sandbox: str | None = None
    config: Path | None = None
    run_timeout_s: float = RUN_TIMEOUT_S
    #: ``bench --broker``: spec entries run on Celery workers (bench/remote.py).
    broker: str | None = None
    store: Path | None = None


def run_entry(entry: Entry, opts: Options) -> Result:
    """Run ``darkfactory run`` on the entry's spec in its own process, then score it."""
    runs_dir = (opts.out / "runs" / entry.name).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    log = (opts.out / "logs" / f"{entry.name}.log").resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "darkfactory", "run"]
    if entry.task is not None:
        assert entry.repo is not None  # bench() unpacked it
        ticket = repo_task.run_ticket(entry.task, entry.repo, opts.out / "tickets" / entry.name)
        source = ticket.resolve()
        argv += [str(source), "--repo", str(entry.repo), "--base", entry.task.base]
        argv += ["--kind", entry.task.kind]
    else:
        source = entry.spec.resolve()
        argv.append(str(source))
    argv += ["--out", str(runs_dir), "--json", "--yes"]
    model = model_for(entry, opts.model)
    if model:
        argv += ["--model", model]
    if opts.sandbox:
        argv += ["--sandbox", opts.sandbox]
    if opts.config:
        argv += ["--config", str(opts.config.resolve())]
    # CrewAI keeps task outputs in a SQLite file named after the working directory (and
    # shared by every run started there, behind a file lock): give each run its own.
    env = {"CREWAI_STORAGE_DIR": str(runs_dir / ".crewai")}
    started_wall = time.time()
    started = time.perf_counter()
    if opts.broker and opts.store and (entry.task is not None or entry.spec.is_file()):
        from darkfactory.bench.remote import run_remote

        target = None
        if entry.task is not None:  # the ticket, on the repository the bench prepared
            target = {"repo": str(entry.repo), "base": entry.task.base, "kind": entry.task.kind}
        code, stdout, stderr = run_remote(
            source,
            target=target,
            broker=opts.broker,
            store=opts.store,
            runs_dir=runs_dir,
            model=model,
            sandbox=opts.sandbox,
            config=opts.config,
            timeout=opts.run_timeout_s,
        )
    else:
        code, stdout, stderr = _run_process(argv, timeout=opts.run_timeout_s, env=env)
    wall = time.perf_counter() - started
    log.write_text(
        f"$ {' '.join(argv)}\n# exit code {code}, {wall:.1f} s\n\n## stderr\n{stderr}\n"
        f"## stdout\n{stdout}",
        encoding="utf-8",
    )
    report = _report(stdout, runs_dir)
    if report is None:
        tail = (stderr.strip() or stdout.strip())[-600:] or f"exit code {code}"
        return Result(
            entry.name,
            entry.format,
            "error",
            code,
            reason=f"the run produced no report: {tail}",
            wall_s=round(wall, 2),
            log=str(log),
            kind=entry.task.kind if entry.task else None,
            check_env_setup_s=entry.check_env_setup_s,
            check_env_cached=entry.check_env_cached,
        )
    run_dir = Path(report["workspace"]).parent
    llm = report.get("llm", {})
    result = Result(
        entry=entry.name,
        format=entry.format,
        status=str(report.get("status", "?")),
        exit_code=code,
        reason=str(report.get("reason", "")),
        acceptance_passed=int(report["acceptance"]["passed"]),
        acceptance_total=int(report["acceptance"]["total"]),
        fix_rounds=int(report.get("fix_rounds", 0)),
        llm_calls=int(llm.get("calls", 0)),
        tokens=int(llm.get("prompt_tokens", 0)) + int(llm.get("completion_tokens", 0)),
        requirements_delivered=sum(1 for q in report.get("requirements", []) if q.get("passed"))
        if report.get("status") == "delivered"
        else 0,
        cost_usd=llm.get("cost_usd"),
        wall_s=round(wall, 2),
        run_dir=str(run_dir),
        log=str(log),
        kind=entry.task.kind if entry.task else None,
        check_env_setup_s=entry.check_env_setup_s,
        check_env_cached=entry.check_env_cached,
    )
    result.to_run_start_s, result.to_first_llm_s = _startup(run_dir, started_wall)
    if entry.task is not None:
        _score_repo(result, entry, run_dir, backend=report.get("sandbox"), opts=opts)
        # A ticket's requirements name no tests of their own: its hidden tests prove them.
        # A resolved task delivered every one, an unresolved one none.
        result.requirements_delivered = len(report.get("requirements", [])) if result.passed else 0
    else:
        _score(result, entry, run_dir, backend=report.get("sandbox"), opts=opts)
    return result


def _run_process(argv: list[str], *, timeout: float, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``argv`` in its own session; on a timeout kill its whole process group.

    ``env`` adds to the environment, without overriding what is set there.
    """
    env = {**env, **os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\nbench: killed after {timeout:g} s"
        return proc.returncode, stdout, stderr


def _report(stdout: str, runs_dir: Path) -> dict[str, Any] | None:
    """The run's report: what ``--json`` printed, else the ``report.json`` it left."""
    try:
        report = json.loads(stdout)
        if isinstance(report, dict) and "workspace" in report:
            return report
    except json.JSONDecodeError:
        pass
    found = sorted(runs_dir.glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    data: dict[str, Any] = json.loads(found[-1].read_text(encoding="utf-8"))
    return data


def _startup(run_dir: Path, started: float) -> tuple[float | None, float | None]:
    """Seconds from the process start to the run's first trace record and first LLM call."""
    path = run_dir / "trace.jsonl"
    if not path.is_file():
        return None, None
    records = read_trace(path)

    def since(record: dict[str, Any] | None) -> float | None:
        if record is None:
            return None
        return round(datetime.fromisoformat(record["ts"]).timestamp() - started, 3)

    first = records[0] if records else None
    llm = next((r for r in records if r.get("kind") == "llm_call"), None)
    return since(first), since(llm)


def _score(
    result: Result, entry: Entry, run_dir: Path, *, backend: str | None, opts: Options
) -> None:
    """Run the hidden tests against a copy of the delivered workspace, in a sandbox."""
    if hostio.kind_of(run_dir, "workspace") != "dir":
        result.hidden_problem = "the run left no workspace"
        return
    scratch = (opts.out / "score" / entry.name).resolve()
    hostio.remove(scratch)
    scratch.mkdir(parents=True)
    # The delivered workspace and its deps are model-written: copied without following any
    # link (links are kept as links for the sandbox), FIFOs and devices left out.
    big = hostio.MAX_TREE_BYTES
    try:
        hostio.copy_tree(run_dir, "workspace", scratch / "workspace", keep_symlinks=True, limit=big)
        deps = scratch / "deps"
        if hostio.kind_of(run_dir, "deps") == "dir":
            hostio.copy_tree(
                run_dir, "deps", deps, keep_symlinks=True, limit=big, max_bytes=4 * big
            )
        else:
            deps.mkdir()
    except hostio.Refused as exc:
        result.hidden_problem = f"the delivery cannot be scored: {exc}"
        return
    shutil.copytree(entry.hidden, scratch / "hidden", ignore=_SKIP)  # the suite's own
    for d in (scratch / "hidden", deps):
        d.chmod(0o755)
    config = load_config(run_dir / "config")
    sandbox = open_sandbox(
        backend or opts.sandbox or config.factory.sandbox.backend,
        SandboxSpec(
            workspace=scratch / "workspace",
            mounts=[
                Mount(scratch / "hidden", HIDDEN_TARGET, read_only=True),
                Mount(deps, DEPS_TARGET, read_only=True),
            ],
            limits=config.factory.limits(),
            pythonpath=[DEPS_TARGET],
            image=config.factory.sandbox.image,
            hand_over=True,  # bench's own scratch copy
        ),
    )
    try:
        hidden = sandbox.path_of(HIDDEN_TARGET)
        run = run_pytest(sandbox, [hidden], timeout=config.factory.tests.timeout_s, rootdir=hidden)
    finally:
        sandbox.close()
    sources, _ = hostio.files(scratch, "hidden", suffix=".py")
    run = run.expecting(expected_tests(sources))
    result.hidden_passed, result.hidden_total = run.passed, run.total
    result.hidden_ok = run.ok and run.passed == run.total - run.skipped
    if run.killed is not None:
        result.hidden_problem = f"killed ({run.killed})"
    elif run.unreported:
        result.hidden_problem = f"{len(run.unreported)} hidden test(s) have no result"
    elif run.collection_error:
        result.hidden_problem = run.collection_error.splitlines()[0][:300]
    result.hidden_failures = [o.nodeid for o in run.outcomes if o.outcome in ("failed", "error")][
        :20
    ]


def _score_repo(
    result: Result, entry: Entry, run_dir: Path, *, backend: str | None, opts: Options
) -> None:
    """A repository task's delivery: FAIL_TO_PASS and PASS_TO_PASS (``repo_task.score``)."""
    assert entry.task is not None
    result.env_setup_s, result.env_cached = repo_task.environment_setup(run_dir)
    found = repo_task.score(
        run_dir,
        entry.task,
        entry.hidden,
        backend=backend or opts.sandbox or load_config(run_dir / "config").factory.sandbox.backend,
        scratch=(opts.out / "score" / entry.name).resolve(),
    )
    result.hidden_passed, result.hidden_total = found.f2p_passed, found.f2p_total
    result.hidden_ok, result.hidden_failures = found.f2p_ok, found.f2p_failures
    result.hidden_problem = found.problem
    result.p2p_passed, result.p2p_total = found.p2p_passed, found.p2p_total
    result.p2p_ok, result.regressions = found.p2p_ok, found.regressions


# -- before any run: the repository tasks' hidden tests fail at base --------------------------
def prepare_repo_tasks(
    entries: list[Entry], *, config: Path | None, sandbox: str | None, jobs: int
) -> list[Entry]:
    """Each repository task with its repository unpacked, once its hidden tests are checked to
    fail at the base commit (``repo_task.check_fails_at_base``; a ``BenchError`` otherwise).

    The checks' clones are temporary: a refused suite leaves nothing but the unpacked
    repositories and environments in the cache."""
    if not any(e.task is not None for e in entries):
        return entries
    loaded = load_config(config)
    backend = sandbox or loaded.factory.sandbox.backend

    def one(entry: Entry, scratch: Path) -> Entry:
        if entry.task is None:
            return entry
        repo = repo_task.unpack(entry.name, entry.task, loaded)
        (scratch / entry.name).mkdir()
        check = repo_task.check_fails_at_base(
            entry.name,
            entry.task,
            repo,
            entry.hidden,
            config=loaded,
            backend=backend,
            scratch=scratch / entry.name,
        )
        env = check.environment
        return replace(
            entry, repo=repo, check_env_setup_s=round(env.setup_s, 3), check_env_cached=env.cached
        )

    with (
        tempfile.TemporaryDirectory(prefix="darkfactory-bench-check-") as tmp,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        return list(pool.map(lambda entry: one(entry, Path(tmp)), entries))


# -- the suite, N at a time -------------------------------------------------------------------
def run_suite(
    entries: list[Entry],
    opts: Options,
    *,
    jobs: int,
    on_result: Callable[[Result, int], None] = lambda result, done: None,
) -> list[Result]:
    """Run every entry, ``jobs`` processes at a time; results in the suite's order."""
    lock = threading.Lock()
    done = 0

    def one(entry: Entry) -> Result:
        nonlocal done
        result = run_entry(entry, opts)
        with lock:
            done += 1
            on_result(result, done)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, entries))


# -- the whole bench --------------------------------------------------------------------------
def default_out() -> Path:
    return Path("runs") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"


def bench(
    suite_dir: Path,
    *,
    model: str | None,
    jobs: int = 1,
    out: Path | None = None,
    sandbox: str | None = None,
    config: Path | None = None,
    only: list[str] | None = None,
    quiet: bool = False,
    broker: str | None = None,
    store: Path | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run the suite; (exit code, the summary also written to ``out``)."""
    if jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {jobs}")
    if broker is not None:
        if store is None:
            raise BenchError("--broker needs --store DIR: the run store the workers share")
        from darkfactory.bench.remote import connect

        connect(broker, store)  # exit 2 now, not after the first entry
    entries = discover(suite_dir, scripted=model == SCRIPTED, only=only)
    tasks = sum(e.task is not None for e in entries)
    if tasks and not quiet:
        print(
            f"bench: checking that the hidden tests of {tasks} repository task(s) fail at "
            "their base commit",
            file=sys.stderr,
            flush=True,
        )
    checked = time.perf_counter()
    entries = prepare_repo_tasks(entries, config=config, sandbox=sandbox, jobs=jobs)
    checked_s = time.perf_counter() - checked
    out = out or default_out()
    out.mkdir(parents=True, exist_ok=True)
    opts = Options(out=out, model=model, sandbox=sandbox, config=config, broker=broker, store=store)

    def report(result: Result, done: int) -> None:
        if quiet:
            return
        tests = f"hidden {result.hidden_passed}/{result.hidden_total}"
        if result.kind is not None:
            tests = (
                f"FAIL_TO_PASS {result.hidden_passed}/{result.hidden_total}, PASS_TO_PASS "
                f"{result.p2p_passed}/{result.p2p_total}"
            )
        print(
            f"bench: [{done}/{len(entries)}] {result.entry}: {result.status}, {tests}, "
            f"{result.wall_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    if not quiet:
        print(
            f"bench: {len(entries)} entries from {suite_dir}, {jobs} at a time, into {out}",
            file=sys.stderr,
            flush=True,
        )
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = _loadavg()
    start = time.perf_counter()
    results = run_suite(entries, opts, jobs=jobs, on_result=report)
    elapsed = time.perf_counter() - start
    rows = [
        {**asdict(r), "passed": r.passed, "resolved": r.passed if r.kind else None} for r in results
    ]
    summary = {
        "suite": str(suite_dir),
        "out": str(out),
        "model": model,
        "jobs": jobs,
        "sandbox": sandbox,
        "broker": broker,
        "started_at": started_at,
        "machine": {**_machine(), "loadavg_start": load_before, "loadavg_end": _loadavg()},
        "results": rows,
        "totals": totals(rows, elapsed),
        "base_check_s": round(checked_s, 2) if tasks else None,
    }
    write_summary(out, summary)
    code = ExitCode.DELIVERED if all(r.passed for r in results) else ExitCode.FAILED
    return int(code), summary


def _loadavg() -> list[str] | None:
    """The 1, 5 and 15 minute load averages (None where /proc has none)."""
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3]
    return None


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
