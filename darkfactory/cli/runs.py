"""``darkfactory runs``: list the runs in a runs directory (oldest first): status, age, cost."""

from __future__ import annotations

import argparse
import json

from darkfactory.cli._common import Subparsers, add_runs_dir_option, runs_dir
from darkfactory.errors import ExitCode


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("runs", help="list the runs in a runs directory")
    add_runs_dir_option(p)
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from darkfactory.engine.session import format_age, list_runs  # the engine: not for --help

    rows = list_runs(runs_dir(args))
    if args.json:
        print(json.dumps(rows, indent=2))
        return ExitCode.DELIVERED
    if not rows:
        print(f"no runs in {runs_dir(args)}")
        return ExitCode.DELIVERED
    header = f"{'run id':44} {'status':17} {'age':>5} {'duration':>9} {'cost':>10}  spec"
    print(header)
    for r in rows:
        duration = "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}s"
        usd = "unknown" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
        print(
            f"{r['run_id']:44} {r['status']:17} {format_age(r['age_s']):>5} {duration:>9} "
            f"{usd:>10}  {r['spec']}"
        )
    return ExitCode.DELIVERED
