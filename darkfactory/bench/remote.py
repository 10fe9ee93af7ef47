"""``bench --broker``: a suite's spec entries run on Celery workers, scored here.

Each entry's spec is queued as the service queues a request (``service.submit``), sent to
the workers, and waited for in the run store; its run is then rebuilt here from the store
and scored with the hidden tests exactly as a local run is. A repository task goes as its
ticket with the repository the bench prepared (a path the workers must reach: the same
machine, or a shared filesystem); a test-suite spec (a folder) runs here as before.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from darkfactory.errors import STATUS_EXIT, ExitCode

POLL_S = 0.5


def connect(broker: str, store: Path) -> None:
    """The broker answers and the store is writable, or an ``InputError`` (exit 2)."""
    from darkfactory.service import distributed
    from darkfactory.service.store import DirectoryStore

    distributed.check_broker(broker)
    DirectoryStore(store).check()


def run_remote(
    spec: Path,
    *,
    target: dict[str, str] | None = None,
    broker: str,
    store: Path,
    runs_dir: Path,
    model: str | None,
    sandbox: str | None,
    config: Path | None,
    timeout: float,
) -> tuple[int, str, str]:
    """``(exit code, the report as JSON, a note)``, as a local ``darkfactory run --json``."""
    from darkfactory.config import load_config
    from darkfactory.service import distributed
    from darkfactory.service.store import DirectoryStore
    from darkfactory.service.submit import RunRequest, SpecUpload, check_request

    run_store = DirectoryStore(store)
    request = RunRequest.model_validate(
        {
            "spec": SpecUpload(filename=spec.name, content=spec.read_text(encoding="utf-8")),
            "model": model,
            **(target or {}),
        }
    )
    checked = check_request(
        request,
        runs_dir=runs_dir,
        config=load_config(config),
        scripted_root=Path("/"),  # the bench's own playbooks: the user's files, trusted
        max_spec_bytes=10_000_000,
        backend=sandbox,
        repo_roots=[Path("/")],  # the repositories the bench itself prepared
    )
    job_dir = checked.spec_file.parent.parent
    (job_dir / "options.json").write_text(json.dumps(checked.options), encoding="utf-8")
    run_store.put_job(checked.run_id, job_dir)
    run_store.set_status(checked.run_id, {"status": "queued", "reason": "", "attempts": 0})
    distributed.enqueue(distributed.make_app(broker), checked.run_id)
    status = _wait(run_store, checked.run_id, timeout)
    if status is None:
        return int(ExitCode.FAILED), "", f"no end within {timeout:.0f} s on the workers"
    shutil.rmtree(runs_dir / checked.run_id, ignore_errors=True)
    local = run_store.restore(checked.run_id, runs_dir)
    if local is None or not (local / "report.json").is_file():
        return int(ExitCode.FAILED), "", f"the run ended {status['status']} with no report"
    report: dict[str, Any] = json.loads((local / "report.json").read_text(encoding="utf-8"))
    report["workspace"] = str(local / "workspace")  # here, not on the worker's machine
    code = int(STATUS_EXIT.get(str(status["status"]), ExitCode.FAILED))
    return code, json.dumps(report), f"ran on {status.get('worker', '?')}"


def _wait(store: Any, run_id: str, timeout: float) -> dict[str, Any] | None:
    from darkfactory.service.distributed import FINAL

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.get_status(run_id) or {}
        if status.get("status") in FINAL:
            return dict(status)
        time.sleep(POLL_S)
    return None
