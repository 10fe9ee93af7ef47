"""How the service shows a run: a summary for lists, the detail (its report), its diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from darkfactory.reporting.report import llm_usage
from darkfactory.service.queue import ACTIVE, Job
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import rundir


class ServiceContext(Protocol):
    """What these views need of the service (``context.ServiceContext``)."""

    runs_dir: Path


#: Git's empty tree: a new project's diff is every file it has.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
MAX_DIFF = 200_000


#: A run's usage, by trace file, with the (mtime, size) it was read at: the run list asks
#: for every run's every few seconds, and only a running run's trace changes.
_USAGE: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _usage(trace: Path) -> dict[str, Any]:
    try:
        st = trace.stat()
    except FileNotFoundError:
        return llm_usage(trace)
    key = (st.st_mtime_ns, st.st_size)
    seen = _USAGE.get(trace)
    if seen is None or seen[0] != key:
        seen = (key, llm_usage(trace))
        _USAGE[trace] = seen
    return seen[1]


def _state(run_dir: Path) -> dict[str, Any]:
    return rundir.stored_state(run_dir) or {} if run_dir.is_dir() else {}


def summary(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    """One line of the run list: status, phase, cost so far."""
    run_dir = ctx.runs_dir / job.id
    state = _state(run_dir)
    usage = _usage(run_dir / rundir.TRACE_FILE)
    return {
        "id": job.id,
        "status": job.status,
        "title": job.title,
        "phase": state.get("phase"),
        "reason": job.reason or state.get("reason", ""),
        "submitted_by": job.submitted_by,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "attempts": job.attempts,
        "llm_calls": usage["calls"],
        "cost_usd": usage["cost_usd"],
        "model": job.options.get("model"),
        "scripted": str(job.options.get("model") or "").startswith(("scripted:", "replay:")),
        "checkpoint": (state.get("pending_checkpoint") or {}).get("checkpoint")
        if job.status == "awaiting_approval"
        else None,
    }


def detail(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    """The run's ``report.json`` once it has one, with the service's view on top."""
    run_dir = ctx.runs_dir / job.id
    report_file = run_dir / "report.json"
    report: dict[str, Any] = {}
    if job.status not in ACTIVE and report_file.is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
    state = _state(run_dir)
    pending = state.get("pending_checkpoint") if job.status == "awaiting_approval" else None
    return {
        **report,
        **summary(ctx, job),
        "pending_checkpoint": pending,
        "requirements": report.get("requirements") or state.get("requirements") or [],
    }


def diff(ctx: ServiceContext, run_id: str) -> str:
    """The workspace against its base (a repository run) or against nothing (a new project)."""
    run_dir = ctx.runs_dir / run_id
    workspace = run_dir / rundir.WORKSPACE_DIR
    if not (workspace / ".git").is_dir():
        return ""
    base = EMPTY_TREE
    record = run_dir / "repo.json"
    if record.is_file():
        base = json.loads(record.read_text(encoding="utf-8")).get("base_sha") or EMPTY_TREE
    text = gitrepo.run(workspace, "diff", "--no-ext-diff", "--no-textconv", base)
    if len(text) > MAX_DIFF:
        return text[:MAX_DIFF] + "\n[... cut: the rest is in the workspace]"
    return text
