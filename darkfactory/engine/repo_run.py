"""A run on an existing repository: its clone, environment, baseline, verdict and delivery.

``check`` opens the repository before a run directory exists; ``setup`` clones it into
the workspace, builds (or reuses) its environment and runs its suite at the base commit
before any model call; ``RepoVerifier`` judges the change by that baseline; ``deliver``
writes ``change.patch`` and ``pull_request.md`` and pushes the branch if configured.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from darkfactory.config import Config
from darkfactory.engine import repo_checks
from darkfactory.engine.classify import diagnose
from darkfactory.engine.holdout import SealedSuite
from darkfactory.engine.verify import VerifyResult, sealed_failures, trace_outcomes
from darkfactory.errors import ConfigError
from darkfactory.repo import deliver as delivering
from darkfactory.repo.baseline import Baseline, Comparison, compare, run_baseline, run_suite
from darkfactory.repo.environment import RepoEnvironment, prepare_environment, project_sandbox
from darkfactory.repo.environment import run_setup as run_setup_commands
from darkfactory.repo.errors import RepoError
from darkfactory.repo.project import TEST_COMMAND_HINT, Project, detect_project, pytest_problem
from darkfactory.repo.source import RepoSource, clone_into, open_repository
from darkfactory.repo.version_file import write_version_files
from darkfactory.reporting.trace import Trace
from darkfactory.sandbox.base import ExecResult, Sandbox
from darkfactory.sandbox.testrun import TestOutcome, TestRun, run_pytest
from darkfactory.spec import RepoTarget, Spec
from darkfactory.spec.model import TICKET_KINDS
from darkfactory.spec.trace import requirement_links
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import hostio, rundir

#: The run directory's record of its repository (what resume rebuilds the run from).
REPO_JSON = "repo.json"
#: A tests ticket's coverage at the base commit (``repo_checks.Coverage``).
COVERAGE_BASE = "coverage_base.json"
#: The last verify round's evidence: acceptance outcomes, their requirement links, the
#: kind's checks and the coverage (what ``pull_request.md`` is written from).
VERDICT = "verdict.json"
#: Failure classification reads the workspace for module names; a repository run's
#: failures are classified by their messages alone.
NO_HOST_PATH = Path("/nonexistent")


class RepoRecord(BaseModel):
    """What a repository run keeps in ``repo.json``."""

    location: str
    identity: str
    base: str
    base_sha: str
    branch: str
    kind: str
    project: Project
    warnings: list[str] = []
    #: The branch the base names and the repository's default branch, resolved when the
    #: clone is made (``RepoSource``); None when unknown (and in a repo.json written before).
    base_branch: str | None = None
    default_branch: str | None = None


@dataclass
class RepoRun:
    """A repository run's live parts: its record, environment and baseline."""

    record: RepoRecord
    environment: RepoEnvironment
    baseline: Baseline | None = None

    @property
    def target_kind(self) -> str:
        return self.record.kind


def location_of(target: RepoTarget, spec: Spec) -> str:
    """``repo:`` as a path relative to the spec's directory (URLs as given)."""
    if "://" in target.repo or Path(target.repo).expanduser().is_absolute():
        return target.repo
    source = Path(spec.source)
    base = source if source.is_dir() else source.parent
    return str((base / target.repo).resolve())


#: The kinds of ticket this release runs on a repository (the others are refused, exit 2).
SUPPORTED_KINDS = TICKET_KINDS
#: Who fixes what a verify round found, by kind (the others: routed by failure class).
FIX_OWNER = {"tests": "qa_engineer", "docs": "tech_writer"}
#: The crew tasks (config/tasks.yaml) each kind runs besides ``fix``.
KIND_TASKS = {
    "bug": ("reproduce", "change"),
    "feature": ("change",),
    "migrate": ("change",),
    "tests": ("add_tests",),
    "docs": ("document_package", "document_fix"),
}


