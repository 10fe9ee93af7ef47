"""``RunEnv``: the live parts of one run that the flow works with (rebuilt on resume).

The flow gets it through its constructor; every part it calls out to is typed by a
Protocol of ``ports``, so a test can build a run of stand-ins. ``session`` builds the real one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkfactory.config import Config
from darkfactory.engine.ports import CrewRunner, DocsChecker, FeedbackProvider, Verifier
from darkfactory.engine.state import MAX_DESIGN_CHARS, MAX_INLINE_ACCEPTANCE_CHARS
from darkfactory.models import ModelPlan
from darkfactory.models.budget import BudgetMeter
from darkfactory.reporting.trace import Trace
from darkfactory.sandbox.base import Sandbox
from darkfactory.spec import Spec
from darkfactory.workspace import hostio, rundir
from darkfactory.workspace.context import RunContext
from darkfactory.workspace.paths import iter_files
from darkfactory.workspace.rundir import ACCEPTANCE_DIR

if TYPE_CHECKING:  # repositories only: not imported on a new project's path
    from darkfactory.engine.repo_run import RepoRun

#: Most files a prompt lists (an existing repository can have thousands).
MAX_LISTED_FILES = 400


@dataclass
class RunEnv:
    """The run's parts (module doc); ``models`` and ``sandbox`` are None with stand-ins."""

    run_id: str
    run_dir: Path
    config: Config
    spec: Spec
    trace: Trace
    ctx: RunContext
    crew: CrewRunner
    verifier: Verifier
    docs: DocsChecker
    #: Who answers an ``ask`` checkpoint (``checkpoints.TerminalProvider``, ``YesProvider``).
    provider: FeedbackProvider
    budget: BudgetMeter = field(default_factory=BudgetMeter)
    progress: Callable[[str], None] = field(default=lambda msg: None)
    models: ModelPlan | None = None
    sandbox: Sandbox | None = None
    #: A ticket on an existing repository (``engine.repo_run``); None: a new project.
    repo: RepoRun | None = None

    @property
    def workspace(self) -> Path:
        return self.run_dir / rundir.WORKSPACE_DIR

    @property
    def acceptance_dir(self) -> Path:
        return self.run_dir / ACCEPTANCE_DIR

    def model_cursor(self) -> dict[str, int]:
        """The scripted model's position per role (empty for any other model)."""
        scripted = self.models.scripted if self.models is not None else None
        return scripted.positions() if scripted is not None else {}

    def prompt_inputs(self) -> dict[str, Any]:
        inputs = prompt_inputs(self.spec, self.config, self.run_dir)
        if self.repo is not None:
            inputs["baseline"] = repo_text(self.repo)
            inputs["reproduction"] = reproduction_text(self.run_dir)
            from darkfactory.engine.repo_checks import checks_text  # repositories only

            inputs["checks"] = checks_text(self.spec)
        return inputs

    def workspace_files(self) -> str:
        return workspace_files(self.workspace)


def prompt_inputs(spec: Spec, config: Config, run_dir: Path) -> dict[str, Any]:
    """What the tasks' placeholders are filled with (``config/tasks.yaml``), now."""
    workspace = run_dir / rundir.WORKSPACE_DIR
    return {
        "title": spec.title,
        "summary": spec.summary or spec.title,
        "requirements": spec.requirements_text(),
        "acceptance_tests": _acceptance_text(run_dir),
        "workspace_files": workspace_files(workspace),
        "design": _design_text(workspace),
        "failures": "",
        "failure_class": "",
        "route": "",
        "feedback": "",
        "fix_round": 0,
        "max_fix_rounds": config.factory.max_fix_rounds,
        "docs_failures": "",
        "docs_round": 0,
        "baseline": "",
        "reproduction": "",
        "checks": "",
        "previous_work": "",
    }


def _acceptance_text(run_dir: Path) -> str:
    # Once frozen, the canonical copy is what the tests are, whatever the workspace holds.
    found, refused = hostio.files(run_dir, ACCEPTANCE_DIR, suffix=".py")
    if not found:
        found, refused = hostio.files(run_dir / rundir.WORKSPACE_DIR, ACCEPTANCE_DIR, suffix=".py")
    if not found and not refused:
        return "(none yet: the architect writes them under acceptance/ in the design phase)"
    text = "".join(
        f"\n--- acceptance/{name} ---\n{data.decode('utf-8', 'replace')}"
        for name, data in found.items()
    )
    text += "".join(f"\n--- acceptance/{name}: not read ({why}) ---" for name, why in refused)
    if len(text) > MAX_INLINE_ACCEPTANCE_CHARS:
        names = ", ".join(f"acceptance/{name}" for name in found)
        return f"{names} (read them with read_file; they are read-only)"
    return text


def workspace_files(workspace: Path, limit: int = MAX_LISTED_FILES) -> str:
    """The workspace's files, one path a line (what the crew's tasks list), at most ``limit``."""
    paths: list[str] = []
    for entry in iter_files(workspace):
        if len(paths) == limit:
            return "\n".join(paths) + "\n[... more files: list_files or repo_map shows them]"
        paths.append(entry.path)
    return "\n".join(paths) or "(empty)"


def _design_text(workspace: Path) -> str:
    try:
        text = hostio.read_text(workspace, "DESIGN.md", errors="replace")
    except FileNotFoundError:
        return "(no DESIGN.md yet)"
    except hostio.Refused as exc:
        return f"(DESIGN.md is not read: {exc.why}; write it as a plain file)"
    return (
        text
        if len(text) <= MAX_DESIGN_CHARS
        else text[:MAX_DESIGN_CHARS] + "\n[... read DESIGN.md for the rest]"
    )


def repo_text(repo: RepoRun) -> str:
    from darkfactory.engine.repo_run import baseline_text  # a repository run has it loaded

    return baseline_text(repo.baseline)


def reproduction_text(run_dir: Path) -> str:
    """``{reproduction}``: the tests that must pass, and how they failed at base."""
    path = run_dir / "reproduction.json"
    if not path.is_file():
        return ""
    data = json.loads(path.read_text(encoding="utf-8"))
    tests = ", ".join(str(t) for t in data["tests"])
    return f"Tests: {tests}\nAt the base commit:\n{data['failure']}"
