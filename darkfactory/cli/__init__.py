"""The ``darkfactory`` command line: ``main``, the list of commands, ``crewai run``'s entry point.

Each command is one module here with ``add_parser`` and ``run`` (``_common.Command``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn, cast

from darkfactory import __version__
from darkfactory.cli import (
    approve,
    bench,
    doctor,
    rehearse,
    report,
    resume,
    run,
    runs,
    sandbox,
    validate,
)
from darkfactory.cli._common import Command, Subparsers, UsageError, load_dotenv
from darkfactory.cli.rehearse import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC
from darkfactory.errors import ExitCode, InputError

__all__ = ["COMMANDS", "EXAMPLE_PLAYBOOK", "EXAMPLE_SPEC", "build_parser", "crewai_run", "main"]

#: Every command, in the order ``darkfactory --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    run,
    rehearse,
    resume,
    approve,
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


def crewai_run() -> None:
    """What ``crewai run`` calls: run the spec named by ``SPEC`` or config/factory.yaml."""
    from darkfactory.config import load_config  # pydantic: not for --help

    try:
        load_dotenv()
        spec = os.environ.get("SPEC")
        if not spec:
            config = load_config(None)
            if not config.factory.spec:
                raise UsageError(
                    "no spec to run",
                    file=config.dir / "factory.yaml",
                    key="spec",
                    hint="set spec: in factory.yaml, or run SPEC=path/to/spec.yaml crewai run",
                )
            spec_path = Path(config.factory.spec)
            if not spec_path.is_absolute():
                spec_path = config.dir.resolve().parent / spec_path
            spec = str(spec_path)
    except InputError as exc:
        print(f"darkfactory: error: {exc}", file=sys.stderr)
        raise SystemExit(int(exc.exit_code)) from None
    raise SystemExit(main(["run", spec, *sys.argv[1:]]))


if __name__ == "__main__":
    raise SystemExit(main())
