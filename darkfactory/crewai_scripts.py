"""What the CrewAI CLI runs in a Dark Factory project: ``crewai run`` (``kickoff``,
``run_crew``), ``crewai flow plot`` (``plot``), and why ``test``, ``train``, ``replay`` and
``chat`` (``NoChat``) do not apply.

The CLI runs each as ``uv run NAME``: a script the project declares (``init.SCRIPTS``)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from darkfactory.cli import main
from darkfactory.cli._common import UsageError, load_dotenv
from darkfactory.errors import ExitCode, InputError

#: Where ``plot`` writes the flow diagram (with its stylesheet and script).
PLOT_DIR = Path("runs") / "flow"
PLOT_FILE = "factory_flow.html"


def kickoff() -> NoReturn:
    """``crewai run``: run the spec named by ``SPEC``, else by ``spec:`` in factory.yaml."""
    from darkfactory.config import load_config  # pydantic: once the script runs

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


def plot() -> None:
    """``crewai flow plot``: draw every step of the flow and every route between them."""
    from crewai.flow.visualization import build_flow_structure, render_interactive

    from darkfactory.engine.flow import FactoryFlow

    structure = build_flow_structure(FactoryFlow)
    # CrewAI writes the page, its stylesheet and its script to a new temporary folder.
    page = Path(render_interactive(structure, filename=PLOT_FILE, show=False))
    PLOT_DIR.mkdir(parents=True, exist_ok=True)
    for part in page.parent.iterdir():
        shutil.copy2(part, PLOT_DIR / part.name)
    shutil.rmtree(page.parent)
    routes = sum(1 for e in structure["edges"] if e["is_router_event"])
    print(
        f"flow diagram: {(PLOT_DIR / PLOT_FILE).resolve()} "
        f"({len(structure['nodes'])} steps, {routes} routes); open it in a browser"
    )


def test() -> NoReturn:
    """``crewai test`` (``test N MODEL``) does not apply. Any other use of the name is
    ``test(1)``'s: this script sits on PATH while the environment is active."""
    args = sys.argv[1:]
    if len(args) == 2 and args[0].isdigit():
        _does_not_apply(
            "test",
            "Dark Factory scores its crew with hidden tests run in a sandbox, not with an LLM "
            "judge; run `darkfactory rehearse` (the whole pipeline on the example spec), or "
            "`darkfactory bench benchmarks/suite --model MODEL` in a checkout of the repository",
        )
    here = Path(sys.argv[0]).resolve().parent
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != here
    )
    real = shutil.which("test", path=path) or "/usr/bin/test"
    os.execv(real, ["test", *args])


def train() -> NoReturn:
    """``crewai train`` does not apply."""
    _does_not_apply(
        "train",
        "Dark Factory's roles keep no trained state between runs; change their prompts in "
        "config/agents.yaml and config/tasks.yaml and measure with `darkfactory bench`",
    )


def replay() -> NoReturn:
    """``crewai replay`` does not apply."""
    _does_not_apply(
        "replay",
        "continue a stopped run with `darkfactory resume RUN_ID`, or replay a recorded run's "
        "model answers with `darkfactory run SPEC --model replay:CASSETTE.jsonl`",
    )


class NoChat:
    """What ``crewai chat`` finds in a project's ``src/<name>/crew.py`` (``darkfactory init``)."""

    def __init__(self) -> None:
        _does_not_apply(
            "chat",
            "Dark Factory builds from a spec, not from a conversation; write the spec, then "
            "`crewai run` (SPEC=path) or `darkfactory run SPEC`",
        )


def _does_not_apply(command: str, why: str) -> NoReturn:
    print(f"darkfactory: `crewai {command}` does not apply: {why}", file=sys.stderr)
    raise SystemExit(int(ExitCode.BAD_INPUT))
