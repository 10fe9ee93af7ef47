"""The ``darkfactory`` command line: ``main`` and the list of commands (the CrewAI CLI's
scripts are ``darkfactory.crewai_scripts``).

Each command is one module here with ``add_parser`` and ``run`` (``_common.Command``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn, cast

from darkfactory import __version__, project
from darkfactory.cli import (
    approve,
    bench,
    doctor,
    init,
    rehearse,
    report,
    resume,
    run,
    runs,
    sandbox,
    serve,
    validate,
    watch,
    worker,
)
from darkfactory.cli._common import Command, Subparsers
from darkfactory.cli.rehearse import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC
from darkfactory.errors import ExitCode, InputError

__all__ = ["COMMANDS", "EXAMPLE_PLAYBOOK", "EXAMPLE_SPEC", "build_parser", "main"]

#: Every command, in the order ``darkfactory --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    init,
    run,
    rehearse,
    resume,
    approve,
    watch,
    serve,
    worker,
    report,
    runs,
    validate,
    bench,
    sandbox,
    doctor,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 2 with our wording, not a traceback
        self.print_usage(sys.stderr)
        print(f"darkfactory: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="darkfactory", description="Spec in, tested and documented software out.")
    parser.add_argument("--version", action="version", version=f"darkfactory {__version__}")
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        metavar="DIR",
        help="the project whose config/ and tools/ to use (before the command; default: the "
        "nearest folder, from the working directory up, with config/agents.yaml)",
    )
    # Every sub-command's parser is a _Parser too (mypy cannot see it: the action is invariant).
    sub = cast(
        Subparsers, parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    )
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names; its exit code (``darkfactory.errors.ExitCode``)."""
    args = build_parser().parse_args(argv)
    try:
        if args.project is not None:  # what --config would name, unless --config does
            root = project.checked_root(args.project)
            if getattr(args, "config", ...) is None:
                args.config = root / project.CONFIG_DIR
        return int(args.run(args))
    except InputError as exc:  # the user can fix it: file:line, key and hint, no traceback
        print(f"darkfactory: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("darkfactory: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `darkfactory ... | head`: the reader has gone, not an error
        # Python would complain again when it flushes stdout at exit; point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
