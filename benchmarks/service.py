"""``darkfactory serve``: warm start of a run, and the API under load.

    python benchmarks/service.py [--samples 5] [--clients 50] [--queued 20] [--jobs 2]

Everything on this machine, loopback only; runs are the example spec played by the
scripted model (a test tool, not AI) in bwrap. Figures:

* submit -> first model call: from ``POST /api/runs`` to the first ``llm_call`` record in
  the run's trace, through a server whose worker is already warm; the baseline is the same
  interval for ``darkfactory run`` started as a process (cold: it imports CrewAI), measured
  in the same script, samples interleaved;
* ``GET /api/runs`` latency (p50, p95) with no load, and while ``--clients`` Server-Sent
  Events clients follow a run and ``--queued`` runs wait or run; and whether every one of
  those runs ended delivered (none lost).

Prints Markdown tables (medians; ratios against the baseline measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
HERE = Path(__file__).resolve().parent.parent
SPEC = HERE / "examples/specs/wordcount.yaml"
PLAYBOOK = HERE / "examples/playbooks/wordcount.yaml"


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DARKFACTORY_")}
    e.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_DISABLE_VERSION_CHECK="true")
    return e


def first_call(trace: Path, timeout: float = 120) -> float:
    """The time of the first ``llm_call`` record in ``trace`` (waiting for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trace.is_file():
            for line in trace.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record["kind"] == "llm_call":
                    return datetime.fromisoformat(record["ts"]).timestamp()
        time.sleep(0.01)
    raise TimeoutError(f"no model call in {trace}")


def cold(root: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=root))
    argv = [sys.executable, "-m", "darkfactory", "run", str(SPEC), "--model",
            f"scripted:{PLAYBOOK}", "--out", str(out), "--sandbox", "bwrap", "--quiet",
            "--max-llm-calls", "1"]  # fmt: skip
    t0 = time.time()
    proc = subprocess.Popen(
        argv, cwd=HERE, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        trace: Path = _wait_for(lambda: next(out.glob("*/trace.jsonl"), None))
        return first_call(trace) - t0
    finally:
        proc.wait(120)


def _wait_for(find: Callable[[], T], timeout: float = 120) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.01)
    raise TimeoutError("nothing appeared")


class Server:
    def __init__(self, root: Path, jobs: int) -> None:
        self.root = root
        shutil.copy(PLAYBOOK, root / "playbook.yaml")
        argv = [sys.executable, "-m", "darkfactory", "serve", "--port", "0", "--jobs", str(jobs),
                "--out", str(root / "runs"), "--sandbox", "bwrap"]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=root, env=env(), stdout=subprocess.PIPE,
                                     stderr=(root / "server.log").open("w"), text=True)  # fmt: skip
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[2]
        self.client = httpx.Client(base_url=self.url, timeout=60)
        _wait_for(lambda: self._healthy(), 60)

    def _healthy(self) -> bool:
        try:
            health = self.client.get("/api/health").json()
        except httpx.HTTPError:
            return False
        return bool(health["workers"])

    def submit(self) -> str:
        body = {"spec": {"filename": "wordcount.yaml", "content": SPEC.read_text(encoding="utf-8")},
                "model": "scripted:playbook.yaml"}  # fmt: skip
        r = self.client.post("/api/runs", json=body)
        r.raise_for_status()
        return str(r.json()["id"])

    def warm(self) -> float:
        t0 = time.time()
        run_id = self.submit()
        value = first_call(self.root / "runs" / run_id / "trace.jsonl") - t0
        self.wait([run_id])
        return value

    def wait(self, ids: list[str], timeout: float = 1800) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        ended: dict[str, str] = {}
        while len(ended) < len(ids) and time.monotonic() < deadline:
            for job in self.client.get("/api/runs").json():
                if job["id"] in ids and job["status"] not in ("queued", "running"):
                    ended[job["id"]] = job["status"]
            time.sleep(0.5)
        return ended

    def latency(self, n: int) -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.client.get("/api/runs").raise_for_status()
            times.append(time.perf_counter() - t0)
            time.sleep(0.02)
        return times

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.wait(30)


def follow(url: str, run_id: str, counts: list[int], stop: threading.Event) -> None:
    seen = 0
    try:
        with (
            httpx.Client(base_url=url, timeout=None) as c,
            c.stream("GET", f"/api/runs/{run_id}/events") as r,
        ):
            for line in r.iter_lines():
                seen += line.startswith("event: trace")
                if line.startswith("event: end") or stop.is_set():
                    break
    finally:
        counts.append(seen)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--queued", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="df-service-bench-"))
    (root / "serve").mkdir()
    server = Server(root / "serve", args.jobs)
    try:
        server.warm()  # the workers' first run waits for their warm-up (imports): not counted
        warm_s, cold_s = [], []
        for _ in range(args.samples):  # interleaved: load hits both alike
            warm_s.append(server.warm())
            cold_s.append(cold(root))
        idle = server.latency(100)
        first = server.submit()
        ids = [first] + [server.submit() for _ in range(args.queued - 1)]
        stop, counts = threading.Event(), []
        clients = [threading.Thread(target=follow, args=(server.url, first, counts, stop), daemon=True)
                   for _ in range(args.clients)]  # fmt: skip
        for t in clients:
            t.start()
        time.sleep(1)
        loaded = server.latency(200)
        ended = server.wait(ids)
        stop.set()
        for t in clients:
            t.join(30)
    finally:
        server.stop()
    w, c = statistics.median(warm_s), statistics.median(cold_s)
    print(f"\nsubmit -> first model call ({args.samples} samples each, median)\n")
    print("| path | median | min | max | ratio |")
    print("|---|---|---|---|---|")
    print(
        f"| `darkfactory run` (cold process, baseline) | {c:.3f} s | {min(cold_s):.3f} s | {max(cold_s):.3f} s | 1.00 |"
    )
    print(
        f"| `darkfactory serve` (warm worker) | {w:.3f} s | {min(warm_s):.3f} s | {max(warm_s):.3f} s | {w / c:.3f} |"
    )
    delivered = sum(1 for s in ended.values() if s == "delivered")
    print(
        f"\nGET /api/runs under load: {args.clients} SSE clients following a run, {args.queued} runs queued, {args.jobs} workers\n"
    )
    print("| load | requests | p50 | p95 | ratio p95 |")
    print("|---|---|---|---|---|")
    print(
        f"| none (baseline) | {len(idle)} | {pct(idle, 50) * 1000:.1f} ms | {pct(idle, 95) * 1000:.1f} ms | 1.00 |"
    )
    print(
        f"| loaded | {len(loaded)} | {pct(loaded, 50) * 1000:.1f} ms | {pct(loaded, 95) * 1000:.1f} ms | {pct(loaded, 95) / pct(idle, 95):.2f} |"
    )
    print(
        f"\nruns: {len(ids)} submitted, {len(ended)} ended, {delivered} delivered, "
        f"{len(ids) - len(ended)} lost; SSE clients: {len(counts)} finished, "
        f"trace events each: min {min(counts) if counts else 0}, max {max(counts) if counts else 0}"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
