"""``serve --broker``'s global caps, checked at dispatch: runs in flight, dollars per hour.

A real redis-server and a real worker; the scripted model (a test tool, not AI) plays
each run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from runhelp import NEEDS_BWRAP, config_with
from svc import put_playbook, spec_body, wait_status
from test_distributed import Redis, kill_machine, redis, serve, start_worker  # noqa: F401

from darkfactory.service import distributed
from darkfactory.service.dispatch import Dispatcher
from darkfactory.service.queue import JobQueue
from darkfactory.service.store import DirectoryStore

pytestmark = [pytest.mark.e2e, NEEDS_BWRAP]


def test_no_more_runs_in_flight_than_the_cap(tmp_path: Path, redis: Redis) -> None:  # noqa: F811
    put_playbook(tmp_path)
    config_with(tmp_path)  # the repository's config, and the cap beside it
    (tmp_path / "config" / "service.yaml").write_text("dispatch:\n  max_in_flight: 1\n")
    srv = serve(tmp_path, redis)
    workers = [start_worker(tmp_path, redis, n) for n in ("machine-a", "machine-b")]
    try:
        with srv.client() as c:
            ids = [c.post("/api/runs", json=spec_body()).json()["id"] for _ in range(3)]
            most = 0
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                statuses = [r["status"] for r in c.get("/api/runs").json() if r["id"] in ids]
                most = max(most, statuses.count("running"))
                if all(s in ("delivered", "failed") for s in statuses):
                    break
                time.sleep(0.1)
            ends = {rid: wait_status(c, rid, ("delivered", "failed"))["status"] for rid in ids}
    finally:
        for w in workers:
            kill_machine(w)
        srv.stop()
    assert ends == dict.fromkeys(ids, "delivered")
    assert most == 1  # two idle workers, three runs: one at a time all the same


def test_the_hourly_dollar_cap_holds_runs_back(tmp_path: Path, redis: Redis) -> None:  # noqa: F811
    (tmp_path / "store").mkdir()
    queue = JobQueue(tmp_path / "runs")
    for n in range(2):
        spec = tmp_path / "jobs" / f"run-{n}" / "spec" / "a.md"
        spec.parent.mkdir(parents=True)
        spec.write_text("# A\n\n- It must work.\n")
        queue.submit(f"run-{n}", title="A", spec_file=spec, options={}, by="test")
    dispatcher = Dispatcher(
        app=distributed.make_app(redis.url),
        store=DirectoryStore(tmp_path / "store"),
        queue=queue,
        runs_dir=tmp_path / "runs",
        broker=redis.url,
        max_usd_per_hour=5.0,
    )
    broker = distributed.redis_client(redis.url)
    dispatcher._spent.append((time.time() - 60, 5.0))  # a run that ended a minute ago cost $5
    dispatcher.tick()
    assert broker.llen(distributed.QUEUE) == 0  # nothing sent
    assert [j.status for j in queue.list()] == ["queued", "queued"]
    dispatcher._spent[0] = (time.time() - 3700, 5.0)  # over an hour ago: room again
    dispatcher.tick()
    assert broker.llen(distributed.QUEUE) == 2  # both sent to the workers
    assert [j.status for j in queue.list()] == ["running", "running"]