def check(spec: Spec, config: Config) -> RepoSource:
    """The ticket's repository opened and checked (``RepoError``, exit 2, if it cannot be)."""
    assert spec.target is not None
    if spec.target.kind not in SUPPORTED_KINDS:
        raise RepoError(
            f"a {spec.target.kind} ticket on a repository is not supported",
            file=Path(spec.source),
            key="kind",
            hint=f"the kinds are: {', '.join(SUPPORTED_KINDS)}",
        )
    problem = spec.target.mismatch()  # the kind is final here (--kind had its say)
    if problem is not None:
        message, key, hint = problem
        raise RepoError(message, file=Path(spec.source), key=key, hint=hint)
    command = spec.target.test_command
    wrong = pytest_problem(command) if command else None
    if wrong is not None:
        raise RepoError(
            f"test_command {wrong}",
            file=Path(spec.source),
            key="test_command",
            hint=TEST_COMMAND_HINT,
        )
    missing = [t for t in KIND_TASKS[spec.target.kind] if t not in config.tasks]
    if missing:
        raise ConfigError(
            f"a {spec.target.kind} ticket needs the task {missing[0]!r}, and tasks.yaml has none",
            file=config.dir / "tasks.yaml",
            key=missing[0],
            hint="copy it from Dark Factory's config/tasks.yaml",
        )
    source = open_repository(
        location_of(spec.target, spec), spec.target.base, limits=config.factory.repo
    )
    pull = config.factory.deliver.pull_request
    if pull is not None and not (pull.target_branch or source.base_branch or source.default_branch):
        source.close()
        raise _no_target(source.location, source.base)
    return source


def setup(
    source: RepoSource, spec: Spec, config: Config, run_dir: Path, *, backend: str
) -> RepoRecord:
    """Clone the base into the run's workspace on ``darkfactory/<run-id>``; read its project."""
    assert spec.target is not None
    workspace = run_dir / rundir.WORKSPACE_DIR
    branch = f"darkfactory/{run_dir.name}"
    clone_into(source, workspace, branch)
    exclude = workspace / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text(rundir.WORKSPACE_IGNORE, encoding="utf-8")  # never part of the change
    project = detect_project(workspace)
    if spec.target.test_command:  # the ticket's, over the repository's own
        project = project.with_test_command(spec.target.test_command)
    # A version module the build would generate (setuptools-scm, hatch-vcs): a stub,
    # git-ignored, so the package imports (after the exclude file above is written).
    written = write_version_files(workspace, project.version_files)
    project = project.model_copy(update={"notes": (*project.notes, *written)})
    record = RepoRecord(
        location=source.location,
        identity=source.identity,
        base=source.base,
        base_sha=source.base_sha,
        branch=branch,
        kind=spec.target.kind,
        project=project,
        warnings=list(source.warnings),
        base_branch=source.base_branch,
        default_branch=source.default_branch,
    )
    (run_dir / REPO_JSON).write_text(record.model_dump_json(indent=2), encoding="utf-8")
    return record


def load_record(run_dir: Path) -> RepoRecord | None:
    path = run_dir / REPO_JSON
    if not path.is_file():
        return None
    return RepoRecord.model_validate_json(path.read_text(encoding="utf-8"))


def environment(record: RepoRecord, config: Config, *, backend: str) -> RepoEnvironment:
    """The repository's environment, from the cache when it was built before."""
    factory = config.factory
    return prepare_environment(
        record.project,
        identity=record.identity,
        backend=backend,
        limits=factory.limits(),
        cache_dir=factory.repo.cache_path(),
        image=factory.sandbox.image,
        timeout_s=factory.sandbox.deps_timeout_s,
    )


def importable(sandbox: Sandbox, record: RepoRecord) -> Sandbox:
    return project_sandbox(sandbox, record.project)


def plugin_args(repo: RepoRun) -> list[str]:
    """pytest's ``-p`` arguments for the repository's plugins (any suite run apart from it)."""
    return [a for m in repo.environment.pytest_plugins for a in ("-p", m)]


