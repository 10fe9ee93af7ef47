"""``darkfactory sandbox exec|check|build-image``: run one command in a sandbox, say which
backends work here, build the docker backend's image offline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from darkfactory.cli._common import Subparsers, UsageError
from darkfactory.errors import ExitCode, InputError
from darkfactory.sandbox import BACKENDS, check_backends, open_sandbox
from darkfactory.sandbox.base import Limits, SandboxSpec
from darkfactory.sandbox.image import DEFAULT_IMAGE, SUITE, build_image

_IMAGE_HELP = f"docker image (default: sandbox.image of factory.yaml, else {DEFAULT_IMAGE})"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sandbox", help="run a command in a sandbox, check the backends, build the docker image"
    )
    p.set_defaults(sandbox_command=None, sandbox_parser=p)
    sub = p.add_subparsers(dest="sandbox_command")

    e = sub.add_parser(
        "exec",
        help="run one command in a sandbox",
        description="Run CMD in a sandbox around a workspace, e.g. "
        "darkfactory sandbox exec --workspace . -- python -m pytest -q. "
        "CMD runs as you, without privileges: the files it writes are yours, and no file "
        "changes owner. docker never runs CMD as root: run as root, it runs CMD as the "
        "workspace's owner, and refuses a workspace that root owns (use bwrap for that).",
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
    e.add_argument("--image", default=None, metavar="NAME", help=_IMAGE_HELP)
    e.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the command and its arguments"
    )

    c = sub.add_parser("check", help="which sandbox backends work here, and why not")
    c.add_argument("--image", default=None, metavar="NAME", help=_IMAGE_HELP)

    b = sub.add_parser(
        "build-image",
        help="build the docker backend's image offline (debootstrap; root; about a minute)",
        description="Build the docker backend's image without a registry: debootstrap a "
        f"minimal Debian {SUITE} with python3, pip and pytest from the mirror this "
        "machine's apt uses (or --mirror), then import it into the engine. Needs root, "
        "debootstrap (apt-get install debootstrap) and a running engine. Online, "
        "examples/docker/Dockerfile builds an equivalent image from python:3.11-slim.",
    )
    b.add_argument("--name", default=None, metavar="NAME", help=_IMAGE_HELP)
    b.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="Debian mirror (default: the one this machine's apt sources name)",
    )
    b.add_argument("--suite", default=SUITE, help=f"Debian release (default: {SUITE})")
    return p


def run(args: argparse.Namespace) -> int:
    """The sub-command's exit code; without one, the usage on stderr and 2."""
    sub_commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "exec": _exec,
        "check": _check,
        "build-image": _build_image,
    }
    if args.sandbox_command is None:
        args.sandbox_parser.print_help(sys.stderr)
        return int(ExitCode.BAD_INPUT)
    return sub_commands[args.sandbox_command](args)


def _exec(args: argparse.Namespace) -> int:
    """CMD's exit code (128 + N if signal N ended it); a ``UsageError`` for a bad workspace,
    limit or backend."""
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("sandbox exec: no command given (write it after --, e.g. -- python -V)")
    workspace = Path(args.workspace)
    if not workspace.is_dir():
        raise UsageError(f"sandbox exec: workspace is not a directory: {workspace}")
    limits = Limits()
    if args.timeout is not None:
        if args.timeout <= 0:
            raise UsageError("sandbox exec: --timeout must be positive")
        limits = replace(limits, timeout_s=args.timeout)
    if args.memory is not None:
        if args.memory <= 0:
            raise UsageError("sandbox exec: --memory must be positive")
        limits = replace(limits, memory_mb=args.memory)
    try:
        spec = SandboxSpec(
            workspace=workspace.resolve(), limits=limits, image=args.image or _configured_image()
        )
        sandbox = open_sandbox(args.backend, spec)
    except InputError as exc:
        raise UsageError(f"sandbox exec: {exc}") from exc
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


def _check(args: argparse.Namespace) -> int:
    """0 if an isolating backend (docker or bwrap) works here, else 2."""
    try:
        image = args.image or _configured_image()
    except InputError as exc:
        raise UsageError(f"sandbox check: {exc}") from exc
    status = check_backends(image)
    for name, why in status.items():
        print(f"{name}: {'ok' if why is None else 'unavailable: ' + why}")
    if status["docker"] is None:
        print(f"  (docker runs {image})")
    if status["local"] is None:
        print("  (local runs without isolation; it is only used when named)")
    isolating_ok = status["bwrap"] is None or status["docker"] is None
    return int(ExitCode.DELIVERED if isolating_ok else ExitCode.BAD_INPUT)


def _build_image(args: argparse.Namespace) -> int:
    """0 and the image's name when built; a ``UsageError`` when not."""

    def progress(message: str) -> None:
        print(f"darkfactory: build-image: {message}", file=sys.stderr, flush=True)

    try:
        name = args.name or _configured_image()
        build_image(name, mirror=args.mirror, suite=args.suite, progress=progress)
    except InputError as exc:
        raise UsageError(f"sandbox build-image: {exc}") from exc
    print(name)
    return int(ExitCode.DELIVERED)


def _configured_image() -> str:
    """``sandbox.image`` of the default config's factory.yaml (a ``ConfigError`` if invalid)."""
    from darkfactory.config import FACTORY_FILE, default_config_dir, load_factory  # pydantic

    path = default_config_dir() / FACTORY_FILE
    return load_factory(path).sandbox.image if path.is_file() else DEFAULT_IMAGE
