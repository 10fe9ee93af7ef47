"""``serve --broker``: runs on Celery workers over Redis, measured on this machine, and a
scale model projected from what was measured.

    .venv/bin/python benchmarks/distributed.py [--runs 6] [--repeat 1] [--samples 5]

Loopback only: a real ``redis-server`` on a free port, ``darkfactory serve --broker``, and
``darkfactory worker`` processes (concurrency 1, bwrap), each with its own ``--work``
directory (a "machine"). Every run is the example spec played by the scripted model (a test
tool, not AI). Prints Markdown tables:

1. throughput of ``--runs`` runs on one worker, then on two (a fresh Redis, store and server
   per phase): wall time from the first submit to the last run's end in the store;
2. dispatch overhead: submit -> sent (``queued`` in the store) -> received (the worker's
   log) -> taken (``running`` in the store) -> the run's ``run_start`` trace record, for
   runs sent one at a time to an idle worker;
3. per-run cost on one worker: CPU seconds of the worker's processes (and the server's,
   Redis's), peak memory, store bytes kept and written, broker commands, snapshot restore;
4. a scale model to 10, 100 and 1,000 workers from those figures, with its assumed
   capacities labelled as assumptions, and the first limit that would bind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import redis

from darkfactory.service.distributed import FINAL
from darkfactory.service.store import KEEP_SNAPSHOTS, DirectoryStore, tree_bytes

HERE = Path(__file__).resolve().parent.parent
SPEC = HERE / "examples/specs/wordcount.yaml"
PLAYBOOK = HERE / "examples/playbooks/wordcount.yaml"
REDIS = shutil.which("redis-server")
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 1.7
#: The server's monitor tick (service/context.py MONITOR_S) and how often it re-mirrors a
#: running run's snapshot (service/dispatch.py MIRROR_S).
TICK_S, MIRROR_S = 0.25, 10.0
#: Assumed capacities of the scale model (not measured here).
ASSUMED_REDIS_CMDS = 100_000  # one Redis instance, simple commands per second
ASSUMED_STORE_MBS = 100.0  # a shared NFS store, MB/s of writes
ASSUMED_BUSY = 0.5  # the server's monitor thread: its work must stay under half of each tick
ASSUMED_NFS_READ_S = 0.001  # one small-file open+read+close over NFS (close-to-open checks)
#: Seconds between the dispatch samples (the name is historical): each run meets an idle
#: worker, its last run's process reaped, not a queue.
POOL_REFILL_S = 5.0
_SNAP = re.compile(r"snap-([0-9]+)")

# -- processes ----------------------------------------------------------------------------
_STARTED: list[subprocess.Popen[Any]] = []  # every process group we started, for cleanup


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DARKFACTORY_")}
    e.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_DISABLE_VERSION_CHECK="true")
    e["PYTHONPATH"] = str(HERE)
    return e


def spawn(argv: list[str], cwd: Path, log: Path, **kw: Any) -> subprocess.Popen[str]:
    """``argv`` as the leader of its own process group (so a killpg ends all of it)."""
    with log.open("a", encoding="utf-8") as err:  # the child keeps its own copy
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env(),
            stdout=kw.pop("stdout", err),
            stderr=err,
            text=True,
            start_new_session=True,
            **kw,
        )
    _STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 20) -> None:
    """Ask the group to stop, then kill whatever of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    if proc in _STARTED:
        _STARTED.remove(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


# -- /proc --------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int, float] | None:
    """(ppid, pgid, CPU seconds of the process and of its children it has reaped)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    f = raw[raw.rindex(")") + 2 :].split()  # f[0] is field 3 (state): field n is f[n - 3]
    return int(f[1]), int(f[2]), sum(int(x) for x in f[11:15]) / CLK_TCK


def family(leader: int) -> dict[int, float]:
    """The leader's process group and every descendant (a sandbox runs in a session of its
    own), each with its CPU seconds."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            procs[int(entry)] = st
    found = {}
    for pid, (_, pgid, cpu) in procs.items():
        p, depth = pid, 0
        while p in procs and p != leader and depth < 64:
            p, depth = procs[p][0], depth + 1
        if pgid == leader or p == leader:
            found[pid] = cpu
    return found


