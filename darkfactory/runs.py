"""Running a run to its end, and resuming one that was stopped.

A run directory is locked (``fcntl.flock`` on ``runs/<id>/.lock``) while a process works
in it, so two processes never drive the same run. The flow's state lives in
``runs/flows.db`` (CrewAI's SQLite persistence), saved after every step.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkfactory import gitrepo
from darkfactory.errors import DarkFactoryError, ExitCode, InputError
from darkfactory.progress import Progress
from darkfactory.report import run_busy
from darkfactory.runner import SPEC_JSON, RunEnv

STATUS_EXIT = {
    "delivered": ExitCode.DELIVERED,
    "failed": ExitCode.FAILED,
    "escalated": ExitCode.FAILED,
    "rejected": ExitCode.FAILED,
    "awaiting_approval": ExitCode.AWAITING_APPROVAL,
    "budget_exhausted": ExitCode.BUDGET_EXHAUSTED,
}
FLOWS_DB = "flows.db"


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    status: str
    reason: str
    report: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return int(STATUS_EXIT.get(self.status, ExitCode.FAILED))


class RunBusy(InputError):
    """Another process is working in this run directory."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    path = run_dir / ".lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise RunBusy(
                f"the run is in use by {owner}",
                file=run_dir,
                hint="wait for it to finish, or stop that process first",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def persistence_for(run_dir: Path) -> Any:
    from crewai.flow.persistence import SQLiteFlowPersistence

    return SQLiteFlowPersistence(str(run_dir.parent / FLOWS_DB))


def execute(
    env: RunEnv, *, cli_model: str | None = None, backend: str = "auto", resume: bool = False
) -> RunOutcome:
    """Drive the flow to its end (or its failure), then write the report."""
    from crewai.flow import HumanFeedbackPending

    from darkfactory.budget import BudgetExhausted
    from darkfactory.flowstate import ACCEPTANCE_DIR, SpecAmbiguity
    from darkfactory.llms.guarded import ProviderError
    from darkfactory.llms.secrets import RedactingStream, redact_secrets, redacted_logs
    from darkfactory.pipeline import FactoryFlow
    from darkfactory.report import write_report
    from darkfactory.trace import CrewEventBridge

    with run_lock(env.run_dir):
        flow = FactoryFlow(persistence=persistence_for(env.run_dir), suppress_flow_events=True)
        flow._run = env
        inputs: dict[str, Any] = {"id": env.run_id}
        if resume:
            stored = flow.persistence.load_state(env.run_id) if flow.persistence else None
            if not stored:
                raise InputError(
                    "no saved state for this run (it stopped before its first step finished)",
                    file=env.run_dir,
                    hint="start it again with darkfactory run",
                )
            done = [e["step"] for e in stored.get("journal", [])]
            stashed = gitrepo.stash_uncommitted(
                env.workspace, f"interrupted after {done[-1] if done else 'start'}"
            )
            env.trace.write("run_resumed", after=done, stashed=stashed, prices=env.models.prices())
            if stored.get("acceptance_frozen"):
                env.ctx.protected.add(ACCEPTANCE_DIR)
            elif stored.get("journal"):
                env.ctx.protected.discard(ACCEPTANCE_DIR)
            scripted = env.models.scripted
            if scripted is not None:
                scripted.restore(stored.get("model_cursor") or {})
            env.progress(
                f"resuming after: {', '.join(e['step'] for e in stored.get('journal', []))}"
            )
            # Running again: a stop, pause or budget stop before is history (in the trace).
            inputs.update({"status": "running", "reason": ""})
        else:
            flow._skip_persistence_restore = True  # a new run: nothing to restore under its id
            inputs.update(
                {
                    "run_dir": str(env.run_dir),
                    "cli_model": cli_model,
                    "backend": backend,
                    "budget_limits": env.budget.state()["limits"],
                }
            )
            env.trace.write(
                "run_start",
                run_id=env.run_id,
                spec={
                    "format": env.spec.format,
                    "title": env.spec.title,
                    "source": env.spec.source,
                },
                sandbox=env.sandbox.backend,
                models={role: env.models.model_name(role) for role in env.config.agents},
                prices=env.models.prices(),
            )
        # Models: retries traced and budgeted, the recording started (llms.ModelPlan).
        env.models.bind_run(
            run_dir=env.run_dir, run_id=env.run_id, trace=env.trace, budget=env.budget
        )
        live = env.progress if isinstance(env.progress, Progress) else None
        if live is not None:
            live.start()
        try:
            # CrewAI prints progress to stdout; ours is for results (--json must stay JSON).
            # No key reaches the console or a log line (CrewAI prints provider errors).
            # (The bridge is innermost: it flushes CrewAI's event handlers, which print
            # from their own threads, while stdout is still redirected.)
            with (
                redacted_logs() as secrets,
                contextlib.redirect_stdout(RedactingStream(sys.stderr, secrets)),
                CrewEventBridge(env.trace),
            ):
                result = flow.kickoff(inputs=inputs)
            if isinstance(result, HumanFeedbackPending):  # an `ask` checkpoint, no terminal
                pending = flow.state.pending_checkpoint or {}
                flow.state.status = "awaiting_approval"
                flow.state.reason = (
                    f"waiting for a person at {pending.get('checkpoint')}: "
                    f"{pending.get('approve')}  (or: {pending.get('reject')})"
                )
                env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except BudgetExhausted as exc:
            flow.state.status = "budget_exhausted"
            flow.state.reason = (
                f"{exc} in phase {flow.state.phase}; raise the budget and continue with: "
                f"darkfactory resume {env.run_id}"
            )
            env.trace.write("budget", exhausted=exc.which, **env.budget.state())
            env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except SpecAmbiguity as exc:
            flow.state.status = "escalated"
            flow.state.reason = str(exc)
            env.trace.write("escalation", reason=flow.state.reason, questions=exc.questions)
            env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except ProviderError as exc:  # the provider stayed down or refused (llms.guarded)
            flow.state.status = "failed"
            flow.state.reason = redact_secrets(
                f"{exc} (role {exc.role}, phase {flow.state.phase}); {exc.when}, "
                f"continue with: darkfactory resume {env.run_id}"
            )
            env.trace.write("run_end", status="failed", reason=flow.state.reason)
        except DarkFactoryError as exc:
            flow.state.status = "failed"
            flow.state.reason = redact_secrets(f"{type(exc).__name__}: {exc}")
            env.trace.write("run_end", status="failed", reason=flow.state.reason)
        except BaseException as exc:  # a bug or an interrupt: record it, then re-raise
            flow.state.status = "failed"
            flow.state.reason = redact_secrets(
                f"stopped in phase {flow.state.phase} by {type(exc).__name__}: {exc}; "
                f"continue with: darkfactory resume {env.run_id}"
            )
            env.trace.write("run_end", status="failed", reason=flow.state.reason)
            _report(env, flow, write_report)
            raise
        finally:
            if live is not None:
                live.stop()
            env.sandbox.close()
            env.models.close()
        report = _report(env, flow, write_report)
        env.trace.close()
    return RunOutcome(env.run_id, env.run_dir, flow.state.status, flow.state.reason, report)


def _report(env: RunEnv, flow: Any, write_report: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    if not flow.state.finished_at:
        flow.state.finished_at = time.time()
    flow.state.budget_used = env.budget.state()
    if flow.persistence is not None:  # the end state too, not only the last finished step
        flow.persistence.save_state(
            flow_uuid=env.run_id, method_name="_run_end", state_data=flow.state
        )
    return write_report(env.run_dir, flow.state.model_dump())


def find_run(runs_dir: Path, run_id: str) -> Path:
    run_dir = runs_dir / run_id
    if not (run_dir / "workspace").is_dir() or not (run_dir / "spec" / SPEC_JSON).is_file():
        known = (
            sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
        )
        raise InputError(
            f"no run {run_id!r} here",
            file=runs_dir,
            hint=("runs here: " + ", ".join(known[-5:]))
            if known
            else "pass the runs directory with --out",
        )
    return run_dir.resolve()


def stored_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's last saved flow state, read as CrewAI's ``SQLiteFlowPersistence.load_state``
    reads it, but without importing CrewAI (2-3 s), which ``darkfactory report`` never needs."""
    import json
    import sqlite3

    db = run_dir.parent / FLOWS_DB
    if not db.is_file():
        return None
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            row = conn.execute(
                "SELECT state_json FROM flow_states WHERE flow_uuid = ? ORDER BY id DESC LIMIT 1",
                (run_dir.name,),
            ).fetchone()
        except sqlite3.OperationalError:  # no table yet: nothing was saved
            return None
    state = json.loads(row[0]) if row else None
    return state if isinstance(state, dict) else None


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run in ``runs_dir``, oldest first: id, spec, status, duration, cost."""
    import json

    rows: list[dict[str, Any]] = []
    if not runs_dir.is_dir():
        return rows
    for run_dir in sorted(p for p in runs_dir.iterdir() if (p / "spec" / SPEC_JSON).is_file()):
        report_file = run_dir / "report.json"
        if report_file.is_file():
            report = json.loads(report_file.read_text(encoding="utf-8"))
            rows.append(
                {
                    "run_id": run_dir.name,
                    "spec": report["spec"]["title"],
                    "status": report["status"],
                    "age_s": _age(report.get("started_at")),
                    "duration_s": report.get("duration_s"),
                    "cost_usd": report["llm"].get("cost_usd"),
                }
            )
            continue
        state = stored_state(run_dir) or {}
        spec = json.loads((run_dir / "spec" / SPEC_JSON).read_text(encoding="utf-8"))
        busy = run_busy(run_dir)
        rows.append(
            {
                "run_id": run_dir.name,
                "spec": spec.get("title", "?"),
                "status": "running" if busy else f"stopped ({state.get('phase', 'before start')})",
                "age_s": _age(state.get("started_at")),
                "duration_s": None,
                "cost_usd": None,
            }
        )
    return rows


def _age(started_at: float | None) -> float | None:
    return round(time.time() - started_at, 1) if started_at else None


def format_age(seconds: float | None) -> str:
    """``42s``, ``7m``, ``3h``, ``2d``: how long ago a run started."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