def baseline(
    sandbox: Sandbox, repo: RepoRun, spec: Spec, config: Config, run_dir: Path, trace: Trace
) -> Baseline:
    """The suite at the base commit, every outcome kept (``baseline.json``), before any model.

    A tests ticket's coverage is measured in the same run (``coverage_base.json``).
    """
    project = repo.record.project
    for result in run_setup_commands(sandbox, project, timeout_s=config.factory.tests.timeout_s):
        _trace_exec(trace, ["setup"], result)
    options = _coverage_options(spec, repo, sandbox)
    if options is None:
        found = run_baseline(
            sandbox,
            project,
            commit=repo.record.base_sha,
            timeout=config.factory.tests.timeout_s,
            plugins=repo.environment.pytest_plugins,
        )
    else:
        suite = run_suite(
            sandbox,
            project,
            timeout=config.factory.tests.timeout_s,
            plugins=repo.environment.pytest_plugins,
            coverage=options,
        )
        found = Baseline.from_run(
            suite, commit=repo.record.base_sha, test_command=project.test_command
        )
        measured = repo_checks.Coverage.of(suite.coverage)
        (run_dir / COVERAGE_BASE).write_text(json.dumps(measured.to_dict()), encoding="utf-8")
        trace.write("coverage", at="base", **measured.to_dict())
    found.save(run_dir)
    trace.write(
        "baseline",
        commit=found.commit,
        counts=found.counts(),
        failing=found.ids("failed", "error"),
        environment={"cached": repo.environment.cached, "setup_s": repo.environment.setup_s},
    )
    return found


def _coverage_options(spec: Spec, repo: RepoRun, sandbox: Sandbox) -> dict[str, list[str]] | None:
    if repo.target_kind != "tests" or spec.target is None:
        return None
    return repo_checks.coverage_options(spec.target, repo.record.project, sandbox.workdir)


def _base_coverage(run_dir: Path) -> repo_checks.Coverage:
    path = run_dir / COVERAGE_BASE
    if not path.is_file():
        return repo_checks.Coverage(0, 0, 0, "coverage was not measured at base")
    return repo_checks.Coverage.from_dict(json.loads(path.read_text(encoding="utf-8")))


def baseline_text(found: Baseline | None) -> str:
    """``{baseline}``: counts and the tests that already failed at base."""
    if found is None:
        return ""
    counts = ", ".join(f"{n} {k}" for k, n in found.counts().items())
    failing = found.ids("failed", "error")
    text = f"{counts} (commit {found.commit[:12]})"
    if failing:
        text += "\nAlready failing at base (not your concern unless the ticket is about them):\n"
        text += "\n".join(f"- {t}" for t in failing[:30])
    return text


# -- reproduction (a bug) ---------------------------------------------------------------


@dataclass(frozen=True)
class Reproduction:
    """The tests that reproduce a bug, and how they failed at the base commit."""

    tests: tuple[str, ...]
    files: tuple[str, ...]
    failure: str
    ok: bool
    why: str = ""


def _wrong_reason(failures: str, expected: tuple[str, ...]) -> str | None:
    """Why ``failures`` are not the ticket's (None: they are, or the ticket names nothing)."""
    if not expected or any(e in failures for e in expected):
        return None
    return f"it fails, but not with what the ticket reports ({' or '.join(expected)})"


