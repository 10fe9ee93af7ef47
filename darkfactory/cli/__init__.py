"""``darkfactory`` command line. Exit codes: see ``darkfactory.errors.ExitCode``.

Commands that do not run a crew (``validate``, ``sandbox``) never import CrewAI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from darkfactory import __version__
from darkfactory.cli._common import load_dotenv
from darkfactory.errors import ExitCode, InputError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE_SPEC = REPO_ROOT / "examples" / "specs" / "wordcount.yaml"
EXAMPLE_PLAYBOOK = REPO_ROOT / "examples" / "playbooks" / "wordcount.yaml"


class UsageError(InputError):
    """A command line the parser accepted but that cannot work."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with our wording, not a traceback
        self.print_usage(sys.stderr)
        print(f"darkfactory: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_INPUT)


def _add_budget_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("budget (overrides factory.yaml budget:)")
    g.add_argument("--max-llm-calls", type=int, default=None, help="most model calls for the run")
    g.add_argument("--max-tokens", type=int, default=None, help="most tokens for the run")
    g.add_argument(
        "--max-wall-s", type=float, default=None, help="most wall-clock seconds for the run"
    )
    g.add_argument(
        "--max-cost-usd", type=float, default=None, help="most US dollars of model calls"
    )


def _budget_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        "max_llm_calls": getattr(args, "max_llm_calls", None),
        "max_tokens": getattr(args, "max_tokens", None),
        "max_wall_s": getattr(args, "max_wall_s", None),
        "max_cost_usd": getattr(args, "max_cost_usd", None),
    }
    for key, value in overrides.items():
        if value is not None and value <= 0:
            raise UsageError(f"--{key.replace('_', '-')} must be more than 0, got {value}")
    return {k: v for k, v in overrides.items() if v is not None}


