"""``darkfactory bench SUITE``: run every spec or repository task of a suite, score each with
hidden tests.

The runner is ``darkfactory.bench.run``; this module reads the options and prints the table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darkfactory.cli._common import SANDBOX_CHOICES, Subparsers, load_dotenv


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="run every spec of a suite, each in its own process, and score it with hidden tests",
    )
    p.add_argument(
        "suite",
        type=Path,
        help="the suite directory: one sub-directory per entry, a spec or, with a task.yaml, "
        "a ticket on a repository",
    )
    p.add_argument(
        "--model",
        default=None,
        help="'scripted' (each entry plays its own playbook.yaml), or any model darkfactory run "
        "takes, passed to every run (default: the configured model)",
    )
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (processes; default 1)")
    p.add_argument(
        "--out", type=Path, default=None, help="bench directory (default: runs/bench-<time>)"
    )
    p.add_argument(
        "--sandbox",
        default=None,
        choices=SANDBOX_CHOICES,
        help="sandbox backend of every run (default: factory.yaml sandbox.backend)",
    )
    p.add_argument("--config", type=Path, default=None, help="config directory of every run")
    p.add_argument(
        "--entry", action="append", default=None, help="run only this entry (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--broker",
        default=None,
        help="run the spec entries on Celery workers (redis://HOST:PORT/DB; docs/scaling-out.md)",
    )
    p.add_argument("--store", type=Path, default=None, help="with --broker: the shared run store")
    return p


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every entry was delivered and passed its hidden tests (a repository task:
    resolved), 1 if not, 2 for a bad suite (nothing run then)."""
    # The runner (the sandbox, the host reader): not for --help.
    from darkfactory.bench.run import bench
    from darkfactory.bench.table import JSON_FILE, MARKDOWN_FILE, render_markdown

    load_dotenv()
    code, summary = bench(
        args.suite,
        model=args.model,
        jobs=args.jobs,
        out=args.out,
        sandbox=args.sandbox,
        config=args.config,
        only=args.entry,
        quiet=args.json,
        broker=args.broker,
        store=args.store,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_markdown(summary), end="")
        out = Path(summary["out"])
        print(f"\nwritten: {out / JSON_FILE} and {out / MARKDOWN_FILE}")
    return code