def check_reproduction(
    sandbox: Sandbox,
    repo: RepoRun,
    changed: list[str],
    *,
    timeout: float,
    expected: tuple[str, ...] = (),
) -> Reproduction:
    """The QA engineer's new test files: they must fail now, for the ticket's reason
    (``expected``, see ``repo_checks.expected_failure``), and not for an import error."""
    files = tuple(f for f in changed if _is_test_file(f))
    other = [f for f in changed if f not in files]
    if other:
        return Reproduction((), files, "", False, f"the reproduce phase changed code: {other}")
    if not files:
        return Reproduction((), (), "", False, "no reproduction test file was written")
    run = run_pytest(
        sandbox,
        list(files),
        timeout=timeout,
        extra_args=plugin_args(repo),
    )
    tests = tuple(o.nodeid for o in run.outcomes)
    failure = run.summary(3000)
    diagnosis = diagnose(run, None, NO_HOST_PATH)
    if any(c in ("syntax_import", "missing_dependency") for c in diagnosis.classes):
        return Reproduction(tests, files, failure, False, "it fails with an import error")
    if run.collection_error is not None or run.killed is not None:
        return Reproduction(tests, files, failure, False, "the test does not run at base")
    if not run.outcomes or any(o.outcome not in ("failed", "error") for o in run.outcomes):
        return Reproduction(tests, files, failure, False, "it does not fail at the base commit")
    wrong = _wrong_reason("\n".join(o.message for o in run.outcomes), expected)
    if wrong is not None:
        return Reproduction(tests, files, failure, False, wrong)
    return Reproduction(tests, files, failure, True)


def check_named_tests(
    repo: RepoRun, names: list[str], *, expected: tuple[str, ...] = ()
) -> Reproduction:
    """A ticket's ``failing_tests``: each must exist and fail in the baseline, for the
    ticket's reason (``expected``)."""
    base = repo.baseline
    found = base.outcomes if base is not None else {}
    messages = base.messages if base is not None else {}
    missing = [t for t in names if t not in found]
    passing = [t for t in names if found.get(t) == "passed"]
    failure = "\n\n".join(
        f"{t}: {found.get(t, 'not found')}" + (f"\n{messages[t]}" if t in messages else "")
        for t in names
    )
    if missing:
        return Reproduction(tuple(names), (), failure, False, f"not in the suite: {missing}")
    if passing:
        return Reproduction(tuple(names), (), failure, False, f"they pass at base: {passing}")
    wrong = _wrong_reason("\n".join(messages.get(t, "") for t in names), expected)
    if wrong is not None:
        return Reproduction(tuple(names), (), failure, False, wrong)
    return Reproduction(tuple(names), (), failure, True)


def _is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


# -- verify -----------------------------------------------------------------------------


