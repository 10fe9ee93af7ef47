"""``serve --broker``: the server sends queued runs to Celery workers instead of running them.

Each tick of the server's monitor: the run store's statuses come back into the server's
index (and a run whose status changed is mirrored into the server's ``runs/`` for its
pages, report and files), then queued runs are sent while the global caps allow: runs in
flight (``dispatch.max_in_flight``) and dollars spent in the last hour
(``dispatch.max_usd_per_hour``). A paused run is approved here: the server takes the run's
lease like a worker, records the decision in the store, and sends the run again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from darkfactory.service import distributed
from darkfactory.service.queue import PAUSED, REMOTE, Job, JobQueue
from darkfactory.service.store import RunStore

#: Seconds between mirrors of a running run's latest snapshot into the server's runs/.
MIRROR_S = 10.0


@dataclass
class Dispatcher:
    app: Celery
    store: RunStore
    queue: JobQueue
    runs_dir: Path
    broker: str
    queue_name: str = distributed.QUEUE
    max_in_flight: int | None = None
    max_usd_per_hour: float | None = None
    _seen: dict[str, float] = field(default_factory=dict)
    _mirrored: dict[str, float] = field(default_factory=dict)
    #: (time, dollars) of runs that ended, for the hourly cap.
    _spent: list[tuple[float, float]] = field(default_factory=list)

    def tick(self) -> None:
        self._collect()
        self._send()

    # -- statuses back ---------------------------------------------------------------------
    def _collect(self) -> None:
        # Only the runs in flight are read: the cost of a tick grows with the workers'
        # runs, not with every run the store has ever held.
        for job in self.queue.list("running", limit=10_000):
            if job.worker_pid != REMOTE:
                continue
            status = self.store.get_status(job.id) or {}
            changed = status.get("updated_at", 0) != self._seen.get(job.id)
            if changed or time.time() - self._mirrored.get(job.id, 0) > MIRROR_S:
                self._mirror(job.id)
            self._seen[job.id] = status.get("updated_at", 0)
            state = status.get("status")
            if state in distributed.FINAL or state == PAUSED:
                self.queue.finish(job.id, state, status.get("reason", ""), worker_pid=REMOTE)
                self._spent.append((time.time(), float(status.get("cost_usd") or 0.0)))

    def _mirror(self, run_id: str) -> None:
        """The store's latest snapshot of the run, as the server's own copy."""
        self._mirrored[run_id] = time.time()
        local = self.runs_dir / run_id
        scratch = self.runs_dir / ".service" / "mirror"
        shutil.rmtree(scratch / run_id, ignore_errors=True)
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            if self.store.restore(run_id, scratch) is None:
                return
        except Exception:  # a snapshot being replaced: the next tick takes the next one
            return
        shutil.rmtree(local, ignore_errors=True)
        (scratch / run_id).rename(local)
        from darkfactory.workspace import rundir

        state = rundir.stored_state(local)
        if state is not None:  # the server's flows.db holds what its pages read
            from darkfactory.engine.session import persistence_for
            from darkfactory.engine.state import RunState

            persistence_for(local).save_state(
                flow_uuid=run_id, method_name="mirrored", state_data=RunState.model_validate(state)
            )

    # -- runs out --------------------------------------------------------------------------
    def _room(self) -> bool:
        if self.max_in_flight is not None:
            in_flight = sum(
                1 for j in self.queue.list("running", limit=10_000) if j.worker_pid == REMOTE
            )
            if in_flight >= self.max_in_flight:
                return False
        if self.max_usd_per_hour is not None:
            hour_ago = time.time() - 3600
            self._spent = [(t, usd) for t, usd in self._spent if t > hour_ago]
            if sum(usd for _, usd in self._spent) >= self.max_usd_per_hour:
                return False
        return True

    def _send(self) -> None:
        while self._room():
            job = self.queue.claim(REMOTE)
            if job is None:
                return
            try:
                if job.action == "start" and self.store.get_status(job.id) is None:
                    self._put(job)
                    self.store.set_status(job.id, {"status": "queued", "reason": "", "attempts": 0,
                                                   "updated_at": time.time()})  # fmt: skip
                distributed.enqueue(self.app, job.id, self.queue_name)
            except Exception as exc:  # the broker is away: the run waits in our queue
                self.queue.requeue(job.id, action=job.action, from_status="running",
                                   reason=f"not sent yet: {exc}")  # fmt: skip
                return

    def _put(self, job: Job) -> None:
        job_dir = Path(job.spec_file).parent.parent
        (job_dir / "options.json").write_text(json.dumps(job.options), encoding="utf-8")
        self.store.put_job(job.id, job_dir)

    # -- people ----------------------------------------------------------------------------
    def decide(self, job: Job, *, reject: bool, reason: str, by: str) -> None:
        """A paused run's decision, recorded in the store under the run's lease."""
        from darkfactory.engine import session
        from darkfactory.service.submit import Rejected

        lease = distributed.Lease(distributed.redis_client(self.broker), job.id)
        if not lease.acquire():
            raise Rejected(409, f"run {job.id} is held by a worker right now; try again")
        try:
            self.store.claim(job.id, lease.fence)
            local = self.runs_dir / job.id
            shutil.rmtree(local, ignore_errors=True)
            if self.store.restore(job.id, self.runs_dir) is None:
                raise Rejected(409, f"run {job.id} has nothing saved in the run store")
            session.approve(local, reject=reject, reason=reason, by=by)
            self.store.save(job.id, local, fence=lease.fence)
            status: dict[str, Any] = dict(self.store.get_status(job.id) or {})
            status.update(status="queued", reason=f"{'rejected' if reject else 'approved'} by {by}",
                          updated_at=time.time())  # fmt: skip
            self.store.set_status(job.id, status, fence=lease.fence)
        finally:
            lease.release()

    def cancel(self, run_id: str) -> None:
        distributed.cancel(self.app, self.store, run_id)