def _add_run_options(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    _add_budget_options(p)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="runs directory (default: runs/ or factory.yaml runs_dir)",
    )
    if model:
        p.add_argument(
            "--model",
            default=None,
            help="model for every role, e.g. openai/gpt-4o-mini, scripted:PLAYBOOK.yaml or "
            "replay:CASSETTE.jsonl (plays back a --record'ed run, no model called)",
        )
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="CASSETTE.jsonl",
        help="record every model exchange of the run to this file, for --model replay:FILE",
    )
    p.add_argument(
        "--sandbox",
        default=None,
        choices=["auto", "bwrap", "docker", "local"],
        help="sandbox backend (default: factory.yaml sandbox.backend)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config directory with agents.yaml, tasks.yaml, factory.yaml",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="approve the spec approval and output review of this run without asking "
        "(factory.yaml checkpoints:); never the deploy approval: it is still asked, or the "
        "run pauses, unless factory.yaml says deploy_approval: auto",
    )
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="darkfactory", description="Spec in, tested and documented software out.")
    parser.add_argument("--version", action="version", version=f"darkfactory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run the factory on a spec")
    p.add_argument("spec", type=Path, help="the spec file (text, Markdown or a YAML ticket)")
    p.add_argument(
        "--format", default=None, help="spec format, when detection from the file is wrong"
    )
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "rehearse", help="run the example spec with the scripted model (no AI, no key needed)"
    )
    _add_run_options(p, model=False)
    p.set_defaults(func=cmd_rehearse)

    p = sub.add_parser(
        "resume", help="continue a run that was stopped (killed, crashed, interrupted)"
    )
    p.add_argument("run_id", help="the run's id (its directory name under the runs directory)")
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: runs/)")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_budget_options(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "approve",
        help="decide the checkpoint a paused run waits at (status awaiting_approval), then continue it",
    )
    p.add_argument("run_id", help="the run's id (its directory name under the runs directory)")
    p.add_argument("--reject", action="store_true", help="reject: the work goes back to the crew")
    p.add_argument(
        "--reason",
        default=None,
        help="why (needed with --reject); the crew's next task gets it as reviewer feedback",
    )
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: runs/)")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_budget_options(p)
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("report", help="render a run's report again (from its state and trace)")
    p.add_argument("run_id")
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: runs/)")
    p.add_argument("--format", choices=["md", "html", "json"], default="md")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("runs", help="list the runs in a runs directory")
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: runs/)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("validate", help="check a spec and the config without running anything")
    p.add_argument("spec", type=Path)
    p.add_argument("--format", default=None)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print the parsed spec as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "bench",
        help="run every spec of a suite, each in its own process, and score it with hidden tests",
    )
    p.add_argument("suite", type=Path, help="the suite directory (one sub-directory per entry)")
    p.add_argument(
        "--model",
        default=None,
        help="'scripted' (each entry plays its own playbook.yaml), or any model darkfactory run "
        "takes, passed to every run (default: the configured model)",
    )
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (processes; default 1)")
    p.add_argument(
        "--out", type=Path, default=None, help="bench directory (default: runs/bench-<time>)"
    )
    p.add_argument(
        "--sandbox",
        default=None,
        choices=["auto", "bwrap", "docker", "local"],
        help="sandbox backend of every run (default: factory.yaml sandbox.backend)",
    )
    p.add_argument("--config", type=Path, default=None, help="config directory of every run")
    p.add_argument(
        "--entry", action="append", default=None, help="run only this entry (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_bench)

    from darkfactory.cli.sandbox import add_parser as add_sandbox_parser

    add_sandbox_parser(sub)
    from darkfactory.cli.doctor import add_parser as add_doctor_parser

    add_doctor_parser(sub)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from darkfactory.config import load_config
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


def _run(
    args: argparse.Namespace,
    spec_path: Path,
    model: str | None,
    fmt: str | None,
    *,
    rehearsal: bool,
) -> int:
    from darkfactory.config import load_config
    from darkfactory.spec import load_spec

    config = load_config(args.config)
    spec = load_spec(spec_path, format=fmt)
    from darkfactory.engine import session  # the engine: imported by the commands that run
    from darkfactory.engine.checkpoints import YesProvider
    from darkfactory.reporting.progress import Progress

    models = session.checked_models(config, cli_model=model, record=args.record)

    runs_dir = args.out or Path(config.factory.runs_dir)
    backend = args.sandbox or config.factory.sandbox.backend
    progress = Progress(quiet=args.quiet or args.json)
    if rehearsal:
        progress(f"rehearsal: a scripted model ({model}) plays every role; no AI model is called")
    elif model and model.startswith("replay:"):
        progress(
            f"replay: every answer comes from {model.removeprefix('replay:')}; no model is called"
        )
    if args.record:
        progress(f"recording every model exchange to {args.record}")
    caps = {**config.factory.budget.model_dump(), **_budget_overrides(args)}
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
    outcome = session.execute(env, cli_model=model, backend=backend)
    return _print_outcome(outcome, args)


def _print_outcome(outcome: Any, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(outcome.report, indent=2))
    else:
        r = outcome.report
        print(
            f"{outcome.status}: {r['spec']['title']} - acceptance {r['acceptance']['passed']}/"
            f"{r['acceptance']['total']}, unit {r['unit_tests']['passed']}/{r['unit_tests']['total']}, "
            f"fix rounds {r['fix_rounds']}, LLM calls {r['llm']['calls']}"
            + (" (scripted model, not AI)" if r["scripted_model"] else "")
        )
        if outcome.reason:
            print(f"  why: {outcome.reason}")
        print(f"  report: {outcome.run_dir / 'report.md'}")
        print(f"  workspace: {outcome.run_dir / 'workspace'}")
    return outcome.exit_code


def cmd_resume(args: argparse.Namespace) -> int:
    from darkfactory.workspace import rundir

    load_dotenv()
    run_dir = rundir.find_run(args.out or Path("runs"), args.run_id)
    state = rundir.stored_state(run_dir)
    if state is None:
        raise UsageError(
            "this run stopped before its first step finished; there is nothing to resume",
            file=run_dir,
            hint="start it again with darkfactory run",
        )
    return _continue(run_dir, state, args)


def cmd_approve(args: argparse.Namespace) -> int:
    from darkfactory.engine import session  # the engine: imported by the commands that run
    from darkfactory.workspace import rundir

    load_dotenv()
    run_dir = rundir.find_run(args.out or Path("runs"), args.run_id)
    if args.reject and not (args.reason or "").strip():
        raise UsageError(
            "--reject needs --reason TEXT",
            hint="say what to change: the crew gets the reason as reviewer feedback",
        )
    state = session.approve(run_dir, reject=args.reject, reason=(args.reason or "").strip())
    return _continue(run_dir, state, args)


def _continue(run_dir: Path, state: dict[str, Any], args: argparse.Namespace) -> int:
    """Resume the run in ``run_dir`` from its saved ``state`` (resume and approve)."""
    from darkfactory.engine import session  # the engine: imported by the commands that run
    from darkfactory.reporting.progress import Progress

    if session.has_ended(state):
        print(f"{run_dir.name} already ended: {state.get('status')} ({state.get('reason')})")
        return int(session.STATUS_EXIT.get(state.get("status", "failed"), ExitCode.FAILED))
    outcome = session.continue_run(
        run_dir,
        state,
        progress=Progress(quiet=args.quiet or args.json),
        budget_overrides=_budget_overrides(args),
    )
    return _print_outcome(outcome, args)


def cmd_report(args: argparse.Namespace) -> int:
    from darkfactory.reporting.report import build_report, render_html, render_markdown
    from darkfactory.workspace import rundir

    run_dir = rundir.find_run(args.out or Path("runs"), args.run_id)
    state = rundir.stored_state(run_dir)
    if state is None:
        raise UsageError("this run has no saved state yet", file=run_dir)
    report = build_report(run_dir, state)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "html":
        print(render_html(report), end="")
    else:
        print(render_markdown(report), end="")
    return ExitCode.DELIVERED


def cmd_runs(args: argparse.Namespace) -> int:
    from darkfactory.engine.session import format_age, list_runs  # the engine: not for --help

    rows = list_runs(args.out or Path("runs"))
    if args.json:
        print(json.dumps(rows, indent=2))
        return ExitCode.DELIVERED
    if not rows:
        print(f"no runs in {args.out or Path('runs')}")
        return ExitCode.DELIVERED
    header = f"{'run id':44} {'status':17} {'age':>5} {'duration':>9} {'cost':>10}  spec"
    print(header)
    for r in rows:
        duration = "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}s"
        usd = "unknown" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
        print(
            f"{r['run_id']:44} {r['status']:17} {format_age(r['age_s']):>5} {duration:>9} "
            f"{usd:>10}  {r['spec']}"
        )
    return ExitCode.DELIVERED


def cmd_run(args: argparse.Namespace) -> int:
    load_dotenv()
    return _run(
        args,
        args.spec,
        args.model,
        args.format,
        rehearsal=bool(args.model and args.model.startswith("scripted:")),
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from darkfactory.bench.run import cmd_bench as bench

    load_dotenv()
    return bench(args)


def cmd_rehearse(args: argparse.Namespace) -> int:
    return _run(args, EXAMPLE_SPEC, f"scripted:{EXAMPLE_PLAYBOOK}", None, rehearsal=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as exc:
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
    from darkfactory.config import load_config

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