class RepoVerifier:
    """The verifier of a repository run: the whole suite against the baseline.

    ``acceptance`` holds the tests that must pass (a bug's reproduction or named failing
    tests, a feature's acceptance tests); ``unit`` holds the tests that passed at base
    plus the new ones, so a regression fails the round and a test that already failed
    at base does not.
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        spec: Spec,
        config: Config,
        sandbox: Sandbox,
        repo: RepoRun,
        trace: Trace,
        progress: Callable[[str], None] = lambda msg: None,
        sealed: SealedSuite | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.config = config
        self.sandbox = sandbox
        self.repo = repo
        self.trace = trace
        self.progress = progress
        self.sealed = sealed
        self.comparison: Comparison | None = None

    def must_pass(self) -> list[str]:
        path = self.run_dir / "must_pass.json"
        return json.loads(path.read_text()) if path.is_file() else []

    def verify(self, round_no: int) -> VerifyResult:
        restore_reproduction(self.run_dir, self.trace)
        timeout = self.config.factory.tests.timeout_s
        migration = self.spec.target.migration if self.spec.target else None
        warnings = migration.warnings_as_errors if migration else []
        suite = run_suite(
            self.sandbox,
            self.repo.record.project,
            timeout=timeout,
            plugins=self.repo.environment.pytest_plugins,
            extra_args=repo_checks.warning_args(warnings),
            coverage=_coverage_options(self.spec, self.repo, self.sandbox),
        )
        final = Baseline.from_run(
            suite,
            commit=gitrepo.head(self.run_dir / rundir.WORKSPACE_DIR),
            test_command=self.repo.record.project.test_command,
        )
        base = self.repo.baseline or Baseline.load(self.run_dir / "baseline.json")
        self.comparison = compare(base, final)
        must = self.must_pass()
        by_id = {o.nodeid: o for o in suite.outcomes}
        wanted = [by_id.get(t) or _missing(t) for t in must]
        acceptance = TestRun(wanted, suite.exec, suite.collection_error, timeout_s=timeout)
        if self.spec.acceptance_tests:
            mounted = self.sandbox.path_of("/acceptance")
            ticket = run_pytest(
                self.sandbox,
                [mounted],
                timeout=timeout,
                rootdir=mounted,
                extra_args=plugin_args(self.repo),
            )
            acceptance = TestRun(
                [*acceptance.outcomes, *ticket.outcomes],
                ticket.exec,
                acceptance.collection_error or ticket.collection_error,
                timeout_s=timeout,
            )
        checks = self.checks(suite)
        if checks:
            acceptance = TestRun(
                [*acceptance.outcomes, *(c.outcome() for c in checks)],
                acceptance.exec,
                acceptance.collection_error,
                timeout_s=timeout,
            )
        kept = [
            o
            for o in suite.outcomes
            if base.outcomes.get(o.nodeid, "passed") == "passed" and o.nodeid not in must
        ]
        unit = TestRun(kept, suite.exec, suite.collection_error, timeout_s=timeout)
        unit = unit.expecting({t for t in base.ids("passed")})
        links = requirement_links(rundir.with_frozen_tests(self.spec, self.run_dir))
        for i, test in enumerate(must, 1):
            links.setdefault(test, []).append(f"R{i}" if not self.spec.acceptance_tests else "")
        for c in checks:  # the kind's checks together prove the ticket's requirements
            ids = [r.id for r in self.spec.requirements]
            links[c.nodeid] = links[c.nodeid.split("[", 1)[0]] = ids  # as trace_outcomes looks
        # The sealed holdout: in a sandbox of its own; only names and exception types of its
        # failures reach the diagnosis (and from there the fix task).
        sealed = self.sealed.run(timeout=timeout) if self.sealed is not None else None
        diagnosis = diagnose(acceptance, unit, Path("/"))
        if sealed is not None:
            diagnosis.failures += sealed_failures(sealed, NO_HOST_PATH)
        diagnosis.owner = FIX_OWNER.get(self.repo.target_kind)
        result = VerifyResult(round_no, acceptance, unit, links, diagnosis, sealed=sealed)
        _trace_exec(self.trace, ["pytest", "suite"], suite.exec)
        trace_outcomes(self.trace, "acceptance", acceptance, links, keep_dirs=True)
        trace_outcomes(self.trace, "unit", unit, links, keep_dirs=True)
        if sealed is not None:
            _trace_exec(self.trace, ["pytest", "sealed"], sealed.exec)
            trace_outcomes(self.trace, "sealed", sealed, links, keep_dirs=True)
        self.trace.write(
            "verify",
            round=round_no,
            passed=result.passed,
            acceptance={"total": acceptance.total, "passed": acceptance.passed},
            unit={"total": unit.total, "passed": unit.passed},
            **({"sealed": {"total": sealed.total, "passed": sealed.passed}} if sealed else {}),
            regressions=sorted(self.comparison.regressions),
        )
        (self.run_dir / "final_tests.json").write_text(final.model_dump_json(indent=2))
        verdict = {
            "acceptance": {o.nodeid: o.outcome for o in acceptance.outcomes},
            "links": {t: [r for r in ids if r] for t, ids in links.items()},
            "checks": [c.to_dict() for c in checks],
        }
        if suite.coverage is not None or self.repo.target_kind == "tests":
            verdict["coverage"] = {
                "modules": list(self.spec.target.modules) if self.spec.target else [],
                "base": _base_coverage(self.run_dir).to_dict(),
                "final": repo_checks.Coverage.of(suite.coverage).to_dict(),
            }
        (self.run_dir / VERDICT).write_text(json.dumps(verdict, indent=2), encoding="utf-8")
        self.progress(
            f"verify round {round_no}: must pass {acceptance.passed}/{acceptance.total}, "
            + (f"sealed {sealed.passed}/{sealed.total}, " if sealed else "")
            + f"regressions {len(self.comparison.regressions)}"
        )
        return result

    def checks(self, suite: TestRun) -> list[repo_checks.CheckResult]:
        """The kind's checks (``repo_checks``), measured now."""
        kind, target = self.repo.target_kind, self.spec.target
        if target is None or kind not in ("tests", "docs", "migrate"):
            return []
        workspace = self.run_dir / rundir.WORKSPACE_DIR
        timeout = self.config.factory.tests.timeout_s
        found: list[repo_checks.CheckResult] = []
        if kind in ("tests", "docs"):
            base_sha = self.repo.record.base_sha
            found.append(repo_checks.production_untouched(workspace, base_sha, kind))
        if kind == "tests":
            found.append(
                repo_checks.coverage_check(
                    _base_coverage(self.run_dir), repo_checks.Coverage.of(suite.coverage), target
                )
            )
        elif kind == "docs":
            modules = repo_checks.documented_modules(target, workspace, self.repo.record.project)
            found += repo_checks.api_reference(workspace, modules)
        elif target.migration is not None:
            m = target.migration
            found += repo_checks.gone(self.sandbox, m.gone, timeout=timeout)
            found += repo_checks.imports(
                self.sandbox, m.imports, m.warnings_as_errors, timeout=timeout
            )
            assert self.comparison is not None
            found += repo_checks.warnings_held(
                m.warnings_as_errors,
                dict(self.comparison.regressions),
                self.comparison.final_incomplete,
            )
        self.trace.write("repo_checks", ticket_kind=kind, checks=[c.to_dict() for c in found])
        return found


