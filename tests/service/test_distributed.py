"""Past one machine: a real redis-server on a loopback port, two workers with their own
working directories (two "machines"), the server sending runs to them.

Every run is the real pipeline in a bwrap sandbox, played by the scripted model (a test
tool, not AI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runhelp import NEEDS_BWRAP, REPO, config_with, example_playbook
from svc import Server, put_playbook, spec_body, start_server, wait_status

from darkfactory.cli import main
from darkfactory.reporting.trace import read_trace
from darkfactory.service.store import DirectoryStore

REDIS = shutil.which("redis-server")
pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
    pytest.mark.skipif(
        REDIS is None, reason="redis-server is not installed: apt-get install redis-server"
    ),
]
#: Short enough that a dead worker's run comes back within a test.
VISIBILITY_S, LEASE_S = 15, 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Redis:
    port: int
    data: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS is not None
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # an orderly stop: it writes what it has
            self.proc.wait(20)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    (tmp_path / "redis").mkdir()
    server = Redis(free_port(), tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def start_worker(root: Path, redis: Redis, name: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DARKFACTORY_")}
    env["PYTHONPATH"] = str(REPO)
    argv = [
        sys.executable, "-m", "darkfactory", "worker", "--broker", redis.url, "--store",
        str(root / "store"), "--work", str(root / name), "--concurrency", "1", "--sandbox",
        "bwrap", "--config", str(root / "config"), "--visibility-s", str(VISIBILITY_S),
        "--lease-s", str(LEASE_S),
    ]  # fmt: skip
    log = (root / f"{name}.log").open("a", encoding="utf-8")
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=log, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # ready: Celery says so in its log
        if "ready." in (root / f"{name}.log").read_text(encoding="utf-8", errors="replace"):
            return proc
        if proc.poll() is not None:
            raise AssertionError((root / f"{name}.log").read_text())
        time.sleep(0.2)
    raise AssertionError(f"worker {name} not ready in 120 s")


def kill_machine(proc: subprocess.Popen[str]) -> None:
    """The worker, its run processes and their sandboxes, gone at once (a machine dying)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def serve(root: Path, redis: Redis) -> Server:
    (root / "store").mkdir(exist_ok=True)  # the shared directory (it is never made by us)
    return start_server(root, broker=redis.url, store=root / "store")


def test_ten_runs_on_two_workers_one_killed_mid_run_all_delivered_once(
    tmp_path: Path, redis: Redis
) -> None:
    slow = example_playbook()
    for step in slow["roles"]["manager"]:
        step["delay_s"] = 0.5
    put_playbook(tmp_path, slow)
    srv = serve(tmp_path, redis)
    workers = {n: start_worker(tmp_path, redis, n) for n in ("machine-a", "machine-b")}
    store = DirectoryStore(tmp_path / "store")
    try:
        with srv.client() as c:
            ids = [c.post("/api/runs", json=spec_body()).json()["id"] for _ in range(10)]
            # Wait until machine-a is in the middle of a run, then kill it.
            victim = _running_on(store, ids, "machine-a", workers["machine-a"].pid)
            kill_machine(workers["machine-a"])
            ends = {
                rid: wait_status(c, rid, ("delivered", "failed", "escalated"), timeout=900)
                for rid in ids
            }
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                kill_machine(proc)
        srv.stop()
    assert {rid: e["status"] for rid, e in ends.items()} == dict.fromkeys(ids, "delivered")
    for rid in ids:
        status = store.get_status(rid)
        assert status is not None and status["status"] == "delivered"
        restored = store.restore(rid, tmp_path / "check")
        assert restored is not None
        kinds = [r["kind"] for r in read_trace(restored / "trace.jsonl")]
        assert kinds.count("run_start") == 1, rid  # started once
        assert [k for k in kinds if k == "run_end"] and kinds[-1] == "run_end"
        assert (restored / "report.json").is_file() and (
            restored / "workspace" / "wordcount.py"
        ).is_file()
    victim_status = store.get_status(victim)
    assert victim_status is not None and victim_status["attempts"] >= 2
    assert "machine-b" in str(victim_status["worker"]) or str(workers["machine-b"].pid) in str(
        victim_status["worker"]
    )
    resumed = [
        r
        for r in read_trace(tmp_path / "check" / victim / "trace.jsonl")
        if r["kind"] == "run_resumed"
    ]
    assert len(resumed) >= 1


