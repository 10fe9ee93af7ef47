"""Checkpoints: where a person approves a run, built on CrewAI's human-feedback protocol.

Three checkpoints, each ``auto`` or ``ask`` in ``factory.yaml`` ``checkpoints:``:
``spec_approval`` (after intake), ``output_review`` (before delivery) and
``deploy_approval`` (before ``deploy.command``, when one is configured).

An ``ask`` goes to a CrewAI ``HumanFeedbackProvider``. With a terminal,
``TerminalProvider`` asks there and returns the answer. Without one it raises CrewAI's
``HumanFeedbackPending``: the flow stops at the checkpoint, CrewAI saves the pending
request with the flow's state (``runs/flows.db``), and the run ends ``awaiting_approval``
(exit code 3). ``darkfactory approve RUN_ID [--reject] [--reason TEXT]`` records the
decision in the saved state and continues the run (``session.approve``); the checkpoint step, never journaled
while it waited, runs again and finds the decision. ``run --yes`` (``YesProvider``)
answers every ``ask`` but the deploy approval.

Why not CrewAI's ``@human_feedback`` decorator as it stands: it routes a rejection by
asking a model to classify the reviewer's words (``emit=`` outcomes), and resumes through
``Flow.from_pending(...).resume()``, which skips our journal replay (scripted-model
positions, budget totals, stashing a killed step's partial work). An approval is a
person's explicit yes or no here, and every way back into a run goes through one path,
``session.execute``.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from darkfactory.engine.environment import RunEnv
from darkfactory.engine.state import (
    Decision,
    DocsRound,
    PendingCheckpoint,
    RunState,
    VerifyRound,
)
from darkfactory.workspace import git as gitrepo

CHECKPOINTS = ("spec_approval", "output_review", "deploy_approval")
#: Most characters of a repository run's diff an output review shows.
MAX_REVIEW_DIFF = 20_000
APPROVED = "approved"
REJECTED = "rejected"


def approve_commands(run_id: str, runs_dir: str | None = None) -> tuple[str, str]:
    out = f" --out {runs_dir}" if runs_dir else ""
    return (
        f"darkfactory approve {run_id}{out}",
        f'darkfactory approve {run_id}{out} --reject --reason "what to change"',
    )


class TerminalProvider:
    """A ``crewai.flow.HumanFeedbackProvider``: asks on a terminal, else pauses the flow.

    ``request_feedback`` returns the decision as JSON (``{"decision", "reason"}``).
    """

    def __init__(
        self,
        *,
        interactive: bool | None = None,
        ask: Callable[[str], str] = input,
        out: TextIO | None = None,
        before_asking: Callable[[], None] = lambda: None,
        after_asking: Callable[[], None] = lambda: None,
    ) -> None:
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.ask = ask
        self.out = out
        self.before_asking = before_asking
        self.after_asking = after_asking

    def request_feedback(self, context: Any, flow: Any) -> str:
        from crewai.flow import HumanFeedbackPending

        if not self.interactive:
            raise HumanFeedbackPending(context=context, callback_info=context.metadata)
        out = self.out or sys.__stderr__ or sys.stderr
        self.before_asking()
        try:
            return self._ask(context, out)
        except EOFError:  # the terminal closed its input (Ctrl-D): pause, as without one
            raise HumanFeedbackPending(context=context, callback_info=context.metadata) from None
        finally:
            self.after_asking()

    def _ask(self, context: Any, out: TextIO) -> str:
        """Show what is to be approved; ask until y or n (and why, for n)."""
        print(f"\n== {context.message} ==\n{context.method_output}\n", file=out, flush=True)
        while True:
            answer = self.ask("Approve? [y]es / [n]o (reject): ").strip().lower()
            if answer in ("y", "yes", "n", "no"):
                break
            print("please answer y or n", file=out, flush=True)
        if answer.startswith("y"):
            notes = self.ask("Notes for the crew (Enter for none): ").strip()
            return json.dumps({"decision": APPROVED, "reason": notes})
        reason = ""
        while not reason:
            reason = self.ask("Why? (sent back to the crew as feedback): ").strip()
        return json.dumps({"decision": REJECTED, "reason": reason})


def request(
    *,
    run_id: str,
    checkpoint: str,
    message: str,
    summary: str,
    provider: Any,
    flow: Any,
    commands: tuple[str, str],
) -> Decision:
    """Ask ``provider`` (CrewAI's protocol) for a decision; raises ``HumanFeedbackPending``."""
    from crewai.flow.async_feedback.types import PendingFeedbackContext

    context = PendingFeedbackContext(
        flow_id=run_id,
        flow_class=f"{type(flow).__module__}.{type(flow).__qualname__}",
        method_name=checkpoint,
        method_output=summary,
        message=message,
        metadata={"approve": commands[0], "reject": commands[1]},
    )
    answer = json.loads(provider.request_feedback(context, flow))
    return Decision(
        checkpoint=checkpoint,
        decision=answer["decision"],
        by=answer.get("by") or f"{getpass.getuser()} (terminal)",
        reason=answer.get("reason", ""),
        mode="ask",
        at=time.time(),
    )


#: Checkpoints ``--yes`` never answers: only ``auto`` in factory.yaml (or a person) may.
NOT_BY_YES = frozenset({"deploy_approval"})


class YesProvider:
    """``darkfactory run --yes``: approves every ``ask`` checkpoint but ``NOT_BY_YES``.

    Those go to ``then`` (the terminal, or a pause without one): ``--yes`` is typed for a
    run of the crew, and a deploy runs the user's command on the host with what the models
    wrote, so it waits for a person unless factory.yaml says ``deploy_approval: auto``.
    """

    def __init__(self, then: Any) -> None:
        self.then = then

    def request_feedback(self, context: Any, flow: Any) -> str:
        if context.method_name in NOT_BY_YES:
            answer: str = self.then.request_feedback(context, flow)
            return answer
        return json.dumps({"decision": APPROVED, "reason": "", "by": "--yes"})


def decide(
    flow: Any, env: RunEnv, state: RunState, name: str, message: str, summary: str
) -> Decision:
    """The decision at checkpoint ``name`` of ``flow``: auto, recorded by ``approve``, or asked."""
    from crewai.flow import HumanFeedbackPending

    mode = getattr(env.config.factory.checkpoints, name)
    pending = state.pending_checkpoint
    if pending and pending.checkpoint == name and pending.decision:
        decision = Decision(  # darkfactory approve wrote it
            checkpoint=name,
            decision=pending.decision,
            by=pending.by or "?",
            reason=pending.reason,
            mode=pending.mode or "ask",
            at=pending.at or time.time(),
        )
    elif mode == "auto":
        decision = Decision(
            checkpoint=name, decision=APPROVED, by="auto", mode="auto", at=time.time()
        )
    else:
        runs_dir = env.run_dir.parent
        default = (Path.cwd() / env.config.factory.runs_dir).resolve()
        commands = approve_commands(state.id, None if runs_dir == default else str(runs_dir))
        state.pending_checkpoint = PendingCheckpoint(
            checkpoint=name,
            message=message,
            summary=summary,
            requested_at=time.time(),
            approve=commands[0],
            reject=commands[1],
        )
        try:
            decision = request(
                run_id=state.id,
                checkpoint=name,
                message=message,
                summary=summary,
                provider=env.provider,
                flow=flow,
                commands=commands,
            )
        except HumanFeedbackPending:
            env.trace.write(
                "awaiting_approval", checkpoint=name, approve=commands[0], reject=commands[1]
            )
            raise
    state.pending_checkpoint = None
    state.checkpoints.append(decision)
    if decision.reason:
        state.feedback = decision.reason
    env.trace.write(
        "checkpoint",
        checkpoint=name,
        mode=mode,
        decision=decision.decision,
        by=decision.by,
        reason=decision.reason,
    )
    env.progress(
        f"{name}: {decision.decision} by {decision.by}"
        + (f": {decision.reason}" if decision.reason else "")
    )
    return decision


def review_summary(state: RunState, env: RunEnv) -> str:
    last = state.verify_rounds[-1] if state.verify_rounds else VerifyRound()
    acc, unit = last.acceptance, last.unit
    docs = state.docs_checks[-1] if state.docs_checks else DocsRound()
    return (
        f"Workspace: {env.workspace}\n"
        f"Acceptance tests: {acc.passed}/{acc.total} passed; "
        f"unit tests: {unit.passed}/{unit.total} passed; "
        + (
            f"sealed holdout: {last.sealed.passed}/{last.sealed.total} passed; "
            if last.sealed is not None
            else ""
        )
        + f"docs: {len(docs.pages)} page(s) built strictly, "
        f"{docs.examples_passed}/{docs.examples_run} example(s) pass\n"
        + (_diff(env) if env.repo is not None else f"Files:\n{env.workspace_files()}")
    )


def _diff(env: RunEnv) -> str:
    """A repository run's change against its base: what a reviewer approves."""
    assert env.repo is not None
    base = env.repo.record.base_sha
    stat = gitrepo.run(env.workspace, "diff", "--no-ext-diff", "--no-textconv", "--stat", base)
    diff = gitrepo.run(env.workspace, "diff", "--no-ext-diff", "--no-textconv", base)
    cut = (
        diff
        if len(diff) <= MAX_REVIEW_DIFF
        else diff[:MAX_REVIEW_DIFF] + "\n[... see change.patch]"
    )
    return f"Change against {env.repo.record.base} ({base[:12]}):\n{stat}\n\n{cut}"
