"""``darkfactory sandbox exec|check``: run one command in a sandbox, or see which backends work.

``exec`` exits with the command's exit code (128 + N if a signal ended it), or 2 with a
message for a bad workspace or an unavailable backend. ``check`` exits 0 if an isolating
backend (bwrap or docker) works here, else 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from darkfactory.errors import ExitCode, InputError
from darkfactory.sandbox import BACKENDS, check_backends, open_sandbox
from darkfactory.sandbox.base import Limits, SandboxSpec


def add_parser(subparsers: Any) -> None:
    """Add ``sandbox`` with its ``exec`` and ``check`` subcommands to ``subparsers``."""
    p = subparsers.add_parser("sandbox", help="run a command in a sandbox, or check the backends")
    p.set_defaults(func=handler, sandbox_command=None, _sandbox_parser=p)
    sub = p.add_subparsers(dest="sandbox_command")

    e = sub.add_parser(
        "exec",
        help="run one command in a sandbox",
        description="Run CMD in a sandbox around a workspace, e.g. "
        "darkfactory sandbox exec --workspace . -- python -m pytest -q. "
        "CMD runs as you, without privileges: the files it writes are yours, and no "
        "file changes owner.",
    )
    e.add_argument(
        "--backend", default="auto", choices=BACKENDS, help="sandbox backend (default: auto)"
    )
    e.add_argument(
        "--workspace", type=Path, default=Path("."), help="workspace directory (default: .)"
    )
    e.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="wall-clock limit in seconds"
    )
    e.add_argument("--memory", type=int, default=None, metavar="MB", help="memory limit in MB")
    e.add_argument(
        "--json", action="store_true", help="print {exit_code, stdout, stderr, duration_s, killed}"
    )
    e.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the command and its arguments"
    )

    sub.add_parser("check", help="which sandbox backends work here, and why not")


def handler(args: argparse.Namespace) -> int:
    if args.sandbox_command == "exec":
        return _exec(args)
    if args.sandbox_command == "check":
        return _check()
    args._sandbox_parser.print_help(sys.stderr)
    return int(ExitCode.BAD_INPUT)


def _exec(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        return _fail("sandbox exec: no command given (write it after --, e.g. -- python -V)")
    workspace = Path(args.workspace)
    if not workspace.is_dir():
        return _fail(f"sandbox exec: workspace is not a directory: {workspace}")
    limits = Limits()
    if args.timeout is not None:
        if args.timeout <= 0:
            return _fail("sandbox exec: --timeout must be positive")
        limits = replace(limits, timeout_s=args.timeout)
    if args.memory is not None:
        if args.memory <= 0:
            return _fail("sandbox exec: --memory must be positive")
        limits = replace(limits, memory_mb=args.memory)
    try:
        sandbox = open_sandbox(
            args.backend, SandboxSpec(workspace=workspace.resolve(), limits=limits)
        )
    except InputError as exc:
        return _fail(f"sandbox exec: {exc}")
    try:
        result = sandbox.run(cmd)
    finally:
        sandbox.close()
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.killed is not None:
            print(f"darkfactory: sandbox: killed ({result.killed} limit)", file=sys.stderr)
    return result.exit_code


def _check() -> int:
    status = check_backends()
    for name, why in status.items():
        print(f"{name}: {'ok' if why is None else 'unavailable: ' + why}")
    if status["local"] is None:
        print("  (local runs without isolation; it is only used when named)")
    isolating_ok = status["bwrap"] is None or status["docker"] is None
    return int(ExitCode.DELIVERED if isolating_ok else ExitCode.BAD_INPUT)


def _fail(message: str) -> int:
    print(f"darkfactory: error: {message}", file=sys.stderr)
    return int(ExitCode.BAD_INPUT)
