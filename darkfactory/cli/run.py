"""``darkfactory run SPEC``: run the factory on a spec, print how the run ended.

``start_run`` is the path every started run takes (``rehearse`` too)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from darkfactory.spec import Spec

from darkfactory.cli._common import (
    Subparsers,
    add_run_options,
    budget_overrides,
    load_dotenv,
    print_outcome,
)


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("run", help="run the factory on a spec")
    p.add_argument("spec", type=Path, help="the spec file (text, Markdown or a YAML ticket)")
    p.add_argument(
        "--format", default=None, help="spec format, when detection from the file is wrong"
    )
    g = p.add_argument_group("an existing repository (docs/repositories.md)")
    g.add_argument(
        "--repo",
        default=None,
        help="work on this git repository (a path or URL): a branch, a patch, a PR",
    )
    g.add_argument("--base", default=None, help="the ref to start from (default: the repo's HEAD)")
    g.add_argument(
        "--kind",
        default=None,
        choices=("bug", "feature", "tests", "docs", "migrate"),
        help="what the ticket asks for (default: the ticket's kind:, else feature)",
    )
    add_run_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    load_dotenv()
    return start_run(
        args,
        args.spec,
        args.model,
        args.format,
        rehearsal=bool(args.model and args.model.startswith("scripted:")),
    )


def start_run(
    args: argparse.Namespace,
    spec_path: Path,
    model: str | None,
    fmt: str | None,
    *,
    rehearsal: bool,
) -> int:
    """Check the config, the spec and every model, then run the spec to its end."""
    from darkfactory.config import load_config  # pydantic, the spec formats: not for --help
    from darkfactory.spec import load_spec

    config = load_config(args.config)
    spec = with_target(load_spec(spec_path, format=fmt), args)
    from darkfactory.engine import session  # the engine (CrewAI): once the input is valid
    from darkfactory.engine.checkpoints import YesProvider
    from darkfactory.reporting.progress import Progress

    progress = Progress(quiet=args.quiet or args.json)
    models = session.checked_models(config, cli_model=model, record=args.record, progress=progress)

    runs_dir = args.out or Path(config.factory.runs_dir)
    backend = args.sandbox or config.factory.sandbox.backend
    if rehearsal:
        progress(f"rehearsal: a scripted model ({model}) plays every role; no AI model is called")
    elif model and model.startswith("replay:"):
        progress(
            f"replay: every answer comes from {model.removeprefix('replay:')}; no model is called"
        )
    if args.record:
        progress(f"recording every model exchange to {args.record}")
    caps = {**config.factory.budget.model_dump(), **budget_overrides(args)}
    env = session.prepare_run(
        spec,
        config,
        models,
        runs_dir=runs_dir,
        backend=backend,
        progress=progress,
        budget_limits=caps,
    )
    if getattr(args, "yes", False):
        env.provider = YesProvider(then=env.provider)
    backend_used = env.sandbox.backend if env.sandbox is not None else backend
    progress(f"run {env.run_id} in {env.run_dir} (sandbox: {backend_used})")
    if env.repo is not None:  # said even with --quiet: the run does not use what is on disk
        for warning in env.repo.record.warnings:
            where = env.repo.record.location
            print(f"darkfactory: warning: {where}: {warning}", file=sys.stderr, flush=True)
    outcome = session.execute(env, cli_model=model, backend=backend)
    return print_outcome(outcome, args)


def with_target(spec: Spec, args: argparse.Namespace) -> Spec:
    """``spec`` with ``--repo``, ``--base`` and ``--kind`` over its own ``repo:`` keys."""
    from darkfactory.spec.loader import with_target as apply

    repo, base, kind = (getattr(args, k, None) for k in ("repo", "base", "kind"))
    return apply(spec, repo=repo, base=base, kind=kind, flags=True)
