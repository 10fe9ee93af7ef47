"""``darkfactory resume RUN_ID``: continue a run that was stopped (killed, crashed, interrupted)."""

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
        "resume", help="continue a run that was stopped (killed, crashed, interrupted)"
    )
    p.add_argument("run_id", help=RUN_ID_HELP)
    add_continue_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from darkfactory.engine import session  # the engine (CrewAI): not for --help
    from darkfactory.workspace import rundir

    load_dotenv()
    run_dir = rundir.find_run(runs_dir(args), args.run_id)
    state = session.saved_state(run_dir)
    if state is None:
        raise UsageError(
            "this run stopped before its first step finished; there is nothing to resume",
            file=run_dir,
            hint="start it again with darkfactory run",
        )
    return continue_run(run_dir, state, args)