def _missing(test: str) -> TestOutcome:
    file, _, name = test.partition("::")
    return TestOutcome(test, file, name, "error", 0.0, "the test did not run (no result)")


def _trace_exec(trace: Trace, argv: list[str], result: ExecResult) -> None:
    trace.write(
        "sandbox_exec",
        argv=argv,
        exit_code=result.exit_code,
        duration_s=round(result.duration_s, 3),
        killed=result.killed,
    )


# -- deliver ----------------------------------------------------------------------------


def deliver(
    run_dir: Path,
    spec: Spec,
    config: Config,
    record: RepoRecord,
    status: str,
    trace: Trace,
    user_repo: Path | None,
) -> dict[str, str]:
    """change.patch and pull_request.md, whatever ``status``; the push (a run that did not
    deliver: only with ``push_failed``) and, for a delivered run, the draft PR."""
    from darkfactory.repo import forge  # the forge's HTTP client: only when a run delivers

    workspace = run_dir / rundir.WORKSPACE_DIR
    out: dict[str, str] = {}
    cfg = config.factory.deliver
    pull = cfg.pull_request if status == "delivered" else None
    target = merge_target(record, cfg.pull_request.target_branch if cfg.pull_request else None)
    head = gitrepo.head(workspace)
    if status == "escalated":  # it ends here: keep what the stopped phase wrote, off-branch
        head = delivering.work_left(workspace, "escalated: the work left when it stopped") or head
    patch = delivering.write_change_patch(
        workspace, record.base_sha, run_dir / "change.patch", head=head
    )
    out["patch"] = str(patch)
    trace.write("deliver", what="patch", head=head)
    facts = pull_request_facts(run_dir, spec, record, target=target, head=head, status=status)
    pr = delivering.write_pull_request(facts, run_dir / "pull_request.md")
    out["pull_request_md"] = str(pr)
    branch = delivering.branch_for(run_dir.name, status, cfg.push_failed)
    if cfg.push and branch:
        if branch != record.branch:
            gitrepo.run(workspace, "branch", "-f", branch, head)
        token_env, token_user = cfg.push_token()
        remote = delivering.resolve_remote(cfg.push, user_repo=user_repo)
        pushed = delivering.push(
            workspace,
            remote,
            branch,
            base_branch=target.branch if target else "",  # the remote's HEAD is refused too
            token_env=token_env,
            token_user=token_user,
            commit=head,
        )
        out["pushed"] = f"{pushed.branch} ({pushed.status}) to {pushed.remote}"
        trace.write("deliver", what="push", branch=pushed.branch, status=pushed.status)
        if pull is not None:
            if target is None:  # refused at the start (check) unless repo.json is older
                raise _no_target(record.location, record.base)
            opened = forge.open_pull_request(
                pull,
                branch=branch,
                base=target.branch,
                title=spec.title,
                body=pr.read_text(encoding="utf-8"),
                ticket=ticket_fingerprint(run_dir, spec, record),
            )
            out["pull_request"] = opened.url + ("" if opened.created else " (already open)")
            trace.write(
                "deliver",
                what="pull_request",
                url=opened.url,
                created=opened.created,
                target=target.branch,
                why=target.note,
            )
    return out


