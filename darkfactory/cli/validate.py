"""``darkfactory validate SPEC``: check a spec and the config without running anything."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darkfactory.cli._common import Subparsers
from darkfactory.errors import ExitCode


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate", help="check a spec and the config without running anything"
    )
    p.add_argument("spec", type=Path)
    p.add_argument("--format", default=None)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print the parsed spec as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from darkfactory.config import load_config  # pydantic, the spec formats: not for --help
    from darkfactory.spec import load_spec
    from darkfactory.spec.trace import requirement_links

    config = load_config(args.config)
    spec = load_spec(args.spec, format=args.format)
    links = requirement_links(spec)
    if args.json:
        print(
            json.dumps(
                {"spec": spec.model_dump(), "links": links, "config": str(config.dir)}, indent=2
            )
        )
    else:
        print(f"{spec.source}: {spec.format} spec '{spec.title}'")
        for r in spec.requirements:
            tests = [t for t, ids in links.items() if r.id in ids]
            print(
                f"  {r.id}: {r.text}"
                + (f"  [{len(tests)} test(s)]" if tests else "  [no test yet]")
            )
        print(f"  acceptance test files: {len(spec.acceptance_tests)}")
        print(f"config {config.dir}: ok ({len(config.agents)} roles, {len(config.tasks)} tasks)")
    return ExitCode.DELIVERED