def cpu_seconds(leader: int) -> float:
    """utime+stime+cutime+cstime over the family: a living process's own time plus that of
    its exited children it reaped (which left the family, so nothing is counted twice)."""
    return sum(family(leader).values())


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process in kB (0 once it is gone)."""
    hwm = rss = 0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return hwm, rss


class Sampler(threading.Thread):
    """Every 0.25 s: when each run was taken (its ``running`` status), and the size of each
    new snapshot in the store (a snapshot appears whole, by rename; two are kept per run, so
    a slow sampler can miss one: counted); every 0.5 s: the peak memory of the workers'
    processes."""

    def __init__(self, leaders: list[int], store: Path) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.leaders, self.store = leaders, store
        self.halt = threading.Event()
        self.snapshots: dict[tuple[str, int], int] = {}
        self.taken: dict[str, float] = {}  # run id -> its running status's updated_at
        self.hwm_kb = self.rss_sum_kb = 0

    def run(self) -> None:
        tick = 0
        while not self.halt.wait(0.25):
            for rid, status in DirectoryStore(self.store).statuses().items():
                if status.get("status") == "running":
                    self.taken.setdefault(rid, float(status["updated_at"]))
            self._snapshots()
            tick += 1
            if tick % 2 == 0:
                self._memory()

    def _snapshots(self) -> None:
        runs = self.store / "runs"
        for run in runs.iterdir() if runs.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                for snap in run.iterdir():
                    m = _SNAP.fullmatch(snap.name)
                    if m and (key := (run.name, int(m[1]))) not in self.snapshots:
                        self.snapshots[key] = tree_bytes(snap)

    def _memory(self) -> None:
        rss = 0
        for leader in self.leaders:
            for pid in family(leader):
                hwm, now = memory_kb(pid)
                self.hwm_kb = max(self.hwm_kb, hwm)
                rss += now
        self.rss_sum_kb = max(self.rss_sum_kb, rss)

    def written(self, run_id: str, taken: int) -> tuple[int, int]:
        """Snapshot bytes the run wrote (missed ones estimated at the mean of those seen),
        and how many were missed."""
        seen = [b for (rid, _), b in self.snapshots.items() if rid == run_id]
        missed = max(0, taken - len(seen))
        return sum(seen) + missed * (round(statistics.mean(seen)) if seen else 0), missed

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join(10)
        self._snapshots()


# -- one phase's machines -----------------------------------------------------------------
@dataclass
class Stack:
    """A Redis, a server and ``workers`` worker processes, all in ``root``."""

    root: Path
    workers: int
    url: str = ""
    server_url: str = ""
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def store(self) -> DirectoryStore:
        return DirectoryStore(self.root / "store")

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        assert REDIS is not None
        self.root.mkdir(parents=True)
        for sub in ("redis", "store"):
            (self.root / sub).mkdir()
        shutil.copytree(HERE / "config", self.root / "config")
        shutil.copy(PLAYBOOK, self.root / "playbook.yaml")
        port = free_port()
        self.url = f"redis://127.0.0.1:{port}/0"
        self.procs["redis"] = spawn(
            [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.root / "redis"),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            self.root, self.root / "redis.log",
        )  # fmt: skip
        wait_for(lambda: self._answers(port), 20, "redis-server")
        self._serve()
        for i in range(self.workers):
            self._worker(f"machine-{chr(ord('a') + i)}")

    def _answers(self, port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _serve(self) -> None:
        log = self.root / "server.log"
        argv = [sys.executable, "-m", "darkfactory", "serve", "--port", "0", "--out",
                str(self.root / "runs"), "--config", str(self.root / "config"), "--sandbox",
                "bwrap", "--broker", self.url, "--store", str(self.root / "store")]  # fmt: skip
        proc = self.procs["server"] = spawn(argv, self.root, log, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first.startswith("darkfactory serve: "):
            raise RuntimeError(f"the server did not start: {first!r}\n{log.read_text()}")
        self.server_url = first.split()[2]
        drain = threading.Thread(target=proc.stdout.read, daemon=True)  # never a full pipe
        drain.start()
        wait_for(self._healthy, 60, "the server's /api/health")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.server_url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _worker(self, name: str) -> None:
        log = self.root / f"{name}.log"
        argv = [sys.executable, "-m", "darkfactory", "worker", "--broker", self.url, "--store",
                str(self.root / "store"), "--work", str(self.root / name), "--concurrency", "1",
                "--sandbox", "bwrap", "--config", str(self.root / "config")]  # fmt: skip
        proc = self.procs[name] = spawn(argv, self.root, log)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited:\n{log.read_text()}")
            return "ready." in log.read_text(encoding="utf-8", errors="replace")

        wait_for(ready, 180, f"worker {name} ready", every=0.2)

    def worker_pids(self) -> list[int]:
        return [p.pid for name, p in self.procs.items() if name.startswith("machine-")]

    def broker(self) -> Any:
        return redis.Redis.from_url(self.url)

    def submit(self, client: httpx.Client) -> tuple[str, float]:
        """A run of the example spec; its id and the client's time just before the POST."""
        body = {
            "spec": {"filename": "wordcount.yaml", "content": SPEC.read_text(encoding="utf-8")},
            "model": "scripted:playbook.yaml",
        }
        t0 = time.time()
        r = client.post("/api/runs", json=body)
        r.raise_for_status()
        return str(r.json()["id"]), t0

    def ended(self, ids: list[str], timeout: float = 1800) -> dict[str, dict[str, Any]]:
        """Each run's final status in the store (written by its worker as it ended)."""
        done: dict[str, dict[str, Any]] = {}
        store = self.store
        deadline = time.monotonic() + timeout
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - len(done)} runs did not end in {timeout:.0f} s")
            for rid in ids:
                status = store.get_status(rid) if rid not in done else None
                if status and status.get("status") in FINAL:
                    done[rid] = status
            time.sleep(0.1)
        return done

    def restore(self, run_id: str, into: Path) -> tuple[Path, float]:
        """The run rebuilt from its latest snapshot (as the server mirrors it), and how long
        that took."""
        into.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        path = self.store.restore(run_id, into)
        elapsed = time.perf_counter() - t0
        assert path is not None, f"run {run_id} has no snapshot"
        return path, elapsed

    def __exit__(self, *exc: object) -> None:
        for name in [n for n in self.procs if n.startswith("machine-")]:
            stop(self.procs.pop(name))
        if "server" in self.procs:
            stop(self.procs.pop("server"), signal.SIGINT)
        if "redis" in self.procs:
            stop(self.procs.pop("redis"))


