"""What a run directory holds, and who works in it: the one place that knows its layout.

``runs/<id>/``: ``spec/`` (the spec as given, ``spec.json`` as parsed), ``config/`` and
the project's ``tools/`` (as the run started with them), ``acceptance/`` (the frozen tests), ``sealed/`` and ``holdout.json`` (the sealed holdout), ``workspace/`` (the project, a git repository),
``trace.jsonl``, ``report.*``, ``.lock``; ``runs/flows.db`` holds every run's flow state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from darkfactory.errors import InputError
from darkfactory.spec import AcceptanceTest, Spec
from darkfactory.workspace import hostio

SPEC_DIR = "spec"
SPEC_JSON = "spec.json"
ACCEPTANCE_DIR = "acceptance"
#: The sealed holdout (``engine.holdout``): tests no agent sees, and which ones they are.
SEALED_DIR = "sealed"
HOLDOUT_FILE = "holdout.json"
WORKSPACE_DIR = "workspace"
TRACE_FILE = "trace.jsonl"
LOCK_FILE = ".lock"
#: What no phase commit takes: a new project's ``.gitignore``, a clone's ``.git/info/exclude``.
WORKSPACE_IGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\nsite/\n"
#: CrewAI's flow persistence (SQLite), shared by the runs of one runs directory.
FLOWS_DB = "flows.db"


def new_run_id(title: str) -> str:
    """``20261207-081500-word-count-cli-3f9a``: when, what, and 16 random bits."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:32] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


def spec_json(run_dir: Path) -> Path:
    return run_dir / SPEC_DIR / SPEC_JSON


def load_spec(run_dir: Path) -> Spec:
    """The spec as the run parsed it, with the acceptance tests it froze (if any)."""
    spec = Spec.model_validate_json(spec_json(run_dir).read_text(encoding="utf-8"))
    return with_frozen_tests(spec, run_dir)


def with_frozen_tests(spec: Spec, run_dir: Path) -> Spec:
    """``spec`` with the acceptance tests frozen in ``run_dir/acceptance`` (if there are any)
    and the sealed ones of ``run_dir/sealed``: for requirement links on the host, never a prompt.
    """
    found, _ = hostio.files(run_dir, ACCEPTANCE_DIR, suffix=".py")
    if not found:
        return spec
    sealed, _ = hostio.files(run_dir, SEALED_DIR, suffix=".py")
    tests = [
        AcceptanceTest(name=name, content=data.decode("utf-8", "replace"))
        for name, data in [*found.items(), *sealed.items()]
    ]
    return spec.model_copy(update={"acceptance_tests": tests})


class RunBusy(InputError):
    """Another process is working in this run directory."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock (``fcntl.flock``): two processes never drive the same run."""
    path = run_dir / LOCK_FILE
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


def run_busy(run_dir: Path) -> bool:
    """Whether a process holds the run's lock (is working on it right now)."""
    path = run_dir / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def run_busy_seen(run_dir: Path) -> bool:
    """``run_busy`` for a caller that asks again and again (``darkfactory watch``): it never
    takes the lock itself, which a run starting that moment would find taken (``RunBusy``).

    Linux lists every held ``flock`` in ``/proc/locks`` by inode. Where it does not show
    this one, a lock file naming a process that is gone is not held; only one naming a live
    process is tried, as ``run_busy`` does.
    """
    path = run_dir / LOCK_FILE
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text(encoding="ascii", errors="replace").splitlines():
            fields = line.split()
            if len(fields) > 5 and "FLOCK" in fields and fields[5].endswith(f":{inode}"):
                return True
    owner = path.read_text(encoding="utf-8", errors="replace").removeprefix("pid ").strip()
    if owner.isdigit():
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            pass
    return run_busy(run_dir)


def stored_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's last saved flow state, read as CrewAI's ``SQLiteFlowPersistence.load_state``
    reads it, but without importing CrewAI (2-3 s), which ``darkfactory report`` never needs."""
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


def resolve_run(runs_dir: Path, ref: str) -> Path:
    """The run directory ``ref`` names: its path, its id under ``runs_dir``, or the start of
    one id there; else an ``InputError`` that says which runs there are."""
    given = Path(ref)
    if given.is_dir() and ((given / TRACE_FILE).exists() or (given / SPEC_DIR).is_dir()):
        return given.resolve()
    runs = (
        sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and (p / SPEC_DIR).is_dir())
        if runs_dir.is_dir()
        else []
    )
    matches = [ref] if ref in runs else [name for name in runs if name.startswith(ref)]
    if len(matches) == 1 and ref and "/" not in ref:
        return (runs_dir / matches[0]).resolve()
    if len(matches) > 1 and ref:
        raise InputError(
            f"{ref!r} is the start of {len(matches)} runs' ids",
            file=runs_dir,
            hint="give more of the id: " + ", ".join(matches[-5:]),
        )
    raise InputError(
        f"no run directory {ref!r} here",
        file=runs_dir,
        hint=("runs here: " + ", ".join(runs[-5:]))
        if runs
        else "pass the runs directory with --out, or the run's directory itself",
    )


def find_run(runs_dir: Path, run_id: str) -> Path:
    """The directory of run ``run_id`` under ``runs_dir``, or an ``InputError`` naming the runs."""
    run_dir = runs_dir / run_id
    if not (run_dir / WORKSPACE_DIR).is_dir() or not spec_json(run_dir).is_file():
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