@dataclass(frozen=True)
class MergeTarget:
    """The branch a pull request asks to merge into; ``note`` says why when it is not the
    branch the base names."""

    branch: str
    note: str = ""


def merge_target(record: RepoRecord, configured: str | None) -> MergeTarget | None:
    """``deliver.pull_request.target_branch``, else the branch the base names, else (a tag,
    a commit, a detached ``HEAD``) the repository's default branch; None if none is known."""
    if configured:
        return MergeTarget(configured)
    if record.base_branch:
        return MergeTarget(record.base_branch)
    if record.default_branch:
        return MergeTarget(
            record.default_branch,
            f"The base {record.base} is not a branch, so this asks to merge into "
            f"{record.default_branch}, the repository's default branch "
            "(deliver.pull_request.target_branch chooses another).",
        )
    return None


def _no_target(location: str, base: str) -> RepoError:
    return RepoError(
        f"no branch for the pull request to merge into: the base {base!r} names no "
        f"branch and {location} has no default branch Dark Factory could find",
        key="deliver.pull_request.target_branch",
        hint="set deliver.pull_request.target_branch in config/factory.yaml",
    )


def ticket_fingerprint(run_dir: Path, spec: Spec, record: RepoRecord) -> str:
    """sha256 of the ticket's bytes (the run's copy under ``spec/``) and the repository's
    identity: the same for every run of the same ticket on the same repository."""
    digest = hashlib.sha256()
    files = sorted(p for p in (run_dir / "spec").rglob("*") if p.is_file())
    for path in files:
        digest.update(path.read_bytes() + b"\0")
    if not files:  # no copy (a run directory made by hand): the parsed ticket
        digest.update(spec.model_dump_json().encode() + b"\0")
    digest.update(record.identity.encode())
    return digest.hexdigest()


