"""``darkfactory report RUN_ID``: render a run's report again, from its state and trace."""

from __future__ import annotations

import argparse
import json

from darkfactory.cli._common import Subparsers, UsageError, add_runs_dir_option, runs_dir
from darkfactory.errors import ExitCode


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="render a run's report again (from its state and trace)"
    )
    p.add_argument("run_id")
    add_runs_dir_option(p)
    p.add_argument("--format", choices=["md", "html", "json"], default="md")
    return p


def run(args: argparse.Namespace) -> int:
    # The report and the run directory (pydantic, the state models): not for --help.
    from darkfactory.reporting.report import build_report, render_html, render_markdown
    from darkfactory.workspace import rundir

    run_dir = rundir.find_run(runs_dir(args), args.run_id)
    state = rundir.stored_state(run_dir)
    if state is None:
        raise UsageError("this run has no saved state yet", file=run_dir)
    report = build_report(run_dir, state)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "html":
        print(render_html(report), end="")
    else:
        print(render_markdown(report), end="")
    return ExitCode.DELIVERED
