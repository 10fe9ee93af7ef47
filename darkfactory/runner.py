"""Setting up a run: its directory, workspace, sandbox, trace and models; then the flow.

Everything a user can get wrong (config, spec, model, sandbox) is checked before the run
directory is created, so a bad input costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkfactory import acceptance, deps, gitrepo, hostio
from darkfactory.budget import BudgetMeter
from darkfactory.classify import Diagnosis, diagnose
from darkfactory.config import Config
from darkfactory.context import RunContext
from darkfactory.flowstate import ACCEPTANCE_DIR, MAX_DESIGN_CHARS, MAX_INLINE_ACCEPTANCE_CHARS
from darkfactory.llms import ModelPlan
from darkfactory.progress import Progress
from darkfactory.sandbox import ACCEPTANCE_TARGET, open_sandbox
from darkfactory.sandbox.base import Mount, Sandbox, SandboxSpec
from darkfactory.spec import Spec
from darkfactory.spec.trace import requirement_links
from darkfactory.testrun import TestRun, expected_tests, run_pytest
from darkfactory.trace import Trace

SPEC_JSON = "spec.json"
WORKSPACE_GITIGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\nsite/\n"


def new_run_id(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:32] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


@dataclass
class VerifyResult:
    """The outcome of one verify round: both suites, measured in the sandbox."""

    round_no: int
    acceptance: TestRun
    unit: TestRun | None
    links: dict[str, list[str]]
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    #: The generated project's dependencies, installed before the suites ran (None: none).
    dependencies: deps.DepsResult | None = None

    @property
    def passed(self) -> bool:
        """Every acceptance test ran and passed (at least one did), and no unit test failed.

        A suite killed by a limit never passes, whatever its report says, and an acceptance
        suite whose tests were all skipped proves nothing.
        """
        acc = self.acceptance
        unit_ok = self.unit is None or (
            self.unit.exec.killed is None
            and self.unit.collection_error is None
            and self.unit.failed == 0
            and self.unit.errors == 0
        )
        return (
            acc.exec.killed is None
            and acc.collection_error is None
            and acc.passed > 0
            and acc.passed == acc.total - acc.skipped
            and not acc.unreported
            and unit_ok
        )

    def failures_text(self, max_chars: int) -> str:
        parts = []
        dependencies = self.dependencies
        if dependencies is not None and not dependencies.ok:
            parts.append("## Dependencies\n" + dependencies.summary())
        if self.acceptance.total == 0 and self.acceptance.collection_error is None:
            parts.append("No acceptance tests ran: nothing proves the spec is met.")
        parts.append(
            "## Acceptance tests (read-only, from the spec)\n"
            + self.acceptance.summary(max_chars // 2)
        )
        if self.unit is not None:
            parts.append(
                "## Unit tests (tests/, written by the QA engineer)\n"
                + self.unit.summary(max_chars // 2)
            )
        if dependencies is not None and dependencies.ok:
            parts.append("## Dependencies\n" + dependencies.summary())
        return "\n\n".join(parts)[:max_chars]

    def to_state(self) -> dict[str, Any]:
        def suite(run: TestRun | None) -> dict[str, Any]:
            if run is None:
                return {
                    "total": 0,
                    "passed": 0,
                    "failed": 0,
                    "errors": 0,
                    "skipped": 0,
                    "outcomes": {},
                }
            return {
                "total": run.total,
                "passed": run.passed,
                "failed": run.failed,
                "errors": run.errors,
                "skipped": run.skipped,
                "collection_error": run.collection_error,
                "outcomes": {
                    test_key(o, keep_dirs=run is self.acceptance): o.outcome for o in run.outcomes
                },
            }

        return {
            "classes": self.diagnosis.classes,
            "route": self.diagnosis.route,
            "round": self.round_no,
            "passed": self.passed,
            "acceptance": suite(self.acceptance),
            "unit": suite(self.unit),
        }


def test_key(outcome: Any, *, keep_dirs: bool = False) -> str:
    """``file.py::test`` (or ``file.py::Class::test``), the key requirement links use.

    ``keep_dirs``: keep the file's sub-directories (``api/test_x.py::test``), as acceptance
    tests are keyed by their path under the acceptance directory (pytest's rootdir there).
    """
    nodeid: str = outcome.nodeid
    path, _, rest = nodeid.partition("::")
    if not rest:
        return nodeid
    if keep_dirs and not path.startswith(("/", "../")):
        return nodeid
    return f"{Path(path).name}::{rest}"


@dataclass
class RunEnv:
    """The live parts of a run that the flow uses (not persisted; rebuilt on resume)."""

    run_id: str
    run_dir: Path
    config: Config
    spec: Spec
    models: ModelPlan
    sandbox: Sandbox
    trace: Trace
    ctx: RunContext
    progress: Callable[[str], None] = field(default=lambda msg: None)
    budget: BudgetMeter = field(default_factory=BudgetMeter)
    #: Who answers an ``ask`` checkpoint (a CrewAI ``HumanFeedbackProvider``); None: the
    #: terminal if there is one, else the run pauses (``checkpoints.TerminalProvider``).
    provider: Any = None

    def checkpoint_provider(self) -> Any:
        if self.provider is None:
            from darkfactory.checkpoints import TerminalProvider

            live = self.progress if isinstance(self.progress, Progress) else None
            self.provider = TerminalProvider(
                before_asking=live.stop if live else (lambda: None),
                after_asking=live.start if live else (lambda: None),
            )
        return self.provider

    @property
    def workspace(self) -> Path:
        return self.run_dir / "workspace"

    @property
    def acceptance_dir(self) -> Path:
        return self.run_dir / "acceptance"

    # -- prompts ------------------------------------------------------------------------
    def prompt_inputs(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "title": spec.title,
            "summary": spec.summary or spec.title,
            "requirements": spec.requirements_text(),
            "acceptance_tests": self._acceptance_text(),
            "workspace_files": self.workspace_files(),
            "design": self._design_text(),
            "failures": "",
            "failure_class": "",
            "route": "",
            "feedback": "",
            "fix_round": 0,
            "max_fix_rounds": self.config.factory.max_fix_rounds,
            "docs_failures": "",
            "docs_round": 0,
        }

    def _acceptance_text(self) -> str:
        # Once frozen, the canonical copy is what the tests are, whatever the workspace holds.
        found, refused = hostio.files(self.run_dir, ACCEPTANCE_DIR, suffix=".py")
        if not found:
            found, refused = hostio.files(self.workspace, ACCEPTANCE_DIR, suffix=".py")
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

    def workspace_files(self) -> str:
        """The workspace's files, one path a line (what the crew's tasks list)."""
        from darkfactory.workspace import iter_files

        entries = list(iter_files(self.workspace))
        return "\n".join(e.path for e in entries) or "(empty)"

    def _design_text(self) -> str:
        try:
            text = hostio.read_text(self.workspace, "DESIGN.md", errors="replace")
        except FileNotFoundError:
            return "(no DESIGN.md yet)"
        except hostio.Refused as exc:
            return f"(DESIGN.md is not read: {exc.why}; write it as a plain file)"
        return (
            text
            if len(text) <= MAX_DESIGN_CHARS
            else text[:MAX_DESIGN_CHARS] + "\n[... read DESIGN.md for the rest]"
        )

    # -- the model ----------------------------------------------------------------------
    def raise_if_model_failed(self) -> None:
        """A model that failed for good fails the run, even inside a coworker.

        CrewAI turns a coworker's exception into a tool error for the manager, who may go
        on as if the work were done: a scripted model that ran out or mismatched, a provider
        that refused or stayed unreachable (``GuardedLLM.fatal``).
        """
        scripted = self.models.scripted
        if scripted is not None and scripted.fatal is not None:
            raise scripted.fatal
        fatal = self.models.fatal()
        if fatal is not None:
            raise fatal

    # -- verify -------------------------------------------------------------------------
    def verify(self, round_no: int) -> VerifyResult:
        self._restore_acceptance_copy()
        installed = deps.ensure(
            self.sandbox,
            self.workspace,
            self.run_dir,
            timeout_s=self.config.factory.sandbox.deps_timeout_s,
        )
        if installed is not None and installed.exec is not None:
            self.trace.write(
                "sandbox_exec",
                argv=["pip", "install", "-r", installed.source],
                exit_code=installed.exec.exit_code,
                duration_s=round(installed.exec.duration_s, 3),
                killed=installed.exec.killed,
            )
        timeout = self.config.factory.tests.timeout_s
        mounted = self.sandbox.path_of(ACCEPTANCE_TARGET)
        acceptance = run_pytest(self.sandbox, [mounted], timeout=timeout, rootdir=mounted)
        # Every test function on disk must have a result: a report that leaves one out was
        # cut short or tampered with, and proves nothing about it.
        frozen, _ = hostio.files(self.run_dir, ACCEPTANCE_DIR, suffix=".py")
        acceptance = acceptance.expecting(expected_tests(frozen))
        unit = None
        if hostio.kind_of(self.workspace, "tests") == "dir":
            unit = run_pytest(self.sandbox, ["tests"], timeout=timeout)
        links = requirement_links(self.spec_with_frozen_tests())
        result = VerifyResult(
            round_no, acceptance, unit, links, diagnose(acceptance, unit, self.workspace), installed
        )
        for suite, run in (("acceptance", acceptance), ("unit", unit)):
            if run is None:
                continue
            self.trace.write(
                "sandbox_exec",
                argv=["pytest", suite],
                exit_code=run.exec.exit_code,
                duration_s=round(run.exec.duration_s, 3),
                killed=run.exec.killed,
            )
            for o in run.outcomes:
                key = test_key(o, keep_dirs=suite == "acceptance")
                self.trace.write(
                    "test_outcome",
                    suite=suite,
                    test=key,
                    requirements=links.get(key.split("[")[0], []),
                    outcome=o.outcome,
                    duration_s=o.duration_s,
                )
        self.trace.write(
            "verify",
            round=round_no,
            passed=result.passed,
            acceptance={"total": acceptance.total, "passed": acceptance.passed},
            unit={"total": unit.total, "passed": unit.passed}
            if unit
            else {"total": 0, "passed": 0},
        )
        self.progress(
            f"verify round {round_no}: acceptance {acceptance.passed}/{acceptance.total}"
            + (f", unit {unit.passed}/{unit.total}" if unit else ", no unit tests")
        )
        return result

    def spec_with_frozen_tests(self) -> Spec:
        """The spec with the acceptance tests the run actually uses (spec's or architect's)."""
        return acceptance.with_frozen_tests(self.spec, self.run_dir)

    def _restore_acceptance_copy(self) -> None:
        """Put the canonical acceptance tests back in the workspace if anything changed them.

        Whatever is at ``workspace/acceptance`` (a changed copy, a symlink, a file) is
        removed without being followed, and the frozen copy written in its place.
        """
        canonical = self.acceptance_dir
        if not canonical.is_dir():
            return
        ws = self.workspace / ACCEPTANCE_DIR
        if hostio.kind_of(self.workspace, ACCEPTANCE_DIR) == "dir" and hostio.hash_tree(
            self.workspace, ACCEPTANCE_DIR
        ) == hostio.hash_tree(canonical):
            return
        hostio.remove(ws)
        hostio.copy_tree(canonical, ".", ws)
        self.trace.write(
            "acceptance_restored", reason="the workspace copy differed from the frozen tests"
        )


def prepare_run(
    spec: Spec,
    config: Config,
    models: ModelPlan,
    *,
    runs_dir: Path,
    backend: str,
    progress: Callable[[str], None] = lambda msg: None,
    budget_limits: dict[str, Any] | None = None,
) -> RunEnv:
    """Create ``runs/<id>/`` with spec/, workspace/ (a git repo), acceptance/ and the sandbox."""
    run_id = new_run_id(spec.title)
    run_dir = (runs_dir / run_id).resolve()
    workspace = run_dir / "workspace"
    run_dir.mkdir(parents=True)
    run_dir.chmod(0o700)  # the workspace is model-written: no other local user reaches it
    for d in ("spec", "acceptance"):
        (run_dir / d).mkdir()
    source = Path(spec.source)
    if source.is_dir():  # a test-suite spec
        shutil.copytree(
            source,
            run_dir / "spec" / (source.resolve().name or "suite"),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    else:
        shutil.copy2(source, run_dir / "spec" / source.name)
    # What resume needs to rebuild the run exactly: the parsed spec and the config used.
    (run_dir / "spec" / SPEC_JSON).write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    shutil.copytree(config.dir, run_dir / "config")
    gitrepo.init(workspace)
    (workspace / ".gitignore").write_text(WORKSPACE_GITIGNORE, encoding="utf-8")
    for test in spec.acceptance_tests:
        target = workspace / "acceptance" / test.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(test.content, encoding="utf-8")

    try:
        return open_run(
            run_dir,
            config,
            spec,
            models,
            backend=backend,
            progress=progress,
            budget_limits=budget_limits,
        )
    except BaseException:
        # The sandbox could not be opened (or worse): leave no half-made run behind.
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def open_run(
    run_dir: Path,
    config: Config,
    spec: Spec,
    models: ModelPlan,
    *,
    backend: str,
    progress: Callable[[str], None] = lambda msg: None,
    budget_limits: dict[str, Any] | None = None,
    budget_used: dict[str, Any] | None = None,
) -> RunEnv:
    """The live parts of the run in ``run_dir`` (new or resumed): sandbox, trace, context."""
    run_id = run_dir.name
    caps = budget_limits or config.factory.budget.model_dump()
    if caps.get("max_cost_usd") is not None:
        models.check_prices()  # a cost limit needs every model's price, before any work
    workspace = run_dir / "workspace"
    limits = config.factory.limits()
    sandbox = open_sandbox(
        backend,
        SandboxSpec(
            workspace=workspace,
            mounts=[
                Mount(run_dir / "acceptance", ACCEPTANCE_TARGET, read_only=True),
                *deps.mounts(run_dir),
            ],
            limits=limits,
            pythonpath=[deps.DEPS_TARGET],
            image=config.factory.sandbox.image,
            hand_over=True,  # the run's own directories (docker as root: see docker.py)
        ),
    )
    trace = Trace(run_dir / "trace.jsonl")
    if isinstance(progress, Progress):
        trace.observers.append(progress.observe)
    ctx = RunContext(
        workspace=workspace,
        sandbox=sandbox,
        test_timeout_s=config.factory.tests.timeout_s,
        on_event=trace.sink,
    )
    used = budget_used or {}
    budget = BudgetMeter(
        max_llm_calls=caps.get("max_llm_calls"),
        max_tokens=caps.get("max_tokens"),
        max_wall_s=caps.get("max_wall_s"),
        max_cost_usd=caps.get("max_cost_usd"),
        calls_before=int(used.get("llm_calls", 0)),
        tokens_before=int(used.get("tokens", 0)),
        seconds_before=float(used.get("wall_s", 0.0)),
        cost_before=used.get("cost_usd", 0.0),
        token_source=models.tokens_used,
        cost_source=models.cost_used,
    )
    return RunEnv(run_id, run_dir, config, spec, models, sandbox, trace, ctx, progress, budget)


def default_progress(quiet: bool) -> Progress:
    return Progress(quiet=quiet)
