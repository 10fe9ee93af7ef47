"""``darkfactory rehearse``: run the example spec with its scripted model (no AI, no key).

The example's spec and playbook (``EXAMPLE_SPEC``, ``EXAMPLE_PLAYBOOK``) are named here: the
repository's examples/, or their copies in the installed package."""

from __future__ import annotations

import argparse

from darkfactory.cli._common import Subparsers, add_run_options
from darkfactory.cli.run import start_run
from darkfactory.project import shipped

EXAMPLE_SPEC = shipped("examples/specs/wordcount.yaml")
EXAMPLE_PLAYBOOK = shipped("examples/playbooks/wordcount.yaml")


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "rehearse", help="run the example spec with the scripted model (no AI, no key needed)"
    )
    add_run_options(p, model=False)
    return p


def run(args: argparse.Namespace) -> int:
    return start_run(args, EXAMPLE_SPEC, f"scripted:{EXAMPLE_PLAYBOOK}", None, rehearsal=True)
