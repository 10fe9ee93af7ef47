"""The service's queue and run index: one SQLite file beside the runs (``service.db``).

A job is one run as the service knows it: its id (the run's id), its status, what to do
next (``start`` a new run, or ``resume`` one: after an approval, or after a crash), and
who asked. Workers claim queued jobs atomically (``BEGIN IMMEDIATE``); every change is a
committed transaction, so a ``kill -9`` of the server or a worker loses nothing: at start
``recover`` queues again what was running (to resume), and queued jobs simply wait.

Statuses: ``queued``, ``running``, then the run's own end status (``delivered``,
``failed``, ``escalated``, ``rejected``, ``budget_exhausted``), ``awaiting_approval``
(paused; an approval queues it again), or ``cancelled``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

DB_FILE = "service.db"
ACTIVE = ("queued", "running")
#: Statuses a job can be approved, rejected or cancelled in.
PAUSED = "awaiting_approval"
FINAL = ("delivered", "failed", "escalated", "rejected", "budget_exhausted", "cancelled")
STATUSES = (*ACTIVE, PAUSED, *FINAL)
#: A run that crashed its worker this many times is failed, not started again.
MAX_ATTEMPTS = 3
#: The ``worker_pid`` of a job sent to Celery workers (``serve --broker``): the run store,
#: not this server, knows how it goes.
REMOTE = -1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    action TEXT NOT NULL,
    title TEXT NOT NULL,
    spec_file TEXT NOT NULL,
    options TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    worker_pid INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    notified TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Job:
    seq: int
    id: str
    status: str
    action: str
    title: str
    spec_file: str
    options: dict[str, Any]
    submitted_by: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    worker_pid: int | None
    attempts: int
    cancel_requested: bool
    reason: str
    notified: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["options"] = json.loads(data["options"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


class JobQueue:
    """The jobs of one runs directory. Safe to use from several processes at once."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.runs_dir / DB_FILE
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # -- submitting and reading ----------------------------------------------------------
    def submit(
        self, run_id: str, *, title: str, spec_file: Path, options: dict[str, Any], by: str
    ) -> Job:
        now = time.time()
        with self._tx(immediate=True) as db:
            db.execute(
                "INSERT INTO jobs (id, status, action, title, spec_file, options, submitted_by,"
                " created_at, updated_at) VALUES (?, 'queued', 'start', ?, ?, ?, ?, ?, ?)",
                (run_id, title, str(spec_file), json.dumps(options), by, now, now),
            )
        return self.get_or_raise(run_id)

    def get(self, run_id: str) -> Job | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (run_id,)).fetchone()
        return Job.from_row(row) if row else None

    def get_or_raise(self, run_id: str) -> Job:
        job = self.get(run_id)
        if job is None:
            raise KeyError(run_id)
        return job

    def list(self, status: str | None = None, limit: int = 500) -> list[Job]:
        query, args = "SELECT * FROM jobs", cast(tuple[str, ...], ())
        if status:
            query, args = query + " WHERE status = ?", (status,)
        with self._tx() as db:
            rows = db.execute(query + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [Job.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    # -- workers -------------------------------------------------------------------------
    def claim(self, worker_pid: int) -> Job | None:
        """The oldest queued job, now ``running`` on ``worker_pid``; None when none waits."""
        now = time.time()
        with self._tx(immediate=True) as db:
            row = db.execute(
                "UPDATE jobs SET status = 'running', worker_pid = ?, attempts = attempts + 1,"
                " started_at = COALESCE(started_at, ?), updated_at = ?"
                " WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1)"
                " RETURNING *",
                (worker_pid, now, now),
            ).fetchone()
        return Job.from_row(row) if row else None

    def finish(self, run_id: str, status: str, reason: str, *, worker_pid: int) -> bool:
        """Record how the run ended (or paused). Only the worker that holds the job may:
        one that lost it (the job was given to another after a crash) changes nothing."""
        assert status in STATUSES, status
        now = time.time()
        with self._tx(immediate=True) as db:
            cur = db.execute(
                "UPDATE jobs SET status = ?, reason = ?, updated_at = ?, worker_pid = NULL,"
                " finished_at = CASE WHEN ? THEN ? ELSE finished_at END"
                " WHERE id = ? AND status = 'running' AND worker_pid = ?",
                (status, reason, now, status in FINAL, now, run_id, worker_pid),
            )
        return cur.rowcount == 1

    def requeue(self, run_id: str, *, action: str, from_status: str, reason: str = "") -> bool:
        """Queue a job again (``resume`` after an approval or a crash); False if its
        status was not ``from_status`` (someone else got there first)."""
        with self._tx(immediate=True) as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'queued', action = ?, reason = ?, updated_at = ?,"
                " worker_pid = NULL WHERE id = ? AND status = ?",
                (action, reason, time.time(), run_id, from_status),
            )
        return cur.rowcount == 1

    def recover(self, alive: set[int]) -> builtins.list[Job]:
        """Jobs left ``running`` by workers that are gone (a crash, a ``kill -9`` of the
        server): queued again to resume, or failed after ``MAX_ATTEMPTS`` crashes."""
        now = time.time()
        with self._tx(immediate=True) as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            lost = [Job.from_row(r) for r in rows if r["worker_pid"] not in alive | {REMOTE}]
            for job in lost:
                if job.cancel_requested:
                    status, reason = "cancelled", "cancelled while its worker stopped"
                elif job.attempts >= MAX_ATTEMPTS:
                    status = "failed"
                    reason = f"its worker stopped {job.attempts} times while running it"
                else:
                    status, reason = "queued", "its worker stopped; it resumes"
                db.execute(
                    "UPDATE jobs SET status = ?, action = 'resume', reason = ?, updated_at = ?,"
                    " worker_pid = NULL WHERE id = ?",
                    (status, reason, now, job.id),
                )
        return lost

    # -- people --------------------------------------------------------------------------
    def cancel(self, run_id: str) -> str:
        """Cancel a job: at once when it is not running, else ask its worker to stop it.
        Returns the job's status after the call."""
        now = time.time()
        with self._tx(immediate=True) as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', reason = 'cancelled', updated_at = ?,"
                " finished_at = ? WHERE id = ? AND status IN ('queued', ?)",
                (now, now, run_id, PAUSED),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?"
                " AND status = 'running'",
                (now, run_id),
            )
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (run_id,)).fetchone()
        return str(row[0]) if row else "unknown"

    def cancel_requested(self, run_id: str) -> bool:
        with self._tx() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def first_delivery(self, delivery: str) -> str | None:
        """The run a webhook delivery (its id) already became, if it did."""
        with self._tx() as db:
            row = db.execute(
                "SELECT run_id FROM deliveries WHERE delivery = ?", (delivery,)
            ).fetchone()
        return str(row[0]) if row else None

    def record_delivery(self, delivery: str, run_id: str) -> None:
        with self._tx(immediate=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO deliveries (delivery, run_id, at) VALUES (?, ?, ?)",
                (delivery, run_id, time.time()),
            )

    def mark_notified(self, run_id: str, status: str) -> None:
        with self._tx(immediate=True) as db:
            db.execute("UPDATE jobs SET notified = ? WHERE id = ?", (status, run_id))
