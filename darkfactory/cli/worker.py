"""``darkfactory worker``: a Celery worker that takes runs from a Redis broker."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from darkfactory.cli._common import Subparsers, UsageError, load_dotenv


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "worker", help="take runs from a broker (Celery on Redis) and run them here"
    )
    p.add_argument("--broker", required=True, help="redis://HOST:PORT/DB")
    p.add_argument("--store", type=Path, required=True, help="the run store (a shared directory)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="runs at a time (never more than this machine's sandboxes allow)",
    )
    p.add_argument("--queue", default="darkfactory", help="the queue to take runs from")
    p.add_argument(
        "--work",
        type=Path,
        default=Path("darkfactory-work"),
        help="this machine's working directory for the runs it takes (default: ./darkfactory-work)",
    )
    p.add_argument("--config", type=Path, default=None, help="config directory (for --sandbox)")
    p.add_argument(
        "--sandbox",
        choices=("auto", "docker", "bwrap"),
        default=None,
        help="sandbox backend of every run here (default: each run's own)",
    )
    p.add_argument(
        "--visibility-s",
        type=float,
        default=None,
        help="seconds before a run whose worker died goes to another (default: 3600)",
    )
    p.add_argument(
        "--lease-s",
        type=float,
        default=None,
        help="seconds a run's lease lasts unrenewed (default: 30; renewed every third)",
    )
    return p


def capacity(memory_mb: int) -> int:
    """Runs this machine's sandboxes allow at once: one per core, each with its memory."""
    cores = os.cpu_count() or 1
    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return cores
    return max(1, min(cores, total_mb // max(1, memory_mb)))


def run(args: argparse.Namespace) -> int:
    from darkfactory.config import load_config
    from darkfactory.service import distributed
    from darkfactory.service.store import DirectoryStore

    load_dotenv()
    config = load_config(args.config)
    distributed.check_broker(args.broker)  # exit 2 within seconds if it does not answer
    store = DirectoryStore(args.store)
    store.check()  # exit 2 if it is not writable
    cap = capacity(config.factory.sandbox.memory_mb)
    if not 1 <= args.concurrency <= cap:
        raise UsageError(
            f"--concurrency {args.concurrency}: this machine's sandboxes allow 1 to {cap} "
            f"({os.cpu_count()} cores, {config.factory.sandbox.memory_mb} MB a run)",
            hint=f"use --concurrency {cap} or less",
        )
    backend = args.sandbox or config.factory.sandbox.backend
    _check_sandbox(backend, config.factory.sandbox.image)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    from darkfactory.service.worker import warm_up

    warm_up()  # once here; every run's process is forked from this one
    name = distributed.node_name()
    distributed.configure(
        distributed.WorkerSetup(
            broker=args.broker,
            store=args.store.resolve(),
            work_dir=work,
            project_dir=Path.cwd().resolve(),
            hostname=name,
            backend=args.sandbox,
            lease_s=args.lease_s or distributed.LEASE_S,
        )
    )
    visibility = args.visibility_s or distributed.VISIBILITY_S
    app = distributed.make_app(args.broker, visibility_s=visibility)
    print(
        f"darkfactory worker {name}: {args.concurrency} at a time from {args.queue} on "
        f"{distributed.shown(args.broker)}, store {args.store}, sandbox {backend}",
        flush=True,
    )
    app.worker_main(
        [
            "worker",
            f"--concurrency={args.concurrency}",
            f"--queues={args.queue}",
            f"--hostname={name}",
            "--pool=prefork",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def _check_sandbox(backend: str, image: str | None) -> None:
    from darkfactory.errors import SandboxUnavailable
    from darkfactory.sandbox import bwrap_problem, docker_problem

    problems: dict[str, Callable[[], str | None]] = {
        "bwrap": bwrap_problem,
        "docker": lambda: docker_problem(image),
    }
    if backend == "auto":
        if all(problems[b]() for b in problems):
            raise SandboxUnavailable(
                "no sandbox works on this machine: a worker refuses to start without one",
                hint=f"bwrap: {bwrap_problem()}; docker: {docker_problem(image)}",
            )
        return
    problem = problems[backend]() if backend in problems else None
    if problem:
        raise SandboxUnavailable(
            f"the {backend} sandbox does not work here: {problem}",
            hint="a worker refuses to start without a working sandbox (darkfactory doctor)",
        )
