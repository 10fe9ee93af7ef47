"""The CrewAI command line in this repository: ``crewai run`` and ``crewai flow kickoff``
reach the pipeline and leave the repository as they found it, ``crewai flow plot`` draws
every step and every route, ``test``, ``train``, ``replay`` say in one line why they do
not apply (the CLI runs each as ``uv run NAME``: the scripts an editable install writes),
and ``log-tasks-outputs`` lists every phase of the last run."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args, get_type_hints

import pytest
import yaml
from crewai.flow.flow_definition import FlowDefinition

from darkfactory import crewai_scripts
from darkfactory.engine.flow import FactoryFlow
from darkfactory.reporting.trace import read_trace

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def crewai(*args: str, cwd: Path = REPO, **more: str) -> subprocess.CompletedProcess[str]:
    """The ``crewai`` command, as a user whose environment is active runs it (``more``: the
    environment variables to add)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "MODEL"}
    env |= {"PATH": f"{BIN}{os.pathsep}{env['PATH']}", "VIRTUAL_ENV": str(BIN.parent), **more}
    return subprocess.run(
        [str(BIN / "crewai"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def routes_of(definition: FlowDefinition) -> dict[str, list[str]]:
    """Each router of the flow and the routes its return type declares."""
    return {
        name: list(get_args(get_type_hints(getattr(FactoryFlow, name))["return"]))
        for name, method in definition.methods.items()
        if method.router
    }


def edges_in(page: Path) -> set[tuple[str, str, str]]:
    """The edges the page draws, (from, to, label): CrewAI writes them into the script the
    page loads beside it."""
    html = page.read_text(encoding="utf-8")
    script = re.search(r'<script src="([\w.]+_script\.js)">', html)
    assert script is not None, "the page loads no script of its own"
    js = (page.parent / script.group(1)).read_text(encoding="utf-8")
    found = re.search(r"this\.edges = new vis\.DataSet\((\[.*?\])\);\n", js, re.S)
    assert found is not None, "no edge list in the page's script"
    return {(e["from"], e["to"], e["label"]) for e in json.loads(found.group(1))}


def test_plot_draws_every_step_and_every_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        crewai_scripts.plot()
    assert "not statically inferable" not in caplog.text
    assert "could not match listener triggers" not in caplog.text

    page = tmp_path / crewai_scripts.PLOT_DIR / crewai_scripts.PLOT_FILE
    definition = FactoryFlow.flow_definition()
    edges = edges_in(page)
    drawn = {node for a, b, _ in edges for node in (a, b)}
    assert set(definition.methods) == drawn  # every step, each joined to the flow

    routes = routes_of(definition)
    assert routes and all(routes.values())  # every router declares its routes
    for router, events in routes.items():
        for event in events:
            listeners = {b for a, b, label in edges if a == router and label == event}
            assert listeners, f"{router} routes {event!r} nowhere in the drawing"
    assert {label for *_, label in edges if label not in ("", "OR", "AND")} == {
        event for events in routes.values() for event in events
    }


def test_every_route_a_router_returns_is_declared() -> None:
    """The return types are what the drawing shows: no router returns a route not in them."""
    source = (REPO / "darkfactory" / "engine" / "flow.py").read_text(encoding="utf-8")
    routes = routes_of(FactoryFlow.flow_definition())
    declared = {event for events in routes.values() for event in events}
    returned = set(re.findall(r'return "(\w+)"', source))
    assert returned <= declared, returned - declared


def test_crewai_run_in_the_repository_reaches_the_pipeline_and_leaves_it_clean() -> None:
    pyproject = (REPO / "pyproject.toml").read_bytes()
    for args in (("run",), ("flow", "kickoff")):
        out = crewai(*args)
        # crewai exits 0 whatever its script did; the script's own words are what count.
        assert "darkfactory: error: no model is configured" in out.stderr, out.stderr
        assert "['uv', 'run', 'kickoff']' returned non-zero exit status 2" in out.stderr
    assert (REPO / "pyproject.toml").read_bytes() == pyproject  # no project_id written
    assert not (REPO / "uv.lock").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("test",), "`crewai test` does not apply: Dark Factory scores its crew with hidden tests"),
        (("train",), "`crewai train` does not apply: Dark Factory's roles keep no trained state"),
        (("replay", "-t", "x"), "`crewai replay` does not apply: continue a stopped run with"),
        (("chat",), "`crewai chat` does not apply: Dark Factory builds from a spec"),
    ],
)
def test_commands_that_do_not_apply_say_why_in_one_line(args: tuple[str, ...], says: str) -> None:
    out = crewai(*args)
    ours = [line for line in out.stderr.splitlines() if line.startswith("darkfactory:")]
    assert len(ours) == 1 and says in ours[0], out.stderr
    assert "Traceback" not in out.stderr