def pull_request_facts(
    run_dir: Path,
    spec: Spec,
    record: RepoRecord,
    *,
    target: MergeTarget | None = None,
    head: str | None = None,
    status: str = "delivered",
) -> delivering.PullRequestFacts:
    """What the pull request says, from the run directory alone (never a model's words):
    the branch up to ``head`` (default: the workspace's ``HEAD``)."""
    workspace = run_dir / rundir.WORKSPACE_DIR
    head = head or gitrepo.head(workspace)
    notes = [w[:1].upper() + w[1:] for w in record.warnings]
    if status != "delivered":
        notes.insert(
            0,
            f"This run ended {status}: it was not delivered, and no pull request is opened "
            "for it. The change is here for a person to look at.",
        )
    elif target is not None and target.note:
        notes.append(target.note)
    base = (
        Baseline.load(run_dir / "baseline.json") if (run_dir / "baseline.json").is_file() else None
    )
    final_path = run_dir / "final_tests.json"
    final = Baseline.model_validate_json(final_path.read_text()) if final_path.is_file() else None
    outcomes = final.outcomes if final else {}
    must = (
        json.loads((run_dir / "must_pass.json").read_text())
        if (run_dir / "must_pass.json").is_file()
        else []
    )
    verdict_path = run_dir / VERDICT
    verdict = json.loads(verdict_path.read_text()) if verdict_path.is_file() else {}
    results: dict[str, str] = verdict.get("acceptance", {})
    links: dict[str, list[str]] = verdict.get("links", {})

    def proof(req_id: str) -> tuple[tuple[str, str], ...]:
        # A bug's reproduction proves every requirement; a feature's acceptance tests and a
        # tests/docs/migrate ticket's checks prove the requirements they are linked to.
        tests = [(t, outcomes.get(t, "not run")) for t in must]
        tests += [
            (t, o) for t, o in results.items() if req_id in links.get(t, []) and t not in must
        ]
        return tuple(tests)

    evidence = [
        delivering.RequirementEvidence(id=r.id, text=r.text, tests=proof(r.id))
        for r in spec.requirements
    ]
    checks = tuple(
        delivering.CheckEvidence(name=c["name"], ok=c["ok"], detail=c["detail"])
        for c in verdict.get("checks", [])
    )
    coverage = None
    if "coverage" in verdict:
        cov = verdict["coverage"]
        coverage = delivering.CoverageChange(
            modules=tuple(cov["modules"]) or ("the project's packages",),
            before_percent=repo_checks.Coverage.from_dict(cov["base"]).percent,
            after_percent=repo_checks.Coverage.from_dict(cov["final"]).percent,
        )
    repro_path = run_dir / "reproduction.json"
    reproduction = None
    if repro_path.is_file():
        data = json.loads(repro_path.read_text())
        reproduction = delivering.Reproduction(
            test=", ".join(data["tests"]),
            failure_at_base=data["failure"],
            passes_at_end=all(outcomes.get(t) == "passed" for t in data["tests"]),
        )
    return delivering.PullRequestFacts(
        title=spec.title,
        summary=spec.summary or spec.title,
        kind=record.kind,  # type: ignore[arg-type]  # a TicketKind, checked at intake
        run_id=run_dir.name,
        branch=record.branch,
        base_ref=record.base,
        base_sha=record.base_sha,
        head_sha=head,
        changes=delivering.change_summary(workspace, record.base_sha, head),
        requirements=tuple(evidence),
        tests=delivering.BaselineComparison.of(base, final) if base and final else None,
        reproduction=reproduction,
        coverage=coverage,
        checks=checks,
        acceptance=tuple(
            (t, o)
            for t, o in results.items()
            if t not in must and not t.startswith(repo_checks.PREFIX)
        ),
        target_branch=target.branch if target else None,
        notes=tuple(notes),
    )


def save_must_pass(run_dir: Path, tests: list[str]) -> None:
    (run_dir / "must_pass.json").write_text(json.dumps(tests), encoding="utf-8")


def save_reproduction(run_dir: Path, found: Reproduction) -> None:
    """The tests that must pass, and the frozen copy of the reproduction's files."""
    save_must_pass(run_dir, list(found.tests))
    data = {"tests": list(found.tests), "files": list(found.files), "failure": found.failure}
    (run_dir / "reproduction.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    workspace = run_dir / rundir.WORKSPACE_DIR
    for path in found.files:
        target = run_dir / "reproduction" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(hostio.read_bytes(workspace, path))


def restore_reproduction(run_dir: Path, trace: Trace) -> None:
    """Put the frozen reproduction tests back in the workspace if anything changed them."""
    frozen, _ = hostio.files(run_dir, "reproduction")
    workspace = run_dir / rundir.WORKSPACE_DIR
    for path, data in frozen.items():
        try:
            now = hostio.read_bytes(workspace, path)
        except (hostio.Refused, FileNotFoundError):
            now = None
        if now != data:
            hostio.remove(workspace / path)
            (workspace / path).parent.mkdir(parents=True, exist_ok=True)
            (workspace / path).write_bytes(data)
            trace.write("acceptance_restored", reason=f"{path} differed from the frozen test")


def user_repo(record: RepoRecord) -> Path | None:
    """The user's local repository (for remote names), or None for a URL."""
    return None if "://" in record.location else Path(record.location)
