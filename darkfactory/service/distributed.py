"""Past one machine: runs as Celery tasks on a Redis broker, exactly once, nothing lost.

One task, ``darkfactory.run(run_id)``, on the ``darkfactory`` queue. Its inputs (the spec
and the config as submitted) and everything the run writes live in the shared run store
(``store.RunStore``), so any worker can take any run:

* **Late acknowledgement.** A task is acknowledged when the run has ended or paused, not
  when it starts; a worker that dies leaves it unacknowledged, and the broker gives it to
  another worker after the visibility timeout.
* **One holder.** Before it works on a run a worker takes the run's lease in Redis (``SET
  NX`` with an expiry, renewed while it works) and a fencing token (``INCR``); the store
  takes writes only from the newest token. A worker that lost its lease (stalled past the
  expiry) stops its run, and its late writes are refused (``StaleFence``), so a run is never
  driven twice at once; a task that finds the lease held comes back later.
* **Resume.** The worker rebuilds the run from its last snapshot in the store (a snapshot
  is taken after every journaled step) and continues it as ``darkfactory resume`` does; a
  run that ended is not run again.
* **Cancel** revokes the task and marks the run cancelled in the store.

Each run runs in a process of its own forked by the task from the warm pool process (the
engine imported once, by the worker), so nothing of one run stays for the next, and a
cancel or a lost lease kills that process group at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from celery import Celery

from darkfactory.errors import InputError
from darkfactory.service.queue import MAX_ATTEMPTS
from darkfactory.service.store import DirectoryStore, RunStore, StaleFence

QUEUE = "darkfactory"
TASK = "darkfactory.run"
#: Seconds a lease lasts without renewal; renewed every third of it.
LEASE_S = 30.0
#: Seconds before a run whose worker died is given to another (the broker's visibility timeout).
VISIBILITY_S = 3600
FINAL = ("delivered", "failed", "escalated", "rejected", "budget_exhausted", "cancelled")
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class BrokerUnreachable(InputError):
    """The broker does not answer (exit code 2)."""


def check_broker(url: str, timeout: float = 3.0) -> None:
    """The broker answers ``PING`` within ``timeout`` seconds, else ``BrokerUnreachable``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise BrokerUnreachable(
            f"--broker {shown(url)}: only a Redis broker is supported",
            hint="e.g. --broker redis://127.0.0.1:6379/0",
        )
    try:
        redis_client(url, timeout).ping()
    except Exception as exc:  # redis raises its own ConnectionError/TimeoutError types
        raise BrokerUnreachable(
            f"cannot reach the broker at {parsed.hostname}:{parsed.port or 6379}: {exc}",
            hint="start it (redis-server, docs/scaling-out.md) or check --broker",
        ) from None