def commands(client: Any) -> tuple[int, Counter[str]]:
    """Redis's total commands processed, and per command."""
    total = int(client.info("stats")["total_commands_processed"])
    per = Counter(
        {
            k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in client.info("commandstats").items()
        }
    )
    return total, per


def first_run_start(run_dir: Path) -> float:
    for line in (run_dir / "trace.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "run_start":
            ts = datetime.fromisoformat(record["ts"])
            return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    raise ValueError(f"no run_start record in {run_dir / 'trace.jsonl'}")


# -- the phases ---------------------------------------------------------------------------
@dataclass
class Throughput:
    workers: int
    runs: int
    wall_s: float
    delivered: int
    by_worker: Counter[str]
    # per-run cost (measured on the one-worker phase)
    cpu_s: float = 0.0
    server_idle: float = 0.0  # cores, the server with no run anywhere
    server_cpu_s: float = 0.0  # per run, above its idle rate
    redis_cpu_s: float = 0.0
    hwm_kb: int = 0
    rss_sum_kb: int = 0
    stored_bytes: list[int] = field(default_factory=list)
    written_bytes: list[int] = field(default_factory=list)
    snapshots: list[int] = field(default_factory=list)
    missed: int = 0
    cmds: int = 0
    idle_cmds_s: float = 0.0
    top: Counter[str] = field(default_factory=Counter)
    restore_s: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return self.runs / self.wall_s * 60


def throughput(root: Path, workers: int, runs: int) -> Throughput:
    with Stack(root, workers) as stack, httpx.Client(base_url=stack.server_url, timeout=60) as c:
        broker, leaders = stack.broker(), stack.worker_pids()
        server, rds = stack.procs["server"].pid, stack.procs["redis"].pid
        idle0, srv_idle0, t_idle = commands(broker)[0], cpu_seconds(server), time.monotonic()
        time.sleep(5)  # idle rates: workers waiting on the broker, no run anywhere
        idle = (commands(broker)[0] - idle0) / (time.monotonic() - t_idle)
        srv_idle = (cpu_seconds(server) - srv_idle0) / (time.monotonic() - t_idle)
        cmd0, per0 = commands(broker)
        cpu0 = sum(cpu_seconds(p) for p in leaders)
        srv0, rds0, t0 = cpu_seconds(server), cpu_seconds(rds), time.monotonic()
        with Sampler(leaders, root / "store") as sampler:
            sent = [stack.submit(c) for _ in range(runs)]
            ends = stack.ended([rid for rid, _ in sent])
            time.sleep(2)  # each worker reaps its last run's process (its time moves to cutime)
        cpu1 = sum(cpu_seconds(p) for p in leaders)
        srv1, rds1, elapsed = cpu_seconds(server), cpu_seconds(rds), time.monotonic() - t0
        cmd1, per1 = commands(broker)
        wall = max(s["updated_at"] for s in ends.values()) - min(t for _, t in sent)
        result = Throughput(
            workers=workers, runs=runs, wall_s=wall,
            delivered=sum(1 for s in ends.values() if s["status"] == "delivered"),
            by_worker=Counter(str(s.get("worker", "?")).split("@")[-1] for s in ends.values()),
            cpu_s=(cpu1 - cpu0) / runs, server_idle=srv_idle,
            server_cpu_s=(srv1 - srv0 - srv_idle * elapsed) / runs,
            redis_cpu_s=(rds1 - rds0) / runs, hwm_kb=sampler.hwm_kb,
            rss_sum_kb=sampler.rss_sum_kb, cmds=cmd1 - cmd0, idle_cmds_s=idle,
            top=per1 - per0,
        )  # fmt: skip
        result.gaps = idle_gaps(ends, sampler.taken)
        stack.restore(sent[0][0], root / "warm")  # untimed: its first use imports the engine
        for rid, _ in sent:
            result.stored_bytes.append(stack.store.usage(rid)["bytes"])
            current = (root / "store/runs" / rid / "current").read_text().strip()
            taken = int(current.removeprefix("snap-"))
            job = tree_bytes(root / "store/jobs" / rid)
            written, missed = sampler.written(rid, taken)
            result.written_bytes.append(job + written)
            result.snapshots.append(taken)
            result.missed += missed
            result.restore_s.append(stack.restore(rid, root / "check")[1])
        return result


def idle_gaps(ends: dict[str, dict[str, Any]], taken: dict[str, float]) -> list[float]:
    """Seconds each worker stood idle, with runs waiting, from one run's end to taking the next."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for rid, status in ends.items():
        if rid in taken:
            by_worker.setdefault(str(status.get("worker")), []).append(
                (taken[rid], float(status["updated_at"]))
            )
    gaps = []
    for runs in by_worker.values():
        runs.sort()
        gaps += [nxt[0] - prev[1] for prev, nxt in pairwise(runs)]
    return gaps


SUBMIT_SENT = "submit -> sent to the broker (`queued` in the store, by the server)"
SENT_RECEIVED = "sent -> the worker receives it (its log)"
RECEIVED_TAKEN = "received -> taken (`running` in the store)"
SUBMIT_TAKEN = "submit -> taken"
TAKEN_START = "taken -> `run_start` trace record"
SUBMIT_START = "submit -> `run_start` (enqueue -> first step)"


@dataclass
class Dispatch:
    intervals: dict[str, list[float]] = field(default_factory=dict)  # name -> seconds
    delivered: int = 0
    runs: int = 0
    server_cpu_s: float = 0.0  # the server's, from the second run on (warm) ...
    elapsed_s: float = 0.0  # ... over this time

    def add(self, name: str, seconds: float | None) -> None:
        if seconds is not None:
            self.intervals.setdefault(name, []).append(seconds)


def received_at(log: Path, run_id: str) -> float | None:
    """When the worker's Celery logged the task as received (its local time, in ms)."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if f"[{run_id}] received" in line and line.startswith("["):
            stamp = line[1:].split(":", 3)
            return datetime.strptime(":".join(stamp[:3]), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def seen_statuses(store: DirectoryStore, run_id: str, timeout: float = 600) -> dict[str, float]:
    """Each status the run had in the store, as first seen polling every 5 ms, with the
    ``updated_at`` its writer gave it (a short one can be missed)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.get_status(run_id) or {}
        if (state := status.get("status")) and state not in seen:
            seen[state] = float(status["updated_at"])
        if state in FINAL:
            return seen
        time.sleep(0.005)
    raise TimeoutError(f"run {run_id} did not end in {timeout:.0f} s")


def dispatch(root: Path, samples: int) -> Dispatch:
    """Runs one at a time to one idle worker (after one run not counted: the worker's first)."""
    out = Dispatch()
    with Stack(root, 1) as stack, httpx.Client(base_url=stack.server_url, timeout=60) as c:
        for i in range(samples + 1):
            time.sleep(
                POOL_REFILL_S + 1
            )  # the worker is idle again: its last run forked and reaped
            if i == 1:  # the server has mirrored the first run's end (imported the engine)
                cpu0, since = cpu_seconds(stack.procs["server"].pid), time.monotonic()
            rid, t0 = stack.submit(c)
            seen = seen_statuses(stack.store, rid)
            if i == 0:
                continue
            if "running" not in seen:
                raise RuntimeError(f"run {rid} ended before its running status was seen")
            taken, sent = seen["running"], seen.get("queued")
            received = received_at(stack.root / "machine-a.log", rid)
            start = first_run_start(stack.restore(rid, root / "check")[0])
            out.add(SUBMIT_SENT, sent and sent - t0)
            out.add(SENT_RECEIVED, sent and received and received - sent)
            out.add(RECEIVED_TAKEN, received and taken - received)
            out.add(SUBMIT_TAKEN, taken - t0)
            out.add(TAKEN_START, start - taken)
            out.add(SUBMIT_START, start - t0)
            out.runs += 1
            out.delivered += any(s == "delivered" for s in seen)
        time.sleep(1)  # the server mirrors the last run as it ended
        out.server_cpu_s = cpu_seconds(stack.procs["server"].pid) - cpu0
        out.elapsed_s = time.monotonic() - since
    return out


def poll_cost(root: Path, files: int = 1000) -> float:
    """Seconds one ``DirectoryStore.get_status()`` takes, what the server's dispatcher does
    each tick for each run in flight (``files`` read in turn; median of 7 rounds)."""
    root.mkdir()
    store = DirectoryStore(root)
    store.check()
    for i in range(files):
        store.set_status(
            f"fake-{i:04d}",
            {
                "status": "running",
                "reason": "",
                "attempts": 1,
                "worker": "darkfactory@bench",
                "fence": 1,
            },
        )
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        found = sum(store.get_status(f"fake-{i:04d}") is not None for i in range(files))
        times.append(time.perf_counter() - t0)
        assert found == files
    return statistics.median(times) / files


# -- the report ---------------------------------------------------------------------------
def fmt(n: float) -> str:
    return f"{n:,.0f}" if n >= 100 else f"{n:,.2f}" if n < 10 else f"{n:,.1f}"


def report(
    args: argparse.Namespace,
    ones: list[Throughput],
    twos: list[Throughput],
    disp: Dispatch,
    per_file_s: float,
) -> None:
    med = statistics.median
    one_rpm, two_rpm = med(t.per_minute for t in ones), med(t.per_minute for t in twos)
    ratio = two_rpm / one_rpm
    print(f"\n## Throughput: {args.runs} runs, median of {args.repeat}\n")
    print(
        "Every run is the example spec played by the scripted model (a test tool, not AI) "
        "in bwrap; Redis, the server and the workers share this machine "
        f"({os.cpu_count()} cores).\n"
    )
    print(
        "| workers | wall (first submit -> last end) | runs/minute | delivered | runs per worker | "
        "idle between runs on a worker (median, max) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, group, rpm in (("one (baseline)", ones, one_rpm), ("two", twos, two_rpm)):
        walls = ", ".join(f"{t.wall_s:.1f} s" for t in group)
        split = " / ".join(str(n) for _, n in sorted(group[-1].by_worker.items()))
        delivered = f"{sum(t.delivered for t in group)}/{sum(t.runs for t in group)}"
        gaps = [g for t in group for g in t.gaps]
        between = f"{med(gaps):.2f} s, {max(gaps):.2f} s" if gaps else "-"
        print(
            f"| {label} | {walls} | {rpm:.2f} | {delivered} | {split} | {between} | "
            f"{rpm / one_rpm:.2f}x |"
        )
    print(
        f"\ntwo/one: {ratio:.2f}x (target >= {TARGET_RATIO}x: "
        f"{'met' if ratio >= TARGET_RATIO else 'not met'}). Idle between runs: from a run's "
        "end in the store to its worker taking the next (runs were waiting; each run is a "
        "process the task forks from the warm pool process, which takes the next task at once)."
    )

    print(
        f"\n## Dispatch overhead: {disp.runs} runs sent one at a time to an idle worker "
        f"(each {POOL_REFILL_S + 1:.0f} s after the last ended)\n"
    )
    print("| interval | runs | median | min | max |")
    print("|---|---|---|---|---|")
    for name in (
        SUBMIT_SENT,
        SENT_RECEIVED,
        RECEIVED_TAKEN,
        SUBMIT_TAKEN,
        TAKEN_START,
        SUBMIT_START,
    ):
        if values := [v * 1000 for v in disp.intervals.get(name, [])]:
            print(
                f"| {name} | {len(values)} | {med(values):.0f} ms | {min(values):.0f} ms | {max(values):.0f} ms |"
            )
    print(
        f"\n{disp.delivered}/{disp.runs} delivered. The server sends a queued run on its next "
        f"monitor tick ({TICK_S} s); a status held for under 5 ms can be missed (fewer runs in "
        "its rows). Client, server and worker clocks are this machine's."
    )

    run_s = med(t.wall_s / t.runs for t in ones)
    cpu, hwm = med(t.cpu_s for t in ones), max(t.hwm_kb for t in ones)
    stored = med(b for t in ones for b in t.stored_bytes)
    written = med(b for t in ones for b in t.written_bytes)
    snaps = med(n for t in ones for n in t.snapshots)
    cmds_run = med(t.cmds / t.runs for t in ones)
    cmds_s = med(t.cmds / t.wall_s for t in ones)
    restore = med(s for t in ones for s in t.restore_s)
    top = sum((t.top for t in ones), Counter())
    idle = med(t.server_idle for t in ones)  # the server's cores with no run anywhere
    warm = max(1e-6, (disp.server_cpu_s - idle * disp.elapsed_s) / disp.runs)
    print(f"\n## Per-run cost on one worker ({sum(t.runs for t in ones)} runs)\n")
    print("| figure | per run | note |")
    print("|---|---|---|")
    print(f"| wall time | {run_s:.2f} s | one worker, runs back to back |")
    print(
        f"| worker CPU | {cpu:.2f} s | its process group and descendants, incl. reaped children; {cpu / run_s:.2f} cores busy |"
    )
    print(
        f"| server CPU | {med(t.server_cpu_s for t in ones):.2f} s | above its idle {idle:.3f} cores; incl. its one-time engine import (first mirror); warm: {warm:.2f} s a run (dispatch phase) |"
    )
    print(
        f"| Redis CPU | {med(t.redis_cpu_s for t in ones):.3f} s | appendonly, appendfsync always |"
    )
    print(
        f"| worker peak memory | {hwm / 1024:.0f} MB | max VmHWM of one process; all its processes at once: {max(t.rss_sum_kb for t in ones) / 1024:.0f} MB RSS (shared pages counted in each) |"
    )
    print(
        f"| store bytes kept | {stored / 1e6:.2f} MB | `DirectoryStore.usage` (job, {KEEP_SNAPSHOTS} newest snapshots) |"
    )
    missed = sum(t.missed for t in ones)
    print(
        f"| store bytes written | {written / 1e6:.2f} MB | job + every snapshot taken ({snaps:.0f} a run; {missed} not seen, estimated) |"
    )
    print(
        f"| broker commands | {cmds_run:,.0f} | {cmds_s:.1f}/s while busy; {med(t.idle_cmds_s for t in ones):.1f}/s idle |"
    )
    print(
        f"| snapshot restore | {restore * 1000:.0f} ms | what the server does to mirror a run (final snapshot) |"
    )
    print(
        "\nmost frequent broker commands per run: "
        + ", ".join(f"{k} {v / sum(t.runs for t in ones):.0f}" for k, v in top.most_common(6))
    )

    per_hour = 3600 / run_s
    write_mbs = written / run_s / 1e6
    budget = ASSUMED_BUSY * TICK_S  # seconds the status poll may take in a tick
    print("\n## Scale model (a projection, not a measurement)\n")
    print(
        "Each worker: concurrency 1 on its own 2-core machine like this one, always busy, "
        "at the one-worker rate above; one Redis, one shared store, one server. "
        "Each monitor tick the server reads the status file of each run in flight on the "
        "workers (`get_status`), one per worker at concurrency 1, so its status files read "
        f"per second = workers x {1 / TICK_S:.0f}, whatever the store holds.\n"
    )
    print(
        "| workers | runs/hour | broker commands/s | store writes | status files read/s | poll per tick (local) | poll per tick (NFS, assumed) | mirror load on the monitor thread | server CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (10, 100, 1000):
        print(
            f"| {n:,} | {fmt(n * per_hour)} | {fmt(n * cmds_s)} | {n * write_mbs:.2f} MB/s | "
            f"{n / TICK_S:,.0f} | {span(n * per_file_s)} | {span(n * ASSUMED_NFS_READ_S)} | "
            f"{n * restore / MIRROR_S:.0%} | {idle + warm * n * per_hour / 3600:.2f} cores |"
        )
    print(
        f"\nmeasured inputs: {per_hour:.0f} runs/h per worker, {cmds_s:.1f} broker commands/s "
        f"per busy worker, {write_mbs:.3f} MB/s written per busy worker, "
        f"{per_file_s * 1e6:.1f} us per status file read by `get_status()` (1,000 files, "
        f"local disk, page cache warm), {restore * 1000:.0f} ms per snapshot restore, "
        f"{warm:.2f} s of server CPU per run (warm) above its idle {idle:.3f} cores."
    )
    by_workers = [
        (
            "Redis commands",
            f"{ASSUMED_REDIS_CMDS:,}/s, one instance",
            f"{cmds_s:.1f}/s per busy worker",
            ASSUMED_REDIS_CMDS / cmds_s,
        ),
        (
            "store writes",
            f"{ASSUMED_STORE_MBS:.0f} MB/s, a shared NFS store",
            f"{write_mbs:.3f} MB/s per busy worker",
            ASSUMED_STORE_MBS / write_mbs,
        ),
        (
            "server status poll, store on local disk",
            f"the poll <= {ASSUMED_BUSY:.0%} of the {TICK_S} s tick",
            f"{per_file_s * 1e6:.1f} us a status file; one file per worker each tick",
            budget / per_file_s,
        ),
        (
            "server status poll, store on NFS",
            f"the poll <= {ASSUMED_BUSY:.0%} of the {TICK_S} s tick; "
            f"{ASSUMED_NFS_READ_S * 1000:.0f} ms a status file",
            "one status file per worker each tick",
            budget / ASSUMED_NFS_READ_S,
        ),
        (
            "server mirroring running runs (one monitor thread)",
            f"that thread <= {ASSUMED_BUSY:.0%} busy",
            f"{restore * 1000:.0f} ms a restore; each running run every {MIRROR_S:.0f} s",
            ASSUMED_BUSY * MIRROR_S / restore,
        ),
        (
            "server CPU (one Python process)",
            "1 core",
            f"{warm:.2f} s per run (warm) above {idle:.3f} idle",
            (1 - idle) * 3600 / (warm * per_hour),
        ),
    ]
    print(
        "\n| limit set by the number of workers | capacity (ASSUMED) | measured input | binds at |"
    )
    print("|---|---|---|---|")
    ranked = sorted(by_workers, key=lambda x: x[3])
    for name, capacity, measured, at in ranked:
        print(f"| {name} | {capacity} | {measured} | {at:,.0f} workers |")
    million = 1_000_000
    print(
        f"\nThe store keeps every run (none is pruned): its job and {KEEP_SNAPSHOTS} newest "
        f"snapshots, {stored / 1e6:.2f} MB a run, {stored * million / 1e9:,.0f} GB of disk per "
        f"{million:,} runs ({duration(million / (10 * per_hour) * 3600)} of 10 workers, "
        f"{duration(million / (1000 * per_hour) * 3600)} of 1,000). The status poll does not "
        "grow with it."
    )
    (name, _, _, at), (second, _, _, then) = ranked[0], ranked[1]
    print(
        f"\nfirst to bind: {name}, at about {at:,.0f} workers; next: {second}, at about "
        f"{then:,.0f} workers."
    )


def span(seconds: float) -> str:
    """``seconds`` of a tick's work, with its share of the tick."""
    text = f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"
    return f"{text} ({seconds / TICK_S:.0%} of the tick)"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def rmtree(path: Path) -> None:
    """Remove ``path``, making read-only directories (a sandbox's files) writable first."""

    def fix(func: Any, p: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)

    shutil.rmtree(path, onerror=fix)


@contextlib.contextmanager
def cleanup(root: Path) -> Iterator[None]:
    """Every process group started and ``root`` gone at the end, on an error or a signal too."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        for proc in list(_STARTED):
            stop(proc, grace=5)
        signal.signal(signal.SIGTERM, previous)
        rmtree(root)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=6, help="runs per throughput phase")
    ap.add_argument("--repeat", type=int, default=1, help="throughput phases of each kind")
    ap.add_argument("--samples", type=int, default=5, help="runs timed for dispatch overhead")
    args = ap.parse_args()
    if args.runs < 2 or args.repeat < 1 or args.samples < 1:
        ap.error("--runs must be 2 or more, --repeat and --samples 1 or more")
    if REDIS is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    root = Path(tempfile.mkdtemp(prefix="df-distributed-bench-"))
    ones, twos = [], []
    with cleanup(root):
        for r in range(args.repeat):  # alternating: load on the machine hits both alike
            ones.append(throughput(root / f"one-{r}", 1, args.runs))
            print(f"one worker: {ones[-1].wall_s:.1f} s", file=sys.stderr, flush=True)
            twos.append(throughput(root / f"two-{r}", 2, args.runs))
            print(f"two workers: {twos[-1].wall_s:.1f} s", file=sys.stderr, flush=True)
        disp = dispatch(root / "dispatch", args.samples)
        per_file = poll_cost(root / "poll")
    report(args, ones, twos, disp, per_file)


if __name__ == "__main__":
    main()
