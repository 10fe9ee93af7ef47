"""A run from start to end: start one, continue it, approve it; the one way into a run.

``prepare_run`` makes ``runs/<id>/`` and ``open_run`` the live parts around it (sandbox,
trace, models, crew); ``execute`` drives the flow to its end or its pause, under the
run's lock, and writes the report; ``approve`` records a person's decision. Everything a
user can get wrong is checked before the run directory exists.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkfactory.config import Config
from darkfactory.engine import deps, holdout
from darkfactory.engine.checkpoints import APPROVED, REJECTED, TerminalProvider
from darkfactory.engine.crew import CrewPhases
from darkfactory.engine.docs_check import SandboxDocsChecker
from darkfactory.engine.environment import RunEnv
from darkfactory.engine.state import Escalate, RunState, SpecAmbiguity
from darkfactory.engine.verify import SandboxVerifier
from darkfactory.errors import STATUS_EXIT, DarkFactoryError, ExitCode, InputError
from darkfactory.models import ModelPlan
from darkfactory.models.budget import BudgetExhausted, BudgetMeter
from darkfactory.models.secrets import RedactingStream, redact_secrets, redacted_logs
from darkfactory.reporting import otel
from darkfactory.reporting.progress import Progress
from darkfactory.reporting.report import write_report
from darkfactory.reporting.trace import Trace
from darkfactory.sandbox import ACCEPTANCE_TARGET, open_sandbox
from darkfactory.sandbox.base import Mount, SandboxSpec
from darkfactory.spec import Spec
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import rundir
from darkfactory.workspace.context import RunContext
from darkfactory.workspace.rundir import ACCEPTANCE_DIR, FLOWS_DB, run_lock


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    status: str
    reason: str
    report: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return int(STATUS_EXIT.get(self.status, ExitCode.FAILED))


#: Switches CrewAI reads at import: no telemetry, tracking or version check from a run.
#: CrewAI's own switches only: ``OTEL_SDK_DISABLED`` (which CrewAI also honours) would turn
#: off the user's OpenTelemetry too, and the run's span export (reporting/otel.py).
OFFLINE_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TRACING_ENABLED": "false",
}
#: The steps that end a run: a run whose journal ends with one has nothing to resume.
FINAL_STEPS = ("deliver", "give_up", "escalate", "reject")


def checked_models(
    config: Config,
    *,
    cli_model: str | None,
    record: Path | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> ModelPlan:
    """Every role's model built (so validated) and its name checked with its provider
    before any work (``UnknownModel``); CrewAI kept offline."""
    # Before the models are built: they import CrewAI, whose telemetry reads these at import.
    os.environ.update({k: v for k, v in OFFLINE_ENV.items() if k not in os.environ})
    models = ModelPlan(config, cli_model=cli_model, record=record)
    models.check()
    for role in config.agents:
        models.llm_for(role)
        models.function_calling_llm_for(role)
    for check in models.check_names():
        if check.known is None and check.asked:  # the provider did not say: the run goes on
            progress(f"model {check.model}: could not check the name ({check.note}); going on")
    return models


def has_ended(state: RunState) -> bool:
    """Whether ``state`` is of a run that ended (delivered, failed, escalated, rejected)."""
    return bool(state.journal) and state.journal[-1].step in FINAL_STEPS


def saved_state(run_dir: Path) -> RunState | None:
    """The run's last saved state, typed (None: it stopped before its first step ended)."""
    raw = rundir.stored_state(run_dir)
    return RunState.model_validate(raw) if raw is not None else None


def continue_run(
    run_dir: Path,
    state: RunState,
    *,
    progress: Callable[[str], None],
    budget_overrides: dict[str, Any],
) -> RunOutcome:
    """Resume the run in ``run_dir`` from its saved ``state`` (``resume`` and ``approve``)."""
    from darkfactory.config import load_config

    config = load_config(run_dir / "config")
    spec = Spec.model_validate_json(rundir.spec_json(run_dir).read_text(encoding="utf-8"))
    models = checked_models(config, cli_model=state.cli_model, progress=progress)
    caps = dict(state.budget_limits or config.factory.budget.model_dump())
    caps.update(budget_overrides)
    env = open_run(
        run_dir,
        config,
        spec,
        models,
        backend=state.backend or "auto",
        progress=progress,
        budget_limits=caps,
        budget_used=state.budget_used,
    )
    return execute(env, resume=True)


