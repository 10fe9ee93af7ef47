"""``darkfactory approve RUN_ID``: decide the checkpoint a paused run waits at, then continue it."""

from __future__ import annotations

import argparse

from darkfactory.cli._common import (
    RUN_ID_HELP,
    Subparsers,
    UsageError,
    add_continue_options,
    continue_run,
    load_dotenv,
    runs_dir,
)


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "approve",
        help="decide the checkpoint a paused run waits at (status awaiting_approval), then continue it",
    )
    p.add_argument("run_id", help=RUN_ID_HELP)
    p.add_argument("--reject", action="store_true", help="reject: the work goes back to the crew")
    p.add_argument(
        "--reason",
        default=None,
        help="why (needed with --reject); the crew's next task gets it as reviewer feedback",
    )
    add_continue_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from darkfactory.engine import session  # the engine (CrewAI): not for --help
    from darkfactory.workspace import rundir

    load_dotenv()
    run_dir = rundir.find_run(runs_dir(args), args.run_id)
    if args.reject and not (args.reason or "").strip():
        raise UsageError(
            "--reject needs --reason TEXT",
            hint="say what to change: the crew gets the reason as reviewer feedback",
        )
    state = session.approve(run_dir, reject=args.reject, reason=(args.reason or "").strip())
    return continue_run(run_dir, state, args)
