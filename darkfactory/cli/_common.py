"""What the commands share: the ``Command`` Protocol every command module meets, the option
groups of the commands that run, reading ``.env``, and the lines a finished run prints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from darkfactory.errors import STATUS_EXIT, ExitCode, InputError

if TYPE_CHECKING:
    from darkfactory.engine.session import RunOutcome
    from darkfactory.engine.state import RunState

#: What ``add_parser`` adds its command to (``ArgumentParser.add_subparsers()``).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: The runs directory when ``--out`` names none (``run`` reads factory.yaml's ``runs_dir``).
RUNS_DIR = Path("runs")
#: ``--sandbox`` of ``run``, ``rehearse`` and ``bench``.
SANDBOX_CHOICES = ["auto", "bwrap", "docker", "local"]
RUN_ID_HELP = "the run's id (its directory name under the runs directory)"


class Command(Protocol):
    """A ``darkfactory`` command: a module of ``darkfactory.cli`` with these two functions."""

    def add_parser(self, subparsers: Subparsers) -> argparse.ArgumentParser:
        """Add the command, its options and their help to ``subparsers``; return its parser."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Do the command for the parsed ``args``; return its exit code (``ExitCode``)."""
        ...


class UsageError(InputError):
    """A command line the parser accepted but that cannot work."""


def load_dotenv() -> None:
    """Read ``.env`` from the working directory (never overriding the real environment)."""
    from dotenv import load_dotenv as _load  # python-dotenv, as CrewAI reads it: not for --help

    _load(Path.cwd() / ".env", override=False)


def runs_dir(args: argparse.Namespace) -> Path:
    """The runs directory of a command that finds a run by id (``--out``, else ``runs/``)."""
    return Path(args.out or RUNS_DIR)


# -- options -------------------------------------------------------------------------------
def add_budget_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("budget (overrides factory.yaml budget:)")
    g.add_argument("--max-llm-calls", type=int, default=None, help="most model calls for the run")
    g.add_argument("--max-tokens", type=int, default=None, help="most tokens for the run")
    g.add_argument(
        "--max-wall-s", type=float, default=None, help="most wall-clock seconds for the run"
    )
    g.add_argument(
        "--max-cost-usd", type=float, default=None, help="most US dollars of model calls"
    )


def budget_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The budget options given, checked (a ``UsageError`` for one that is not above 0)."""
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


def add_runs_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: runs/)")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def add_run_options(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    """The options of a command that starts a run (``run``, ``rehearse``)."""
    add_budget_options(p)
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
        choices=SANDBOX_CHOICES,
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
    _add_output_options(p)


def add_continue_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that continues a run (``resume``, ``approve``)."""
    add_runs_dir_option(p)
    _add_output_options(p)
    add_budget_options(p)


# -- a run's end -----------------------------------------------------------------------------
def continue_run(run_dir: Path, state: RunState, args: argparse.Namespace) -> int:
    """Continue the run in ``run_dir`` from its saved ``state`` (``resume``, ``approve``)."""
    from darkfactory.engine import session  # the engine (CrewAI): only when a run continues
    from darkfactory.reporting.progress import Progress

    if session.has_ended(state):
        print(f"{run_dir.name} already ended: {state.status} ({state.reason})")
        return int(STATUS_EXIT.get(state.status, ExitCode.FAILED))
    outcome = session.continue_run(
        run_dir,
        state,
        progress=Progress(quiet=args.quiet or args.json),
        budget_overrides=budget_overrides(args),
    )
    return print_outcome(outcome, args)


def print_outcome(outcome: RunOutcome, args: argparse.Namespace) -> int:
    """Print how a run ended (its report with ``--json``); return its exit code."""
    if args.json:
        print(json.dumps(outcome.report, indent=2))
    else:
        r = outcome.report
        tests = (
            f"acceptance {r['acceptance']['passed']}/{r['acceptance']['total']}, "
            f"unit {r['unit_tests']['passed']}/{r['unit_tests']['total']}"
            if r["verify_rounds"]
            else "tests not run"
        )
        print(
            f"{outcome.status}: {r['spec']['title']} - {tests}, "
            f"fix rounds {r['fix_rounds']}, LLM calls {r['llm']['calls']}"
            + (" (scripted model, not AI)" if r["scripted_model"] else "")
        )
        if outcome.reason:
            print(f"  why: {outcome.reason}")
        print(f"  report: {outcome.run_dir / 'report.md'}")
        print(f"  workspace: {outcome.run_dir / 'workspace'}")
    return outcome.exit_code
