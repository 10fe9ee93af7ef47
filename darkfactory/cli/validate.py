"""``darkfactory validate SPEC``: check a spec and the config without running anything
(with ``--model``: that model's key, and its name with the provider)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from darkfactory.cli._common import Subparsers, load_dotenv
from darkfactory.errors import ExitCode


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate", help="check a spec and the config without running anything"
    )
    p.add_argument("spec", type=Path)
    p.add_argument("--format", default=None)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument(
        "--model",
        default=None,
        help="also check this model for every role: its key, and its name with the provider "
        "(one request for its model list)",
    )
    p.add_argument("--json", action="store_true", help="print the parsed spec as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from darkfactory.config import load_config  # pydantic, the spec formats: not for --help
    from darkfactory.spec import load_spec
    from darkfactory.spec.trace import requirement_links

    config = load_config(args.config)
    spec = load_spec(args.spec, format=args.format)
    links = requirement_links(spec)
    checks = []
    if args.model:
        from darkfactory.models import ModelPlan

        load_dotenv()
        plan = ModelPlan(config, cli_model=args.model)
        plan.check()  # its key
        checks = plan.check_names()  # UnknownModel: exit 2
    if args.json:
        found: dict[str, Any] = {
            "spec": spec.model_dump(),
            "links": links,
            "config": str(config.dir),
        }
        if args.model:
            found["models"] = [dataclasses.asdict(c) for c in checks]
        print(json.dumps(found, indent=2))
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
        for c in checks:
            if c.known:
                print(f"model {c.model}: ok, the provider has it ({c.note})")
            elif c.asked:
                print(f"model {c.model}: could not check the name ({c.note})")
            else:
                print(f"model {c.model}: name not checked ({c.note})")
    return ExitCode.DELIVERED