def prepare_run(
    spec: Spec,
    config: Config,
    models: ModelPlan,
    *,
    runs_dir: Path,
    backend: str,
    progress: Callable[[str], None] = lambda msg: None,
    budget_limits: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> RunEnv:
    """Create ``runs/<id>/`` with spec/, workspace/ (a git repo), acceptance/ and the sandbox.

    For a ticket on a repository the workspace is a clone of its base commit, and the
    repository's suite runs there (its baseline) before any model is called.
    """
    source = None
    if spec.target is not None:  # refused before a run directory exists if unusable
        from darkfactory.engine import repo_run  # repositories only: not on a new project's path

        source = repo_run.check(spec, config)
    run_id = run_id or rundir.new_run_id(spec.title)  # the service names its runs when queued
    run_dir = (runs_dir / run_id).resolve()
    workspace = run_dir / "workspace"
    run_dir.mkdir(parents=True)
    run_dir.chmod(0o700)  # the workspace is model-written: no other local user reaches it
    for d in ("spec", "acceptance"):
        (run_dir / d).mkdir()
    spec_path = Path(spec.source)
    if spec_path.is_dir():  # a test-suite spec
        shutil.copytree(
            spec_path,
            run_dir / "spec" / (spec_path.resolve().name or "suite"),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    else:
        shutil.copy2(spec_path, run_dir / "spec" / spec_path.name)
    # What resume needs to rebuild the run exactly: the parsed spec and the config used.
    rundir.spec_json(run_dir).write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    shutil.copytree(config.dir, run_dir / "config")
    if config.tools_dir is not None:  # the project's tools, beside the config, as they were
        shutil.copytree(
            config.tools_dir,
            run_dir / "tools",
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
        )
    try:
        if source is not None:
            with source:
                repo_run.setup(source, spec, config, run_dir, backend=backend)
            # The ticket's tests are frozen straight away: never part of the change.
            tests_root = run_dir / ACCEPTANCE_DIR
        else:
            gitrepo.init(workspace)
            (workspace / ".gitignore").write_text(rundir.WORKSPACE_IGNORE, encoding="utf-8")
            tests_root = workspace / ACCEPTANCE_DIR
        # The sealed holdout goes to runs/<id>/sealed/, never into the workspace.
        tests = holdout.seal(
            spec.acceptance_tests, config.factory.holdout, run_dir, named=spec.holdout
        )
        for test in tests:
            target = tests_root / test.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(test.content, encoding="utf-8")
        env = open_run(
            run_dir,
            config,
            spec,
            models,
            backend=backend,
            progress=progress,
            budget_limits=budget_limits,
        )
        sealed = holdout.load(run_dir)
        if sealed is not None:
            env.trace.write(
                "holdout_sealed",
                share=sealed.share,
                seed=sealed.seed,
                sealed=sealed.sealed,
                visible=len(sealed.visible),
            )
        if env.repo is not None and env.sandbox is not None:
            from darkfactory.engine import repo_run

            progress(f"baseline: the repository's tests at {env.repo.record.base_sha[:12]}")
            env.repo.baseline = repo_run.baseline(
                env.sandbox, env.repo, spec, config, run_dir, env.trace
            )
        return env
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
    spans = otel.from_environment(run_id)  # OTEL_EXPORTER_OTLP_ENDPOINT set: the run as spans
    workspace = run_dir / "workspace"
    limits = config.factory.limits()
    repo = None
    if (run_dir / "repo.json").is_file():  # the repository's own environment, from its cache
        from darkfactory.engine import repo_run  # repositories only: not on a new project's path
        from darkfactory.repo.baseline import Baseline

        record = repo_run.load_record(run_dir)
        assert record is not None
        repo = repo_run.RepoRun(record, repo_run.environment(record, config, backend=backend))
        if (run_dir / "baseline.json").is_file():
            repo.baseline = Baseline.load(run_dir / "baseline.json")
    extra = repo.environment.mounts() if repo is not None else deps.mounts(run_dir)
    sandbox_spec = SandboxSpec(
        workspace=workspace,
        mounts=[Mount(run_dir / "acceptance", ACCEPTANCE_TARGET, read_only=True), *extra],
        limits=limits,
        pythonpath=[] if repo is not None else [deps.DEPS_TARGET],
        image=config.factory.sandbox.image,
        hand_over=True,  # the run's own directories (docker as root: see docker.py)
    )
    sandbox = open_sandbox(backend, sandbox_spec)
    # The sealed tests are mounted only in a sandbox of their own, opened by verify.
    sealed_suite = None
    if holdout.load(run_dir) is not None:
        opener = functools.partial(open_sandbox, sandbox.backend)
        sealed_suite = (
            holdout.SealedSuite(
                run_dir,
                sandbox_spec,
                opener,
                prepare=functools.partial(repo_run.importable, record=repo.record),
                pytest_args=repo_run.plugin_args(repo),
            )
            if repo is not None
            else holdout.SealedSuite(run_dir, sandbox_spec, opener)
        )
    if repo is not None:
        sandbox = repo_run.importable(sandbox, repo.record)
    trace = Trace(run_dir / "trace.jsonl")
    if isinstance(progress, Progress):
        trace.observers.append(progress.observe)
    if spans is not None:
        trace.observers.append(spans.observe)
    ctx = RunContext(
        workspace=workspace,
        sandbox=sandbox,
        test_timeout_s=config.factory.tests.timeout_s,
        on_event=trace.sink,
        repo=repo is not None,
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
    live = progress if isinstance(progress, Progress) else None
    return RunEnv(
        run_id=run_id,
        run_dir=run_dir,
        config=config,
        spec=spec,
        trace=trace,
        ctx=ctx,
        crew=CrewPhases(config=config, ctx=ctx, models=models, budget=budget),
        verifier=repo_run.RepoVerifier(
            run_dir=run_dir,
            spec=spec,
            config=config,
            sandbox=sandbox,
            repo=repo,
            trace=trace,
            progress=progress,
            sealed=sealed_suite,
        )
        if repo is not None
        else SandboxVerifier(
            run_dir=run_dir,
            spec=spec,
            config=config,
            sandbox=sandbox,
            trace=trace,
            progress=progress,
            sealed=sealed_suite,
        ),
        docs=SandboxDocsChecker(
            sandbox=sandbox, workspace=workspace, trace=trace, progress=progress
        ),
        provider=TerminalProvider(
            before_asking=live.stop if live else (lambda: None),
            after_asking=live.start if live else (lambda: None),
        ),
        budget=budget,
        progress=progress,
        models=models,
        sandbox=sandbox,
        repo=repo,
    )


def persistence_for(run_dir: Path) -> Any:
    from crewai.flow.persistence import SQLiteFlowPersistence  # CrewAI: only when a run goes

    return SQLiteFlowPersistence(str(run_dir.parent / FLOWS_DB))


def execute(
    env: RunEnv, *, cli_model: str | None = None, backend: str = "auto", resume: bool = False
) -> RunOutcome:
    """Drive the flow to its end (or its failure), then write the report."""
    # CrewAI (the flow, the provider guard) is imported when a run starts, not at start-up.
    from crewai.flow import HumanFeedbackPending

    from darkfactory.engine.flow import FactoryFlow
    from darkfactory.models.guarded import ProviderError
    from darkfactory.reporting.trace import CrewEventBridge

    with run_lock(env.run_dir):
        flow = FactoryFlow(env, persistence=persistence_for(env.run_dir), suppress_flow_events=True)
        inputs: dict[str, Any] = {"id": env.run_id}
        if resume:
            raw = flow.persistence.load_state(env.run_id) if flow.persistence else None
            if not raw:
                raise InputError(
                    "no saved state for this run (it stopped before its first step finished)",
                    file=env.run_dir,
                    hint="start it again with darkfactory run",
                )
            stored = RunState.model_validate(raw)
            done = [e.step for e in stored.journal]
            stashed = gitrepo.stash_uncommitted(
                env.workspace, f"interrupted after {done[-1] if done else 'start'}"
            )
            prices = env.models.prices() if env.models is not None else {}
            env.trace.write("run_resumed", after=done, stashed=stashed, prices=prices)
            if stored.acceptance_frozen:
                env.ctx.protected.add(ACCEPTANCE_DIR)
            elif stored.journal:
                env.ctx.protected.discard(ACCEPTANCE_DIR)
            scripted = env.models.scripted if env.models is not None else None
            if scripted is not None:
                scripted.restore(stored.model_cursor)
            env.progress(f"resuming after: {', '.join(done)}")
            # Running again: a stop, pause or budget stop before is history (in the trace).
            inputs.update({"status": "running", "reason": ""})
        else:
            flow._skip_persistence_restore = True  # a new run: nothing to restore under its id
            inputs.update(
                {
                    "run_dir": str(env.run_dir),
                    "cli_model": cli_model,
                    "backend": backend,
                    "budget_limits": env.budget.state()["limits"],
                }
            )
            env.trace.write(
                "run_start",
                run_id=env.run_id,
                spec={
                    "format": env.spec.format,
                    "title": env.spec.title,
                    "source": env.spec.source,
                },
                sandbox=env.sandbox.backend if env.sandbox is not None else None,
                models={role: _model_name(env, role) for role in env.config.agents},
                prices=env.models.prices() if env.models is not None else {},
            )
        if env.models is not None:  # retries traced and budgeted, the recording started
            env.models.bind_run(
                run_dir=env.run_dir, run_id=env.run_id, trace=env.trace, budget=env.budget
            )
        live = env.progress if isinstance(env.progress, Progress) else None
        if live is not None:
            live.start()
        try:
            # CrewAI prints progress to stdout; ours is for results (--json must stay JSON).
            # No key reaches the console or a log line (CrewAI prints provider errors).
            # (The bridge is innermost: it flushes CrewAI's event handlers, which print
            # from their own threads, while stdout is still redirected.)
            with (
                redacted_logs() as secrets,
                contextlib.redirect_stdout(RedactingStream(sys.stderr, secrets)),
                CrewEventBridge(env.trace),
            ):
                result = flow.kickoff(inputs=inputs)
            if isinstance(result, HumanFeedbackPending):  # an `ask` checkpoint, no terminal
                pending = flow.state.pending_checkpoint
                assert pending is not None, "a checkpoint pauses only with its request saved"
                flow.state.status = "awaiting_approval"
                flow.state.reason = (
                    f"waiting for a person at {pending.checkpoint}: "
                    f"{pending.approve}  (or: {pending.reject})"
                )
                env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except BudgetExhausted as exc:
            flow.state.status = "budget_exhausted"
            flow.state.reason = (
                f"{exc} in phase {flow.state.phase}; raise the budget and continue with: "
                f"darkfactory resume {env.run_id}"
            )
            env.trace.write("budget", exhausted=exc.which, **env.budget.state())
            _deliver_stopped(env, flow)
            env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except Escalate as exc:
            flow.state.status = "escalated"
            flow.state.reason = str(exc)
            env.trace.write("escalation", reason=flow.state.reason)
            _deliver_stopped(env, flow)
            env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except SpecAmbiguity as exc:
            flow.state.status = "escalated"
            flow.state.reason = str(exc)
            env.trace.write("escalation", reason=flow.state.reason, questions=exc.questions)
            _deliver_stopped(env, flow)
            env.trace.write("run_end", status=flow.state.status, reason=flow.state.reason)
        except ProviderError as exc:  # the provider stayed down or refused (llms.guarded)
            flow.state.status = "failed"
            flow.state.reason = redact_secrets(
                f"{exc} (role {exc.role}, phase {flow.state.phase}); {exc.when}, "
                f"continue with: darkfactory resume {env.run_id}"
            )
            env.trace.write("run_end", status="failed", reason=flow.state.reason)
        except DarkFactoryError as exc:
            flow.state.status = "failed"
            flow.state.reason = redact_secrets(f"{type(exc).__name__}: {exc}")
            if flow.state.phase == "deliver":  # verified: only the push or the PR failed
                flow.state.reason = (
                    f"the change passed verify, but its delivery failed: {flow.state.reason}; "
                    f"fix that and continue with: darkfactory resume {env.run_id} (only the "
                    "delivery runs again)"
                )
            env.trace.write("run_end", status="failed", reason=flow.state.reason)
        except BaseException as exc:  # a bug or an interrupt: record it, then re-raise
            flow.state.status = "failed"
            flow.state.reason = redact_secrets(
                f"stopped in phase {flow.state.phase} by {type(exc).__name__}: {exc}; "
                f"continue with: darkfactory resume {env.run_id}"
            )
            env.trace.write("run_end", status="failed", reason=flow.state.reason)
            _report(env, flow)
            raise
        finally:
            if live is not None:
                live.stop()
            if env.sandbox is not None:
                env.sandbox.close()
            if env.models is not None:
                env.models.close()
        report = _report(env, flow)
        env.trace.close()
    return RunOutcome(env.run_id, env.run_dir, flow.state.status, flow.state.reason, report)


def _deliver_stopped(env: RunEnv, flow: Any) -> None:
    """A repository run the flow did not end (escalated, out of budget): its change.patch,
    pull_request.md and, with ``deliver.push_failed``, its ``-failed`` branch, as a run the
    flow ends gets them (``FactoryFlow._finish``). A delivery that fails is said in the
    reason; the run keeps its status."""
    if env.repo is None:
        return
    from darkfactory.engine import repo_run  # repositories only

    try:
        out = repo_run.deliver(
            env.run_dir,
            env.spec,
            env.config,
            env.repo.record,
            flow.state.status,
            env.trace,
            user_repo=repo_run.user_repo(env.repo.record),
        )
    except DarkFactoryError as exc:
        why = redact_secrets(f"{type(exc).__name__}: {exc}")
        flow.state.reason += f"; its delivery failed: {why}"
        env.trace.write("deliver", what="failed", error=why)
        return
    env.progress(f"delivered to {', '.join(out.values())}")


def _model_name(env: RunEnv, role: str) -> str | None:
    return env.models.model_name(role) if env.models is not None else None


def _report(env: RunEnv, flow: Any) -> dict[str, Any]:
    if not flow.state.finished_at:
        flow.state.finished_at = time.time()
    flow.state.budget_used = env.budget.state()
    if flow.persistence is not None:  # the end state too, not only the last finished step
        flow.persistence.save_state(
            flow_uuid=env.run_id, method_name="_run_end", state_data=flow.state
        )
    return write_report(env.run_dir, flow.state)


def approve(run_dir: Path, *, reject: bool, reason: str, by: str | None = None) -> RunState:
    """Record a person's decision on the checkpoint the run in ``run_dir`` waits at.

    Returns the saved state (with the decision in ``pending_checkpoint``), ready for
    ``execute(..., resume=True)``: the checkpoint step finds it there.
    """
    if rundir.run_busy(run_dir):
        raise InputError(
            "the run is in use by another process", file=run_dir, hint="wait for it to pause"
        )
    state = saved_state(run_dir)
    pending = state.pending_checkpoint if state is not None else None
    if state is None or state.status != "awaiting_approval" or pending is None:
        status = state.status if state is not None else "not started"
        raise InputError(
            f"run {run_dir.name} is not waiting for approval (status: {status})",
            file=run_dir,
            hint="darkfactory runs lists each run's status; darkfactory resume continues "
            "a stopped run",
        )
    pending.decision = REJECTED if reject else APPROVED
    pending.reason = reason
    pending.by = by or f"{getpass.getuser()} (darkfactory approve)"
    pending.mode = "ask"
    pending.at = time.time()
    store = persistence_for(run_dir)
    store.save_state(flow_uuid=run_dir.name, method_name="approve", state_data=state)
    store.clear_pending_feedback(run_dir.name)  # CrewAI's record of the paused request
    return state


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run in ``runs_dir``, oldest first: id, spec, status, duration, cost."""

    rows: list[dict[str, Any]] = []
    if not runs_dir.is_dir():
        return rows
    for run_dir in sorted(p for p in runs_dir.iterdir() if rundir.spec_json(p).is_file()):
        report_file = run_dir / "report.json"
        if report_file.is_file():
            report = json.loads(report_file.read_text(encoding="utf-8"))
            rows.append(
                {
                    "run_id": run_dir.name,
                    "spec": report["spec"]["title"],
                    "status": report["status"],
                    "age_s": _age(report.get("started_at")),
                    "duration_s": report.get("duration_s"),
                    "cost_usd": report["llm"].get("cost_usd"),
                }
            )
            continue
        state = rundir.stored_state(run_dir) or {}
        spec = json.loads(rundir.spec_json(run_dir).read_text(encoding="utf-8"))
        busy = rundir.run_busy(run_dir)
        rows.append(
            {
                "run_id": run_dir.name,
                "spec": spec.get("title", "?"),
                "status": "running" if busy else f"stopped ({state.get('phase', 'before start')})",
                "age_s": _age(state.get("started_at")),
                "duration_s": None,
                "cost_usd": None,
            }
        )
    return rows


def _age(started_at: float | None) -> float | None:
    return round(time.time() - started_at, 1) if started_at else None


def format_age(seconds: float | None) -> str:
    """``42s``, ``7m``, ``3h``, ``2d``: how long ago a run started."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
