"""The service's workers: warm processes that take queued jobs and run them.

A worker imports CrewAI and the engine once, when it starts. For each job it forks a run
process: warm (nothing is imported again), isolated (a crash or a cancel ends that process
only, with the sandboxes in its process group), and gone when the run ends, so nothing of
one run stays in memory for the next. A worker dies with the server and a run process with
its worker (``PR_SET_PDEATHSIG``): after a ``kill -9`` of the server no run goes on
unseen, and the next server resumes it (``JobQueue.recover``).

A run process runs the job exactly as ``darkfactory run`` (or ``resume``) does, through
``engine.session``; a checkpoint with ``ask`` pauses the run (no terminal), which the
queue records as ``awaiting_approval``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from darkfactory.service.queue import MAX_ATTEMPTS, Job, JobQueue

#: How often an idle worker looks for a queued job, and a busy one for a cancel.
POLL_S = 0.05
CANCEL_POLL_S = 0.25
#: After SIGTERM, how long a cancelled run process has before SIGKILL.
CANCEL_GRACE_S = 5.0
LOG_DIR = ".service/logs"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """This process gets SIGKILL when the one that started it ends (Linux)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the call took effect
        os._exit(1)


def warm_up() -> None:
    """Import what every run needs, once per worker (CrewAI alone takes seconds)."""
    from darkfactory.engine.session import OFFLINE_ENV

    os.environ.update({k: v for k, v in OFFLINE_ENV.items() if k not in os.environ})
    import crewai  # noqa: F401

    import darkfactory.engine.flow
    import darkfactory.engine.verify
    import darkfactory.models.scripted
    import darkfactory.spec  # noqa: F401


@dataclass
class WorkerConfig:
    runs_dir: Path
    project_dir: Path
    #: Environment the run processes get on top of the server's (none by default).
    env: dict[str, str] = field(default_factory=dict)


def worker_main(cfg: WorkerConfig) -> None:
    """A worker's life: warm up, then take jobs until the server goes."""
    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.chdir(cfg.project_dir)
    os.environ.update(cfg.env)
    warm_up()
    queue = JobQueue(cfg.runs_dir)
    fork = multiprocessing.get_context("fork")
    while True:
        job = queue.claim(os.getpid())
        if job is None:
            time.sleep(POLL_S)
            continue
        proc = fork.Process(target=run_process, args=(cfg, job), name=f"darkfactory-run-{job.id}")
        proc.start()
        _watch(queue, job, proc)


def _watch(queue: JobQueue, job: Job, proc: BaseProcess) -> None:
    """Wait for the run process; stop it on a cancel; account for a crash."""
    me = os.getpid()
    cancelled = False
    while proc.is_alive():
        proc.join(CANCEL_POLL_S)
        if not cancelled and proc.is_alive() and queue.cancel_requested(job.id):
            cancelled = True
            _stop(proc)
    if cancelled:
        queue.finish(job.id, "cancelled", "cancelled by a person", worker_pid=me)
        return
    current = queue.get(job.id)
    if current is None or current.status != "running" or current.worker_pid != me:
        return  # the run process recorded how it ended
    # It died without saying how (a crash, the OOM killer): resume it, a bounded number of times.
    if current.attempts >= MAX_ATTEMPTS:
        queue.finish(
            job.id,
            "failed",
            f"its run process ended with code {proc.exitcode} {current.attempts} times",
            worker_pid=me,
        )
    else:
        queue.requeue(
            job.id,
            action="resume",
            from_status="running",
            reason=f"its run process ended with code {proc.exitcode}; it resumes",
        )


def _stop(proc: BaseProcess) -> None:
    assert proc.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.join(CANCEL_GRACE_S)
    if proc.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.join()


def run_process(cfg: WorkerConfig, job: Job) -> None:
    """One run, in its own process group, its output in ``runs/.service/logs/<id>.log``."""
    os.setpgid(0, 0)
    die_with_parent()
    worker = os.getppid()
    log_dir = cfg.runs_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{job.id}.log").open("a", encoding="utf-8", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - no terminal: `ask` pauses
    queue = JobQueue(cfg.runs_dir)
    status, reason = run_job(cfg, job, progress=lambda msg: print(msg, flush=True))
    queue.finish(job.id, status, reason, worker_pid=worker)


def run_job(cfg: WorkerConfig, job: Job, *, progress: Any) -> tuple[str, str]:
    """Start or resume the job's run; its end (or pause) status and reason."""
    from darkfactory.engine import session
    from darkfactory.errors import DarkFactoryError

    run_dir = cfg.runs_dir / job.id
    try:
        state = session.saved_state(run_dir) if run_dir.is_dir() else None
        if state is None:
            # Never started, or stopped before its first step: start it (afresh).
            shutil.rmtree(run_dir, ignore_errors=True)
            outcome = _start(cfg, job, progress)
        elif session.has_ended(state):
            return state.status, state.reason
        else:
            outcome = session.continue_run(
                run_dir,
                state,
                progress=progress,
                budget_overrides=dict(job.options.get("budget") or {}),
            )
        return outcome.status, outcome.reason
    except DarkFactoryError as exc:
        progress(f"error: {exc}")
        return "failed", str(exc)


def _start(cfg: WorkerConfig, job: Job, progress: Any) -> Any:
    from darkfactory.engine import session
    from darkfactory.service.submit import load_job_inputs

    config, spec = load_job_inputs(job)
    opts = job.options
    model = opts.get("model")
    models = session.checked_models(config, cli_model=model, progress=progress)
    caps = {**config.factory.budget.model_dump(), **(opts.get("budget") or {})}
    backend = opts.get("backend") or config.factory.sandbox.backend
    env = session.prepare_run(
        spec,
        config,
        models,
        runs_dir=cfg.runs_dir,
        backend=backend,
        progress=progress,
        budget_limits=caps,
        run_id=job.id,
    )
    progress(f"run {env.run_id} in {env.run_dir} (submitted by {job.submitted_by})")
    return session.execute(env, cli_model=model, backend=backend)


class WorkerPool:
    """``jobs`` worker processes (spawned: a clean interpreter each), kept alive."""

    def __init__(self, cfg: WorkerConfig, jobs: int) -> None:
        self.cfg = cfg
        self.jobs = jobs
        self._ctx = multiprocessing.get_context("spawn")
        self.procs: list[BaseProcess] = []

    def start(self) -> None:
        self.procs = [self._spawn(i) for i in range(self.jobs)]

    def _spawn(self, i: int) -> BaseProcess:
        proc = self._ctx.Process(
            target=worker_main, args=(self.cfg,), name=f"darkfactory-worker-{i}", daemon=False
        )
        proc.start()
        return proc

    def pids(self) -> set[int]:
        return {p.pid for p in self.procs if p.pid is not None and p.is_alive()}

    def keep_alive(self) -> list[int]:
        """Start a worker again in place of one that died; the pids of those that died."""
        dead = []
        for i, proc in enumerate(self.procs):
            if not proc.is_alive():
                dead.append(proc.pid or 0)
                self.procs[i] = self._spawn(i)
        return dead

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