def _running_on(
    store: DirectoryStore, ids: list[str], name: str, pid: int, timeout: float = 300
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rid in ids:
            status = store.get_status(rid) or {}
            running_here = status.get("status") == "running" and str(pid) in str(
                status.get("worker")
            )
            if running_here and _journaled(store, rid):  # a step or more done
                return rid
        time.sleep(0.2)
    raise AssertionError(f"{name} never got a run in {timeout} s")


def _journaled(store: DirectoryStore, rid: str) -> bool:
    return bool(store.usage(rid).get("snapshots"))


def test_a_broker_restart_loses_no_queued_run(tmp_path: Path, redis: Redis) -> None:
    put_playbook(tmp_path)
    srv = serve(tmp_path, redis)
    try:
        with srv.client() as c:
            ids = [c.post("/api/runs", json=spec_body()).json()["id"] for _ in range(3)]
            deadline = time.monotonic() + 30  # sent to the broker: no worker yet to take them
            while time.monotonic() < deadline and any(
                c.get(f"/api/runs/{i}").json()["status"] == "queued" for i in ids
            ):
                time.sleep(0.2)
            redis.stop()
            redis.start()
            worker = start_worker(tmp_path, redis, "machine-a")
            try:
                ends = {
                    rid: wait_status(c, rid, ("delivered", "failed"), timeout=600)["status"]
                    for rid in ids
                }
            finally:
                kill_machine(worker)
    finally:
        srv.stop()
    assert ends == dict.fromkeys(ids, "delivered")


def test_an_unreachable_broker_is_refused_within_seconds(tmp_path: Path, capsys: Any) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    t0 = time.monotonic()
    code = main(["worker", "--broker", url, "--store", str(tmp_path / "store")])
    assert code == 2 and time.monotonic() - t0 < 10
    err = capsys.readouterr().err
    assert "cannot reach the broker" in err and "hint:" in err
    assert main(["serve", "--port", "0", "--out", str(tmp_path / "runs"), "--broker", url,
                 "--store", str(tmp_path / "store")]) == 2  # fmt: skip


def test_a_store_that_cannot_be_written_is_refused(
    tmp_path: Path, redis: Redis, capsys: Any
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "file").write_text("x")
    code = main(["worker", "--broker", redis.url, "--store", str(ro / "file" / "store")])
    assert code == 2
    assert "store" in capsys.readouterr().err


def test_too_many_at_once_for_this_machine_is_refused(
    tmp_path: Path, redis: Redis, capsys: Any
) -> None:
    (tmp_path / "store").mkdir()
    code = main(
        [
            "worker",
            "--broker",
            redis.url,
            "--store",
            str(tmp_path / "store"),
            "--concurrency",
            "999",
        ]
    )
    assert code == 2
    assert "sandboxes allow 1 to" in capsys.readouterr().err


def test_a_paused_run_is_approved_through_the_server_and_a_worker_finishes_it(
    tmp_path: Path, redis: Redis
) -> None:
    put_playbook(tmp_path)
    srv = serve(tmp_path, redis)
    worker = start_worker(tmp_path, redis, "machine-a")
    try:
        with srv.client() as c:
            run_id = c.post(
                "/api/runs", json=spec_body(checkpoints={"output_review": "ask"})
            ).json()["id"]
            paused = wait_status(c, run_id, ("awaiting_approval", "failed"), timeout=300)
            assert paused["status"] == "awaiting_approval", paused["reason"]
            # The server's copy (mirrored from the store) shows what is to be approved.
            assert "wordcount.py" in c.get(f"/api/runs/{run_id}/diff").text
            assert (
                c.post(f"/api/runs/{run_id}/approve", json={"reason": "ship it"}).status_code == 200
            )
            done = wait_status(c, run_id, ("delivered", "failed"), timeout=300)
    finally:
        kill_machine(worker)
        srv.stop()
    assert done["status"] == "delivered", done["reason"]
    [review] = [x for x in done["checkpoints"] if x["checkpoint"] == "output_review"]
    assert (review["decision"], review["reason"]) == ("approved", "ship it")


def test_bench_spreads_a_suite_over_the_workers_and_scores_it_here(
    tmp_path: Path, redis: Redis
) -> None:
    (tmp_path / "store").mkdir()
    config_with(tmp_path)
    workers = [start_worker(tmp_path, redis, n) for n in ("machine-a", "machine-b")]
    out = tmp_path / "bench"
    try:
        code = main([
            "bench", str(REPO / "benchmarks/suite"), "--model", "scripted", "--entry", "kv-cli",
            "--entry", "interval-merge", "--jobs", "2", "--sandbox", "bwrap", "--out", str(out),
            "--broker", redis.url, "--store", str(tmp_path / "store"), "--json",
        ])  # fmt: skip
        # A ticket on a repository too: the repository the bench prepared goes with it.
        repo_code = main([
            "bench", str(REPO / "benchmarks/repos"), "--model", "scripted", "--entry",
            "isodate-trailing-garbage", "--sandbox", "bwrap", "--out", str(tmp_path / "repos"),
            "--broker", redis.url, "--store", str(tmp_path / "store"), "--json",
        ])  # fmt: skip
    finally:
        for w in workers:
            kill_machine(w)
    summary = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert code == 0, summary
    assert summary["broker"] == redis.url
    assert {
        r["entry"]: (r["status"], r["hidden_passed"] == r["hidden_total"] > 0)
        for r in summary["results"]
    } == {
        "kv-cli": ("delivered", True),
        "interval-merge": ("delivered", True),
    }
    # Each ran on a worker: its run is in the store, and the trace says where it began.
    store = DirectoryStore(tmp_path / "store")
    assert len(store.statuses()) == 3
    assert {s["status"] for s in store.statuses().values()} == {"delivered"}
    [task] = json.loads((tmp_path / "repos" / "bench.json").read_text(encoding="utf-8"))["results"]
    assert repo_code == 0 and task["resolved"] is True
    assert task["hidden_passed"] == task["hidden_total"] > 0  # FAIL_TO_PASS, scored here
    assert task["p2p_passed"] == task["p2p_total"] > 0  # PASS_TO_PASS


def test_cancel_revokes_a_run_on_a_worker_and_the_worker_goes_on(
    tmp_path: Path, redis: Redis
) -> None:
    slow = example_playbook()
    for step in slow["roles"]["manager"]:
        step["delay_s"] = 2
    put_playbook(tmp_path, slow, "slow.yaml")
    put_playbook(tmp_path)
    srv = serve(tmp_path, redis)
    worker = start_worker(tmp_path, redis, "machine-a")
    store = DirectoryStore(tmp_path / "store")
    try:
        with srv.client() as c:
            doomed = c.post(
                "/api/runs", json={**spec_body(), "model": "scripted:slow.yaml"}
            ).json()["id"]
            wait_status(c, doomed, ("running",))
            deadline = time.monotonic() + 60
            while (store.get_status(doomed) or {}).get(
                "status"
            ) != "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.post(f"/api/runs/{doomed}/cancel").status_code == 200
            assert wait_status(c, doomed, ("cancelled",), timeout=60)["status"] == "cancelled"
            after = c.post("/api/runs", json=spec_body()).json()["id"]
            done = wait_status(c, after, ("delivered", "failed"), timeout=300)
    finally:
        kill_machine(worker)
        srv.stop()
    assert done["status"] == "delivered", done["reason"]
    assert (store.get_status(doomed) or {})["status"] == "cancelled"
