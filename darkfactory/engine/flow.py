"""The pipeline: a CrewAI Flow that decides while the crew works.

intake -> [spec_approval] -> design -> implement -> qa -> verify <-> fix -> document
-> docs_check <-> docs_fix -> [output_review] -> [deploy_approval -> deploy] -> deliver

A rejected output review or deploy approval goes back to the crew with the reviewer's
reason (``revise``), then through verify and the docs check again.

Each LLM phase kicks off a hierarchical crew (``crews.factory_crew``) whose manager
delegates the phase's task. ``verify`` is code: it runs the acceptance tests and the unit
tests in the sandbox and records every test's outcome; a model never says "pass".
``docs_check`` is code too: it builds the docs site strictly and runs every example in the
docs (``darkfactory.engine.docs_check``). Fix rounds of each loop are bounded by ``max_fix_rounds``. The flow's state is persisted to SQLite after
every step and the workspace is committed after every phase.

Resume: every finished step is appended to ``state.journal`` (with the route a router
took). A resumed run starts the flow again from ``intake`` with the persisted state; each
step finds its journal entry and returns at once (replay), and the first step without one
runs for real. Partial work of a step that was killed is set aside (``git stash``) first.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from crewai.flow.flow import Flow, listen, or_, router, start
from crewai.flow.persistence import persist
from pydantic import PrivateAttr

from darkfactory.engine import acceptance, checkpoints, work
from darkfactory.engine import deploy as deploying
from darkfactory.engine.environment import RunEnv
from darkfactory.engine.state import (
    MAX_DOCS_FAILURE_CHARS,
    MAX_FAILURE_CHARS,
    DeployRecord,
    Escalate,
    JournalEntry,
    JournalMismatch,
    RunState,
    journaled,
)
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace.rundir import ACCEPTANCE_DIR

#: The crew task (config/tasks.yaml) of a repository run's implement phase, by ticket kind
#: (a bug's reproduction comes before it; every other kind is a ``change``).
REPO_TASKS = {"tests": "add_tests", "docs": "document_package"}

#: What a test round routes to. Each router's return type lists its routes: CrewAI reads
#: them to draw every edge of the flow (``crewai flow plot``); mypy checks every return.
VerifyRoute = Literal["passed", "needs_fix", "stuck", "gave_up", "tampered"]


def is_doc_file(path: str) -> bool:
    """What the docs phases are there to write: Markdown, ``docs/`` and ``mkdocs.yml``."""
    return path.endswith(".md") or path.startswith("docs/") or path == "mkdocs.yml"


@persist()
class FactoryFlow(Flow[RunState]):
    """One run of the factory. Build it with ``darkfactory.engine.environment.start_run``."""

    _run: RunEnv | None = PrivateAttr(default=None)
    _replayed: int = PrivateAttr(default=0)
    #: Counts agents' test runs, so each phase's claims can be checked (``previous_work``).
    _ledger: work.WorkLedger = PrivateAttr(default_factory=work.WorkLedger)
    #: No CrewAI memory for the flow: nothing reads it, and Flow would build a LanceDB store
    #: (about 1.7 s of start-up, and a database under ~/.local/share) for every run.
    _skip_auto_memory: bool = True

    def __init__(self, env: RunEnv, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run = env
        env.trace.observers.append(self._ledger.observe)

    # -- helpers ------------------------------------------------------------------------
    @property
    def env(self) -> RunEnv:
        assert self._run is not None, "FactoryFlow is built with its RunEnv"
        return self._run

    def _replay(self, name: str) -> JournalEntry | None:
        journal: list[JournalEntry] = self.state.journal
        if self._replayed >= len(journal):
            return None
        entry = journal[self._replayed]
        if entry.step != name:
            raise JournalMismatch(
                f"resume replay reached step {name!r} but the journal has {entry.step!r} "
                f"at position {self._replayed}"
            )
        self._replayed += 1
        return entry

    def _record(self, name: str, route: Any) -> None:
        self.state.journal.append(JournalEntry(step=name, route=route))
        self._replayed = len(self.state.journal)
        self.state.model_cursor = self.env.model_cursor()
        self.state.budget_used = self.env.budget.state()

    def _phase(self, name: str) -> None:
        self.state.phase = name
        self.env.trace.phase = name
        self.env.trace.write("phase_start")
        self.env.progress(f"phase {name}")

    def _remove_nested_git(self) -> None:
        """A nested .git (a tool cannot write one, a command can) is deleted, and said so.

        Before anything reads the workspace's changes (``gitrepo.uncommitted`` would remove
        it too, silently) and before every commit: never committed, never unreported.
        """
        removed = gitrepo.remove_nested_git(self.env.workspace)
        if removed:
            self.env.trace.write("security", what="nested_git_removed", paths=removed)

    def _commit(self, name: str, message: str) -> str | None:
        self._remove_nested_git()
        sha = gitrepo.commit_all(self.env.workspace, message)
        if sha:
            self.state.commits[name] = sha
        self.env.trace.write("phase_end", commit=sha)
        return sha

    def _reproduce(self) -> None:
        """A bug: its reproduction must fail at the base commit before anyone fixes it."""
        from darkfactory.engine import repo_checks, repo_run  # repositories only

        env, repo = self.env, self.env.repo
        assert repo is not None and env.spec.target is not None
        named = env.spec.target.failing_tests
        if repo.target_kind != "bug":
            repo_run.save_must_pass(env.run_dir, [])
            return
        self._phase("reproduce")
        expected = repo_checks.expected_failure(env.spec)
        if named:
            found = repo_run.check_named_tests(repo, named, expected=expected)
        else:
            self._crew_phase("reproduce")
            self._remove_nested_git()
            changed = gitrepo.uncommitted(env.workspace)
            assert env.sandbox is not None
            found = repo_run.check_reproduction(
                env.sandbox,
                repo,
                changed,
                timeout=env.config.factory.tests.timeout_s,
                expected=expected,
            )
        env.trace.write(
            "reproduction",
            ok=found.ok,
            tests=list(found.tests),
            why=found.why,
            files=list(found.files),
        )
        if not found.ok:
            raise Escalate(
                f"the reproduction does not hold: {found.why}; a person should look.\n"
                f"{found.failure[:2000]}"
            )
        repo_run.save_reproduction(env.run_dir, found)
        for path in found.files:  # read-only from now on, like acceptance tests
            env.ctx.protected.add(path)
        self._commit("design", f"reproduce: {', '.join(found.tests)[:200]}")

    def _crew_phase(self, phase: str, **extra: Any) -> str:
        tests_before = self._ledger.tests
        answer = self.env.crew.run(phase, {**self.env.prompt_inputs(), **extra})
        self._remove_nested_git()
        # What the phase really did (an answer may claim work that was never done).
        did = work.measured(
            phase,
            gitrepo.uncommitted(self.env.workspace),
            self._ledger.tests - tests_before,
            answer,
        )
        self.state.work.append(did)
        self.env.trace.write(
            "phase_work", task=phase, files=did.files, tests_run=did.tests_run, answer=did.answer
        )
        return answer

    # -- phases -------------------------------------------------------------------------
    @start()
    @journaled("intake")
    def intake(self) -> None:
        self._phase("intake")
        env = self.env
        self.state.started_at = self.state.started_at or time.time()
        self.state.max_fix_rounds = env.config.factory.max_fix_rounds
        if env.repo is not None:
            # A repository run: the ticket's tests were frozen outside the clone at start.
            acceptance.hash_frozen(self.state, self.env)
        elif env.spec.acceptance_tests:
            acceptance.freeze(self.state, self.env)
        else:
            # No acceptance tests in the spec: the architect writes them in the design phase,
            # after which they are frozen like the spec's own.
            env.ctx.protected.discard(ACCEPTANCE_DIR)
        self._commit("intake", f"intake: {env.spec.title}")

    @router(intake)
    @journaled("spec_approval")
    def spec_approval(self) -> Literal["spec_approved", "spec_rejected"]:
        spec = self.env.spec
        decision = checkpoints.decide(
            self,
            self.env,
            self.state,
            "spec_approval",
            f"Spec approval: {spec.title}",
            f"{spec.format} spec {spec.source}\n\nRequirements:\n{spec.requirements_text()}\n\n"
            f"Acceptance tests from the spec: {len(spec.acceptance_tests)}",
        )
        if decision.rejected:
            self.state.reason = (
                f"the spec was rejected at spec approval by {decision.by}: {decision.reason}; "
                "change the spec and start a new run"
            )
            return "spec_rejected"
        return "spec_approved"

    @listen("spec_approved")
    @journaled("design")
    def design(self) -> None:
        if self.env.repo is not None:  # a repository run: reproduce a bug first, no design
            self._reproduce()
            return
        self._phase("design")
        self._crew_phase("design", feedback=self.state.feedback)
        if not self.state.acceptance_frozen:
            acceptance.freeze(self.state, self.env)
        self._commit("design", "design: architecture and plan")

    @listen(design)
    @journaled("implement")
    def implement(self) -> None:
        self._phase("implement")
        if self.env.repo is not None:  # the kind's task: the change, new tests or the docs
            kind = self.env.repo.target_kind
            self._crew_phase(REPO_TASKS.get(kind, "change"), feedback=self.state.feedback)
            self._commit("implement", f"{kind}: {self.env.spec.title}")
            return
        self._crew_phase("implement")
        self._commit("implement", "implement: code")

    @listen(implement)
    @journaled("qa")
    def qa(self) -> None:
        self._phase("qa")
        if self.env.repo is not None:  # the repository's own suite is the unit tests
            self._commit("qa", "qa: tests")
            return
        self._crew_phase("verify")
        self._commit("qa", "qa: unit tests")

    @router(or_(qa, "fixed"))
    @journaled("verify")
    def verify(self) -> VerifyRoute:
        return self._verify_round()

    def _verify_round(self) -> VerifyRoute:
        """Run the tests; route: passed, needs_fix, stuck, gave_up or tampered."""
        self._phase("verify")
        if acceptance.changed(self.state, self.env):
            return "tampered"
        result = self.env.verifier.verify(self.state.fix_round)
        self.state.verify_rounds.append(result.to_state())
        self.state.last_failures = result.failures_text(MAX_FAILURE_CHARS)
        self.env.trace.write("phase_end", passed=result.passed)
        if result.passed:
            self.state.verified_commit = gitrepo.head(self.env.workspace)
            return "passed"
        diagnosis = result.diagnosis
        signature = diagnosis.signature()
        self.env.trace.write(
            "failure_classification",
            round=self.state.fix_round,
            classes=diagnosis.classes,
            primary=diagnosis.primary,
            route=diagnosis.route,
            signature=signature,
            failures=[
                {"class": f.cls, "suite": f.suite, "test": f.test} for f in diagnosis.failures
            ],
        )
        stuck = bool(self.state.signatures) and self.state.signatures[-1] == signature
        self.state.signatures.append(signature)
        if stuck:
            self.state.reason = (
                f"stuck: fix round {self.state.fix_round} left exactly the same failures "
                f"({', '.join(diagnosis.classes)}); a person should look"
            )
            return "stuck"
        if self.state.fix_round >= self.state.max_fix_rounds:
            self.state.reason = (
                f"tests still failing after {self.state.fix_round} fix round(s) "
                f"(max_fix_rounds={self.state.max_fix_rounds})"
            )
            return "gave_up"
        return "needs_fix"

    @router("needs_fix")
    @journaled("fix")
    def fix(self) -> Literal["fixed", "stuck"]:
        # Derived, not incremented: a run stopped inside a fix round (its end state saved)
        # and resumed must not count that round twice (only finished rounds are journaled).
        self.state.fix_round = 1 + sum(1 for e in self.state.journal if e.step == "fix")
        self._phase("fix")
        last = self.state.verify_rounds[-1]
        route = self.env.config.agents[last.route].role
        self.env.trace.write("fix_round", round=self.state.fix_round, route=route)
        self._crew_phase(
            "fix",
            failures=self.state.last_failures,
            failure_class=", ".join(last.classes) or "unknown",
            route=route,
            fix_round=self.state.fix_round,
            max_fix_rounds=self.state.max_fix_rounds,
            previous_work=work.previous_work(self.state.work),
        )
        if (
            self._commit(f"fix-{self.state.fix_round}", f"fix: round {self.state.fix_round}")
            is None
        ):
            self.state.reason = (
                f"stuck: fix round {self.state.fix_round} changed no file; a person should look"
            )
            return "stuck"
        return "fixed"

    @listen("passed")
    @journaled("document")
    def document(self) -> None:
        self._phase("document")
        if self.env.repo is not None:  # a repository run changes code, not a docs site
            self.env.trace.write("phase_end", commit=None)
            return
        self._crew_phase("document")
        self._commit("document", "docs: README and docs/")

    @router(or_(document, "docs_fixed"))
    @journaled("docs_check")
    def docs_check(self) -> Literal["docs_ok", "docs_needs_fix", "docs_gave_up"]:
        self._phase("docs_check")
        if self.env.repo is not None and self.env.repo.target_kind != "docs":
            self.env.trace.write("phase_end", passed=True)
            return "docs_ok"
        round_no = len(self.state.docs_checks)  # = docs fix rounds done before this check
        check = self.env.docs.check(round_no)
        self.state.docs_checks.append(check.to_state(round_no))
        self.state.last_docs_failures = (
            "" if check.passed else check.failures_text(MAX_DOCS_FAILURE_CHARS)
        )
        self.env.trace.write("phase_end", passed=check.passed)
        if check.passed:
            return "docs_ok"
        if round_no >= self.state.max_fix_rounds:
            first = (check.problems() or ["?"])[0]
            self.state.reason = (
                f"docs still failing after {round_no} docs fix round(s) "
                f"(max_fix_rounds={self.state.max_fix_rounds}): {first}"
            )
            return "docs_gave_up"
        return "docs_needs_fix"

    @router("docs_needs_fix")
    @journaled("docs_fix")
    def docs_fix(self) -> Literal["docs_fixed", "stuck"]:
        # From the finished checks, not ``+= 1``: a docs fix stopped half-way (budget, kill)
        # and resumed is the same round again, whatever state it saved when it stopped.
        self.state.docs_fix_round = len(self.state.docs_checks)
        self._phase("docs_fix")
        self.env.trace.write("docs_fix_round", round=self.state.docs_fix_round)
        self._crew_phase(
            "document_fix",
            docs_failures=self.state.last_docs_failures,
            docs_round=self.state.docs_fix_round,
        )
        n = self.state.docs_fix_round
        if self._commit(f"docs-fix-{n}", f"docs: fix round {n}") is None:
            self.state.reason = f"stuck: docs fix round {n} changed no file; a person should look"
            return "stuck"
        return "docs_fixed"

    @router("docs_ok")
    @journaled("recheck")
    def recheck(self) -> Literal["checked", "needs_fix", "stuck", "gave_up", "tampered"]:
        """The docs phases may touch code (docstrings for the API page): test it again if so."""
        changed = [
            f
            for f in gitrepo.changed_files(self.env.workspace, self.state.verified_commit or None)
            if not is_doc_file(f)
        ]
        if not changed:
            return "checked"
        self.env.trace.write("recheck", files=changed)
        self.env.progress(f"the docs phases changed code ({', '.join(changed)}): testing again")
        route = self._verify_round()
        return "checked" if route == "passed" else route

    @router("checked")
    @journaled("output_review")
    def output_review(self) -> Literal["send_back", "deploy_check", "ship"]:
        decision = checkpoints.decide(
            self,
            self.env,
            self.state,
            "output_review",
            f"Output review: {self.env.spec.title}",
            checkpoints.review_summary(self.state, self.env),
        )
        if decision.rejected:
            return "send_back"
        return "deploy_check" if self.env.config.factory.deploy.command else "ship"

    @router("deploy_check")
    @journaled("deploy_approval")
    def deploy_approval(self) -> Literal["send_back", "deploy_go"]:
        deploy = self.env.config.factory.deploy
        argv = deploy.command or []
        names = ", ".join(deploying.variables(deploy.env))
        decision = checkpoints.decide(
            self,
            self.env,
            self.state,
            "deploy_approval",
            f"Deploy approval: {self.env.spec.title}",
            f"Command (run on this host, in a temporary copy of the files commit "
            f"{gitrepo.head(self.env.workspace)[:12]} tracks; environment: {names}):\n"
            f"  {' '.join(argv)}\n\n" + checkpoints.review_summary(self.state, self.env),
        )
        return "send_back" if decision.rejected else "deploy_go"

    @router("deploy_go")
    @journaled("deploy")
    def deploy(self) -> Literal["ship", "deploy_failed"]:
        self._phase("deploy")
        deploy = self.env.config.factory.deploy
        argv = list(deploy.command or [])
        # Never in the workspace: from a fresh copy of what was tested and reviewed.
        commit = gitrepo.head(self.env.workspace)
        result = deploying.run(
            argv,
            repo=self.env.workspace,
            commit=commit,
            env_names=deploy.env,
            timeout_s=deploy.timeout_s,
        )
        self.state.deploy = DeployRecord(
            argv=argv,
            commit=commit,
            exit_code=result.exit_code,
            duration_s=result.duration_s,
            killed=result.killed,
        )
        self.env.trace.write(
            "deploy",
            argv=argv,
            commit=commit,
            env=deploying.variables(deploy.env),
            exit_code=result.exit_code,
            duration_s=result.duration_s,
            killed=result.killed,
            output=result.output,
        )
        if result.ok:
            return "ship"
        why = f"killed ({result.killed})" if result.killed else f"exit code {result.exit_code}"
        last = (result.output.strip().splitlines() or [""])[-1]
        self.state.reason = f"the deploy command failed: {why}: {last}"
        return "deploy_failed"

    @router("send_back")
    @journaled("revise")
    def revise(self) -> Literal["fixed", "stuck"]:
        """A person rejected the output: back to the crew with their reason, then re-check."""
        self._phase("revise")
        n = 1 + sum(1 for e in self.state.journal if e.step == "revise")
        checkpoint = self.state.checkpoints[-1].checkpoint
        self._crew_phase(
            "fix",
            failures=(
                f"No test failed. A person rejected the work at {checkpoint}; the reviewer "
                "feedback below says what to change. Keep every test passing."
            ),
            failure_class="review",
            route=self.env.config.agents["developer"].role,
            feedback=self.state.feedback,
            fix_round=self.state.fix_round,
            max_fix_rounds=self.state.max_fix_rounds,
        )
        if self._commit(f"revise-{n}", f"revise: round {n} after {checkpoint}") is None:
            self.state.reason = (
                f"stuck: the revision after {checkpoint} changed no file; a person should look"
            )
            return "stuck"
        return "fixed"

    @listen("ship")
    @journaled("deliver")
    def deliver(self) -> None:
        self._phase("deliver")
        self.state.status = "delivered"
        if self.env.repo is not None:
            self.state.reason = (
                "the tests the ticket needs pass and every test that passed at the base "
                f"commit still passes; branch {self.env.repo.record.branch}"
            )
        else:
            last = self.state.docs_checks[-1]
            self.state.reason = (
                "every acceptance and unit test passed; the docs build strictly and their "
                f"{last.examples_run} example(s) pass" + ("; deployed" if self.state.deploy else "")
            )
        self._finish()

    @listen(or_("gave_up", "docs_gave_up", "deploy_failed", "tampered"))
    @journaled("give_up")
    def give_up(self) -> None:
        self.state.status = "failed"
        self._finish()

    @listen("spec_rejected")
    @journaled("reject")
    def reject(self) -> None:
        self.state.status = "rejected"
        self._finish()

    @listen("stuck")
    @journaled("escalate")
    def escalate(self) -> None:
        self.state.status = "escalated"
        self.env.trace.write("escalation", reason=self.state.reason)
        self._finish()

    def _finish(self) -> None:
        repo = self.env.repo
        if repo is not None:  # the branch, change.patch and pull_request.md, whatever the end
            from darkfactory.engine import repo_run  # repositories only

            out = repo_run.deliver(
                self.env.run_dir,
                self.env.spec,
                self.env.config,
                repo.record,
                self.state.status,
                self.env.trace,
                user_repo=repo_run.user_repo(repo.record),
            )
            self.env.progress(f"delivered to {', '.join(out.values())}")
        self.state.finished_at = time.time()
        self.env.trace.write("run_end", status=self.state.status, reason=self.state.reason)
