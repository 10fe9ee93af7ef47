"""``darkfactory rehearse``: run the example spec with its scripted model (no AI, no key).

The example's spec and playbook (``EXAMPLE_SPEC``, ``EXAMPLE_PLAYBOOK``) are named here."""

from __future__ import annotations

import argparse
from pathlib import Path

from darkfactory.cli._common import Subparsers, add_run_options
from darkfactory.cli.run import start_run

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE_SPEC = REPO_ROOT / "examples" / "specs" / "wordcount.yaml"
EXAMPLE_PLAYBOOK = REPO_ROOT / "examples" / "playbooks" / "wordcount.yaml"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "rehearse", help="run the example spec with the scripted model (no AI, no key needed)"
    )
    add_run_options(p, model=False)
    return p


def run(args: argparse.Namespace) -> int:
    return start_run(args, EXAMPLE_SPEC, f"scripted:{EXAMPLE_PLAYBOOK}", None, rehearsal=True)