def test_crewai_test_suggests_what_works_from_a_wheel_first() -> None:
    """A wheel's user has no benchmarks/ folder: rehearse first, the bench for a checkout."""
    (line,) = [x for x in crewai("test").stderr.splitlines() if x.startswith("darkfactory:")]
    assert "run `darkfactory rehearse`" in line
    assert line.index("darkfactory rehearse") < line.index("benchmarks/suite")
    assert "in a checkout of the repository" in line


def test_log_tasks_outputs_shows_every_phase_of_the_last_run(tmp_path: Path) -> None:
    """CrewAI empties its kickoff store at each kickoff and each phase is one: the crew
    writes the earlier phases back, so ``crewai log-tasks-outputs`` lists them all."""
    from darkfactory.cli import main

    root = tmp_path / "my_factory"
    assert main(["init", str(root)]) == 0
    factory = root / "config" / "factory.yaml"
    factory.write_text(
        factory.read_text(encoding="utf-8").replace("  backend: auto", "  backend: local"),
        encoding="utf-8",
    )
    store = {"CREWAI_STORAGE_DIR": str(tmp_path / "crewai-store")}  # not the user's own
    out = crewai("run", cwd=root, MODEL="scripted:specs/wordcount.playbook.yaml", **store)
    assert "delivered: Word count CLI" in out.stdout, out.stdout + out.stderr

    (run_dir,) = (root / "runs").glob("2*")
    phases = [r["task"] for r in read_trace(run_dir / "trace.jsonl") if r["kind"] == "crew_start"]
    assert phases == ["design", "implement", "verify", "document"]
    tasks = yaml.safe_load((root / "config" / "tasks.yaml").read_text(encoding="utf-8"))

    out = crewai("log-tasks-outputs", cwd=root, **store)
    shown = re.findall(r"^Task (\d+): .*\nExpected output: (.*)$", out.stdout, re.M)
    assert [int(n) for n, _ in shown] == [1, 2, 3, 4], out.stdout + out.stderr
    assert [expected for _, expected in shown] == [
        " ".join(tasks[phase]["expected_output"].split()) for phase in phases
    ]
    assert "Output: DESIGN.md is written." in out.stdout  # the first phase's answer


def test_the_test_script_is_test1_for_anything_else(tmp_path: Path) -> None:
    """An active environment puts ``test`` on PATH: ``env test -d DIR`` must still work."""
    script = BIN / "test"
    assert script.is_file()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    assert subprocess.run(["env", "test", "-d", str(tmp_path)], env=env).returncode == 0
    assert subprocess.run(["env", "test", "-f", str(tmp_path / "no")], env=env).returncode == 1


def test_crewai_chat_in_a_project_made_by_init_says_why_in_one_line(tmp_path: Path) -> None:
    from darkfactory.cli import main

    root = tmp_path / "my_factory"
    assert main(["init", str(root)]) == 0
    out = crewai("chat", cwd=root)
    ours = [line for line in out.stderr.splitlines() if line.startswith("darkfactory:")]
    assert len(ours) == 1 and "`crewai chat` does not apply" in ours[0], out.stdout + out.stderr
    assert "Traceback" not in out.stderr
