"""What every part of the running service shares: the queue, the workers, the settings,
and the monitor thread that keeps workers alive and sends notifications."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkfactory import __version__
from darkfactory.config import Config
from darkfactory.service.auth import Csrf, Principal, TokenStore
from darkfactory.service.notify import Notifier, RunEvent
from darkfactory.service.queue import PAUSED, Job, JobQueue
from darkfactory.service.settings import NOTIFY_EVENTS, ServiceSettings
from darkfactory.service.submit import Checked, Rejected, RunRequest, check_request
from darkfactory.service.worker import WorkerPool

if TYPE_CHECKING:
    from darkfactory.service.dispatch import Dispatcher

MONITOR_S = 0.25


@dataclass
class ServiceContext:
    runs_dir: Path
    project_dir: Path
    config: Config
    settings: ServiceSettings
    tokens: TokenStore
    queue: JobQueue
    public_url: str
    backend: str | None = None
    pool: WorkerPool | None = None
    #: ``serve --broker``: runs go to Celery workers (no local pool then).
    dispatcher: Dispatcher | None = None
    notifier: Notifier | None = None
    version: str = __version__
    github_key: bytes = b""
    csrf: Csrf = field(default_factory=lambda: Csrf(secrets.token_bytes(32)))
    _status: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _monitor: threading.Thread | None = None

    # -- requests ------------------------------------------------------------------------
    def submit(self, req: RunRequest, who: Principal) -> Job:
        root = Path(self.settings.scripted_root or self.project_dir)
        checked: Checked = check_request(
            req,
            runs_dir=self.runs_dir,
            config=self.config,
            scripted_root=root,
            max_spec_bytes=self.settings.max_spec_bytes,
            backend=self.backend,
            repo_roots=[Path(r) for r in self.settings.repo_roots],
        )
        job = self.queue.submit(
            checked.run_id,
            title=checked.title,
            spec_file=checked.spec_file,
            options=checked.options,
            by=who.name,
        )
        self._refresh()
        return job

    def decide(self, job: Job, *, reject: bool, reason: str, who: Principal) -> None:
        """Record the decision in the paused run, then queue it to go on."""
        from darkfactory.engine import session
        from darkfactory.errors import InputError

        by = f"{who.name} ({who.role}, darkfactory serve)"
        try:
            if self.dispatcher is not None:  # the run lives in the run store
                self.dispatcher.decide(job, reject=reject, reason=reason, by=by)
            else:
                session.approve(self.runs_dir / job.id, reject=reject, reason=reason, by=by)
        except InputError as exc:
            raise Rejected(409, exc.message) from None
        if not self.queue.requeue(job.id, action="resume", from_status=PAUSED):
            raise Rejected(409, f"run {job.id} was decided by someone else just now")
        self._refresh()

    def cancel(self, run_id: str) -> str:
        """Cancel a run (on a Celery worker too); its status after the call."""
        status = self.queue.cancel(run_id)
        if self.dispatcher is not None:
            self.dispatcher.cancel(run_id)
        self._refresh()
        return status

    def github_secret(self) -> bytes:
        return self.github_key

    def status_of(self, run_id: str) -> dict[str, Any]:
        """The run's status as the monitor last saw it (SSE clients ask many times a second)."""
        seen = self._status.get(run_id)
        if seen is None:
            self._refresh()
            seen = self._status.get(run_id, {"status": "unknown", "reason": ""})
        return seen

    # -- the monitor ---------------------------------------------------------------------
    def start(self) -> None:
        """Queue again what a previous server left running, start the workers and the
        monitor. Called once, before the first request."""
        self.queue.recover(alive=set())
        if self.pool is not None:
            self.pool.start()
        self._refresh()
        self._monitor = threading.Thread(
            target=self._watch, name="darkfactory-monitor", daemon=True
        )
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(5)
        if self.pool is not None:
            self.pool.stop()
        if self.notifier is not None:
            self.notifier.close()

    def _watch(self) -> None:
        while not self._stop.wait(MONITOR_S):
            with contextlib.suppress(Exception):  # a locked database: next time
                if self.pool is not None and self.pool.keep_alive():
                    self.queue.recover(alive=self.pool.pids())
                if self.dispatcher is not None:
                    self.dispatcher.tick()
                self._refresh()
                self._notify()

    def _refresh(self) -> None:
        self._status = {
            job.id: {"status": job.status, "reason": job.reason, "updated_at": job.updated_at}
            for job in self.queue.list(limit=10_000)
        }

    def _notify(self) -> None:
        if self.notifier is None:
            return
        for job in self.queue.list(limit=200):
            key = f"{job.status}@{job.updated_at}"
            if job.status not in NOTIFY_EVENTS or job.notified == key:
                continue
            self.queue.mark_notified(job.id, key)
            self.notifier.send(self.event(job))

    def event(self, job: Job) -> RunEvent:
        from darkfactory.service.runs import summary

        base = self.public_url.rstrip("/")
        links = {"run": f"{base}/runs/{job.id}", "report": f"{base}/api/runs/{job.id}/report.html"}
        if job.status == PAUSED:
            links["approve"] = f"{base}/inbox#{job.id}"
        return RunEvent(
            run_id=job.id,
            status=job.status,
            title=job.title,
            reason=job.reason,
            links=links,
            cost_usd=summary(self, job)["cost_usd"],
        )


def wait_for(check: Any, timeout: float, every: float = 0.1) -> Any:
    """``check()`` until it returns something true, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return None