def shown(url: str) -> str:
    """``url`` as it may be printed or logged: any password in it replaced by ``***``."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def redis_client(url: str, timeout: float = 5.0) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def make_app(broker: str, *, visibility_s: float = VISIBILITY_S) -> Celery:
    app = Celery("darkfactory", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # A run whose worker died goes back to the queue after visibility_s; the sweep that
        # returns it runs a few times within that.
        broker_transport_options={
            "visibility_timeout": visibility_s,
            "unacked_restore_interval": max(1, min(10, int(visibility_s / 4))),
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.task(name=TASK, bind=True, max_retries=None)(run_task)
    return app


def enqueue(app: Celery, run_id: str, queue: str = QUEUE) -> None:
    """Send the run to the workers (the task id is the run id: revocable by it)."""
    app.send_task(TASK, args=[run_id], task_id=run_id, queue=queue)


def cancel(app: Celery, store: RunStore, run_id: str) -> None:
    app.control.revoke(run_id, terminate=True, signal="SIGTERM")
    status = store.get_status(run_id) or {}
    if status.get("status") not in FINAL:
        store.set_status(
            run_id, {**status, "status": "cancelled", "reason": "cancelled by a person"}
        )


# -- the lease ----------------------------------------------------------------------------
class Lease:
    """A run's lease in Redis, and the fencing token it came with."""

    def __init__(self, client: Any, run_id: str, ttl_s: float = LEASE_S) -> None:
        self.client = client
        self.key = f"darkfactory:lease:{run_id}"
        self.fence_key = f"darkfactory:fence:{run_id}"
        self.ttl_ms = int(ttl_s * 1000)
        self.token = uuid.uuid4().hex
        self.fence = 0

    def acquire(self) -> bool:
        if not self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self.fence = int(self.client.incr(self.fence_key))
        return True

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.client.eval(_RELEASE, 1, self.key, self.token)

    @contextlib.contextmanager
    def held(self, on_lost: Any) -> Iterator[None]:
        """Renew every third of the expiry while the block runs; ``on_lost()`` if it is lost."""
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self.ttl_ms / 3000):
                try:
                    ok = self.renew()
                except Exception:  # the broker is away: the lease may run out; say so
                    ok = False
                if not ok:
                    on_lost()
                    return

        thread = threading.Thread(target=keep, name="darkfactory-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)


# -- the worker side ----------------------------------------------------------------------
@dataclass
class WorkerSetup:
    broker: str
    store: Path
    work_dir: Path
    project_dir: Path
    hostname: str
    lease_s: float = LEASE_S
    #: The sandbox backend of every run on this worker (None: the request's, else config's).
    backend: str | None = None


_SETUP: WorkerSetup | None = None


def configure(setup: WorkerSetup) -> None:
    """What this worker's tasks use (set before the worker starts, inherited by its children)."""
    global _SETUP
    _SETUP = setup


def run_task(task: Any, run_id: str) -> str:
    """Run (or resume) ``run_id`` to its end or pause; its status."""
    setup = _SETUP
    assert setup is not None, "configure() the worker before it takes tasks"
    store = DirectoryStore(setup.store)
    status = store.get_status(run_id) or {}
    if status.get("status") in FINAL or status.get("status") == "awaiting_approval":
        return str(status["status"])  # a redelivery of a run that ended (or waits): nothing to do
    lease = Lease(redis_client(setup.broker), run_id, setup.lease_s)
    if not lease.acquire():  # another worker has it: come back when it may have ended
        raise task.retry(countdown=max(1.0, setup.lease_s / 3))
    try:
        store.claim(run_id, lease.fence)
        attempts = int(status.get("attempts", 0)) + 1
        store.set_status(
            run_id,
            {"status": "running", "reason": "", "worker": setup.hostname, "attempts": attempts,
             "fence": lease.fence, "updated_at": time.time()},
            fence=lease.fence,
        )  # fmt: skip
        child = _RunProcess(lambda: _run_here(setup, store, run_id, lease.fence))
        # Lost lease (another worker may have it now) or a cancel: the run stops at once.
        previous = signal.signal(signal.SIGTERM, lambda *_: child.kill())
        try:
            with lease.held(child.kill):
                outcome = child.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
        if outcome is None:  # it died without an answer (cancelled, killed, out of memory)
            if (store.get_status(run_id) or {}).get("status") == "cancelled":
                return "cancelled"
            if attempts >= MAX_ATTEMPTS:
                outcome = ("failed", f"its run process died {attempts} times")
            else:
                lease.release()
                raise task.retry(countdown=1.0)
        final, reason = outcome
        store.set_status(
            run_id,
            {"status": final, "reason": reason, "worker": setup.hostname, "attempts": attempts,
             "fence": lease.fence, "updated_at": time.time()},
            fence=lease.fence,
        )  # fmt: skip
        return final
    except StaleFence:
        return "superseded"
    finally:
        lease.release()


class _RunProcess:
    """``fn()`` in a child forked from this (warm) process, in its own process group and
    dying with it; its ``(status, reason)`` comes back through a pipe."""

    def __init__(self, fn: Any) -> None:
        from darkfactory.service.worker import die_with_parent

        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the run
            os.close(read)
            os.setpgid(0, 0)
            die_with_parent()
            try:
                answer = list(fn())
            except BaseException as exc:  # recorded, like a run that failed
                answer = ["failed", f"{type(exc).__name__}: {exc}"]
            os.write(write, json.dumps(answer).encode())
            os._exit(0)
        os.close(write)
        self._read = read

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def wait(self) -> tuple[str, str] | None:
        chunks = []
        while chunk := os.read(self._read, 65536):
            chunks.append(chunk)
        os.close(self._read)
        os.waitpid(self.pid, 0)
        if not chunks:
            return None
        status, reason = json.loads(b"".join(chunks))
        return str(status), str(reason)


def _run_here(setup: WorkerSetup, store: RunStore, run_id: str, fence: int) -> tuple[str, str]:
    """The run in this machine's working directory, rebuilt from the store, synced back
    to it after every journaled step and at its end."""
    from darkfactory.service.queue import Job
    from darkfactory.service.worker import WorkerConfig, run_job
    from darkfactory.workspace import rundir

    runs = setup.work_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    local = runs / run_id
    shutil.rmtree(local, ignore_errors=True)  # this machine's copy may be stale: the store's wins
    store.restore(run_id, runs)
    shutil.rmtree(setup.work_dir / "jobs" / run_id, ignore_errors=True)  # an earlier attempt's
    job_dir = store.get_job(run_id, setup.work_dir / "jobs")
    options = _options(job_dir)
    if setup.backend:
        options["backend"] = setup.backend
    spec_file = next((job_dir / "spec").iterdir())
    job = Job(
        seq=0, id=run_id, status="running", action="resume" if local.exists() else "start",
        title=run_id, spec_file=str(spec_file), options=options, submitted_by="", created_at=0.0,
        updated_at=0.0, started_at=None, finished_at=None, worker_pid=os.getpid(), attempts=0,
        cancel_requested=False, reason="", notified="",
    )  # fmt: skip
    stop = threading.Event()

    def sync() -> None:  # a snapshot after each journaled step
        seen = -1
        while not stop.wait(1.0):
            state = rundir.stored_state(local) if local.is_dir() else None
            steps = len((state or {}).get("journal") or [])
            if state is not None and steps != seen:
                seen = steps
                with contextlib.suppress(FileNotFoundError):
                    store.save(run_id, local, fence=fence)

    syncer = threading.Thread(target=sync, name="darkfactory-sync", daemon=True)
    syncer.start()
    try:
        cfg = WorkerConfig(runs_dir=runs, project_dir=setup.project_dir)
        status, reason = run_job(cfg, job, progress=lambda msg: print(msg, flush=True))
    finally:
        stop.set()
        syncer.join(30)
    if local.is_dir():
        store.save(run_id, local, fence=fence)
    return status, reason


def _options(job_dir: Path) -> dict[str, Any]:
    import json

    path = job_dir / "options.json"
    options: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    tools = options.get("tools_dir")
    if tools and not Path(tools).is_dir():  # the server's machine's path: not here
        options["tools_dir"] = None
    return options


def node_name() -> str:
    return f"darkfactory@{socket.gethostname()}-{os.getpid()}"
