"""What a repository ticket delivers: ``change.patch``, ``pull_request.md`` and the pushed branch.

Rendered from measured facts only (git, the test runs); no model writes any of it.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from darkfactory.config import (
    LOOPBACK_HOSTS,
    TOKEN_USER,
)
from darkfactory.errors import DarkFactoryError, InputError
from darkfactory.repo.baseline import Baseline, compare
from darkfactory.spec.model import TicketKind
from darkfactory.workspace import git as gitrepo

CHANGE_PATCH = "change.patch"
PULL_REQUEST_MD = "pull_request.md"
BRANCH_PREFIX = "darkfactory/"
#: Run statuses that end without a delivery: pushed (to ``-failed``) only with ``push_failed``.
UNDELIVERED = frozenset({"failed", "escalated", "rejected", "budget_exhausted"})


def read_token(env_name: str, *, key: str = "deliver.pull_request.token_env") -> str:
    """The token in the environment variable ``env_name``; an ``InputError`` naming it if unset."""
    token = os.environ.get(env_name, "").strip()
    if not token:
        raise InputError(
            f"the environment variable {env_name} is not set or empty",
            key=key,
            hint=f"export {env_name}=<token> (or put it in .env) before the run",
        )
    return token


# -- change.patch --------------------------------------------------------------------------

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _check_base(workspace: Path, base_sha: str, head: str = "HEAD") -> None:
    if not _SHA.fullmatch(base_sha):
        raise ValueError(f"not a commit id: {base_sha!r}")
    if head != "HEAD" and not _SHA.fullmatch(head):
        raise ValueError(f"not a commit id: {head!r}")
    try:
        gitrepo.run(workspace, "merge-base", "--is-ancestor", base_sha, head)
    except subprocess.CalledProcessError:
        raise DarkFactoryError(
            f"{base_sha[:12]} is not an ancestor of the run's branch in {workspace}"
        ) from None


def work_left(workspace: Path, message: str) -> str | None:
    """A commit of what the work tree holds beyond ``HEAD``, made without moving ``HEAD``,
    the index or the work tree (a stopped run's last work, for a person to look at); None
    when there is nothing beyond ``HEAD``."""
    gitrepo.remove_nested_git(workspace)  # never committed, as for every commit of a run
    try:
        gitrepo.run(workspace, "add", "-A")
        tree = gitrepo.run(workspace, "write-tree")
    finally:
        gitrepo.run(workspace, "reset", "-q")  # the index as it was: HEAD's
    if tree == gitrepo.run(workspace, "rev-parse", "HEAD^{tree}"):
        return None
    return gitrepo.run(workspace, "commit-tree", tree, "-p", "HEAD", "-m", message)


def write_change_patch(workspace: Path, base_sha: str, dest: Path, head: str = "HEAD") -> Path:
    """Write the branch (``head``) against ``base_sha`` to ``dest``: ``git format-patch``,
    one mail per commit.

    It applies to the base with ``git am`` (the commits) or ``git apply`` (the change);
    binary files included. No commits after the base: an empty file.
    """
    _check_base(workspace, base_sha, head)
    with tempfile.TemporaryDirectory(prefix="darkfactory-patch-") as tmp:
        listed = gitrepo.run(
            workspace,
            "format-patch",
            "--binary",
            "--no-signature",
            "--no-stat",
            "--no-ext-diff",
            f"--output-directory={tmp}",
            f"{base_sha}..{head}",
        )
        names = sorted(Path(line).name for line in listed.splitlines() if line)
        dest.write_bytes(b"".join((Path(tmp) / name).read_bytes() for name in names))
    return dest


# -- what changed ----------------------------------------------------------------------------


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileChange(_Data):
    """One file the branch changes, as ``git diff --numstat`` counts it (None: binary)."""

    path: str
    added: int | None
    removed: int | None


class PhaseCommit(_Data):
    """One commit of the branch (one per phase)."""

    sha: str
    subject: str


class ChangeSummary(_Data):
    files: tuple[FileChange, ...] = ()
    commits: tuple[PhaseCommit, ...] = ()

    @property
    def added(self) -> int:
        return sum(f.added or 0 for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed or 0 for f in self.files)


def change_summary(workspace: Path, base_sha: str, head: str = "HEAD") -> ChangeSummary:
    """The files the branch (``head``) changes against ``base_sha`` with their counts, and
    its commits."""
    _check_base(workspace, base_sha, head)
    numstat = gitrepo.run(
        workspace, "diff", "--numstat", "-M", "--no-ext-diff", "--no-textconv", base_sha, head
    )
    files = []
    for line in numstat.splitlines():
        added, removed, path = line.split("\t", 2)  # git quotes a path with a tab in it
        files.append(
            FileChange(
                path=path,
                added=None if added == "-" else int(added),
                removed=None if removed == "-" else int(removed),
            )
        )
    log = gitrepo.run(workspace, "log", "--reverse", "--format=%H%x09%s", f"{base_sha}..{head}")
    commits = [
        PhaseCommit(sha=sha, subject=subject)
        for sha, _, subject in (line.partition("\t") for line in log.splitlines() if line)
    ]
    return ChangeSummary(files=tuple(files), commits=tuple(commits))


# -- pull_request.md -------------------------------------------------------------------------


class RequirementEvidence(_Data):
    """A requirement of the ticket, with each test that proves it and that test's outcome."""

    id: str
    text: str
    tests: tuple[tuple[str, str], ...] = ()


class SuiteCounts(_Data):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0


class BaselineComparison(_Data):
    """The repository's own suite at the base commit against the end of the run."""

    baseline: SuiteCounts
    final: SuiteCounts
    #: Tests that passed at base, and how many of them still pass (PASS_TO_PASS).
    pass_to_pass_total: int
    pass_to_pass_kept: int
    #: Passed at base, fail at the end.
    regressions: tuple[str, ...] = ()
    #: Failed at base (or did not exist), pass at the end.
    fail_to_pass: tuple[str, ...] = ()
    #: Failed at base and still fail: reported, not counted as regressions.
    still_failing: tuple[str, ...] = ()
    #: Not in the baseline (the run added them): test id and its outcome at the end.
    new_tests: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, baseline: Baseline, final: Baseline) -> BaselineComparison:
        """The comparison ``baseline.compare`` makes, as the pull request shows it."""
        c = compare(baseline, final)

        def counts(run: Baseline) -> SuiteCounts:
            n = run.counts()
            return SuiteCounts(
                passed=n["passed"], failed=n["failed"], errors=n["error"], skipped=n["skipped"]
            )

        return cls(
            baseline=counts(baseline),
            final=counts(final),
            pass_to_pass_total=len(c.pass_to_pass) + len(c.regressions),
            pass_to_pass_kept=len(c.pass_to_pass),
            regressions=tuple(sorted(c.regressions)),
            fail_to_pass=tuple(t for t, o in sorted(c.failing_at_base.items()) if o == "passed"),
            still_failing=tuple(t for t, o in sorted(c.failing_at_base.items()) if o != "passed"),
            new_tests=tuple(sorted(c.new_tests.items())),
        )


class Reproduction(_Data):
    """A bug's reproduction test: how it failed at the base commit, and whether it passes now."""

    test: str
    failure_at_base: str
    passes_at_end: bool


class CoverageChange(_Data):
    """Line coverage of the named modules before and after (a ``tests`` ticket)."""

    modules: tuple[str, ...]
    before_percent: float
    after_percent: float


class CheckEvidence(_Data):
    """A check the pipeline measured for a tests, docs or migrate ticket (``repo_checks``)."""

    name: str
    ok: bool
    detail: str


class PullRequestFacts(_Data):
    """Everything ``pull_request.md`` says, measured by the run."""

    title: str
    summary: str = ""
    kind: TicketKind
    run_id: str
    branch: str
    base_ref: str
    base_sha: str
    head_sha: str
    changes: ChangeSummary
    requirements: tuple[RequirementEvidence, ...] = ()
    tests: BaselineComparison | None = None
    reproduction: Reproduction | None = None
    coverage: CoverageChange | None = None
    checks: tuple[CheckEvidence, ...] = ()
    #: The ticket's own tests (a feature's acceptance tests) with their outcome at the end.
    acceptance: tuple[tuple[str, str], ...] = ()
    #: The branch the pull request merges into (None: unknown).
    target_branch: str | None = None
    #: What a reviewer must know first (uncommitted changes left out, the target chosen).
    notes: tuple[str, ...] = ()


_KIND = {
    "bug": "Bug fix",
    "feature": "Feature",
    "tests": "Tests",
    "docs": "Documentation",
    "migrate": "Migration",
}
MAX_LISTED = 50
MAX_FILES = 200
MAX_FAILURE_LINES = 60
MAX_FAILURE_CHARS = 4000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _code(text: str) -> str:
    """``text`` as an inline code span: Markdown, HTML and @mentions in it stay inert."""
    text = _CONTROL.sub("?", text.replace("\n", " "))
    ticks = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """A code span for a table cell: GitHub splits cells at ``|`` even inside code."""
    return _code(text).replace("|", "\\|")


def _block(text: str) -> str:
    """``text`` in a fenced code block that nothing in it can close."""
    ticks = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (ticks + 1)
    return f"{fence}text\n{text}\n{fence}"


def _escape(text: str) -> str:
    """Plain text with Markdown's inline syntax escaped (a commit subject)."""
    return re.sub(r"([\\`*_\[\]<>#+!|~@])", r"\\\1", text.replace("\n", " "))


def trim_output(text: str) -> str:
    """The end of a test's output, verbatim but for colour codes: where the failure is."""
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n"))).rstrip()
    lines = text.splitlines()
    cut = len(lines) > MAX_FAILURE_LINES
    lines = lines[-MAX_FAILURE_LINES:]
    kept = "\n".join(lines)
    if len(kept) > MAX_FAILURE_CHARS:
        kept = kept[-MAX_FAILURE_CHARS:]
        kept = kept.partition("\n")[2] or kept  # from the start of a line
        cut = True
    return ("[earlier output left out]\n" if cut else "") + kept


def _listed(items: tuple[str, ...]) -> str:
    shown = ", ".join(_code(t) for t in items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f" and {more} more (see the run report)" if more > 0 else "")


def _outcome(outcome: str) -> str:
    return outcome if outcome == "passed" else f"**{outcome}**"


def _changes(facts: PullRequestFacts) -> list[str]:
    ch = facts.changes
    reqs = len(facts.requirements)
    why = (
        f"To meet the ticket's {reqs} requirement{'s' if reqs != 1 else ''} (below), "
        if reqs
        else ""
    )
    out = [
        "## What changed and why",
        "",
        f"{why}this branch changes {len(ch.files)} file{'s' if len(ch.files) != 1 else ''} "
        f"(+{ch.added} -{ch.removed}) in {len(ch.commits)} "
        f"commit{'s' if len(ch.commits) != 1 else ''}, one per phase:",
        "",
    ]
    out += [f"1. {_escape(c.subject)} ({_code(c.sha[:10])})" for c in ch.commits]
    if ch.files:
        out += ["", "| File | Added | Removed |", "|---|---:|---:|"]
        for f in ch.files[:MAX_FILES]:
            if f.added is None:
                out.append(f"| {_cell(f.path)} | binary | binary |")
            else:
                out.append(f"| {_cell(f.path)} | +{f.added} | -{f.removed} |")
        if len(ch.files) > MAX_FILES:
            out.append(f"| and {len(ch.files) - MAX_FILES} more files | | |")
    return out


def _requirements(facts: PullRequestFacts) -> list[str]:
    if not facts.requirements:
        return []
    proven = sum(
        1 for r in facts.requirements if r.tests and all(o == "passed" for _, o in r.tests)
    )
    out = [
        "## Requirements and the tests that prove them",
        "",
        f"{proven} of {len(facts.requirements)} requirements are proven by tests that pass.",
        "",
    ]
    for req in facts.requirements:
        out.append(f"- **{_escape(req.id)}**: {req.text.strip()}")
        if not req.tests:
            out.append("  - no test proves it")
        out += [f"  - {_code(test)}: {_outcome(outcome)}" for test, outcome in req.tests]
    return out


def _counts_row(label: str, counts: SuiteCounts) -> str:
    return f"| {label} | {counts.passed} | {counts.failed} | {counts.errors} | {counts.skipped} |"


def _tests(facts: PullRequestFacts) -> list[str]:
    t = facts.tests
    if t is None:
        return []
    out = [
        "## The repository's tests: at the base commit and at the end",
        "",
        "| Run | Passed | Failed | Errors | Skipped |",
        "|---|---:|---:|---:|---:|",
        _counts_row(f"Base {_cell(facts.base_sha[:10])}", t.baseline),
        _counts_row(f"End {_cell(facts.head_sha[:10])}", t.final),
        "",
        f"- **Still passing (PASS_TO_PASS):** {t.pass_to_pass_kept} of the "
        f"{t.pass_to_pass_total} tests that passed at base.",
        "- **Regressions:** " + (_listed(t.regressions) if t.regressions else "none."),
    ]
    if t.fail_to_pass:
        out.append("- **Now passing (FAIL_TO_PASS):** " + _listed(t.fail_to_pass))
    if t.new_tests:
        failing = tuple(test for test, outcome in t.new_tests if outcome != "passed")
        out.append(
            f"- **New tests:** {len(t.new_tests)}, "
            + (f"not passing: {_listed(failing)}" if failing else "all passing.")
        )
    if t.still_failing:
        out.append(
            "- **Failing at base and still failing** (not counted as regressions): "
            + _listed(t.still_failing)
        )
    if facts.coverage is not None:
        c = facts.coverage
        delta = c.after_percent - c.before_percent
        out.append(
            f"- **Line coverage** of {', '.join(_code(m) for m in c.modules)}: "
            f"{c.before_percent:.1f}% → {c.after_percent:.1f}% ({delta:+.1f} points)."
        )
    return out


def _reproduction(facts: PullRequestFacts) -> list[str]:
    r = facts.reproduction
    if r is None:
        return []
    now = "passes at the end." if r.passes_at_end else "**still fails at the end.**"
    return [
        "## The reproduction test",
        "",
        f"{_code(r.test)} reproduces the bug. At the base commit it failed like this "
        f"(its output's end, verbatim); it {now}",
        "",
        _block(trim_output(r.failure_at_base)),
    ]


def _acceptance(facts: PullRequestFacts) -> list[str]:
    if not facts.acceptance:
        return []
    passed = sum(1 for _, o in facts.acceptance if o == "passed")
    out = [
        "## The ticket's acceptance tests",
        "",
        f"{passed} of {len(facts.acceptance)} pass. They came with the ticket, were kept "
        "outside the branch and read-only to every agent, and ran against the change:",
        "",
    ]
    shown = facts.acceptance[:MAX_LISTED]
    out += [f"- {_code(test)}: {_outcome(outcome)}" for test, outcome in shown]
    if len(facts.acceptance) > MAX_LISTED:
        out.append(f"- and {len(facts.acceptance) - MAX_LISTED} more (see the run report)")
    return out


def _checks(facts: PullRequestFacts) -> list[str]:
    if not facts.checks:
        return []
    held = sum(1 for c in facts.checks if c.ok)
    out = [
        f"## The {_KIND[facts.kind].lower()} checks",
        "",
        f"{held} of {len(facts.checks)} checks hold, each measured by the pipeline:",
        "",
    ]
    for c in facts.checks:
        first, _, rest = c.detail.strip().partition("\n")
        mark = "holds" if c.ok else "**does not hold**"
        out.append(f"- {_code(c.name)}: {mark}: {_escape(first)}")
        if rest.strip():
            out += ["", _block(trim_output(rest)), ""]
    return out


def render_pull_request(facts: PullRequestFacts) -> str:
    """``pull_request.md``: the pull request's text, from the run's measured facts only.

    Names from the workspace (paths, test ids, output) go in code spans or blocks, so a
    model-written name cannot add links, HTML or mentions.
    """
    header = [
        f"# {facts.title.strip()}",
        "",
        *([facts.summary.strip(), ""] if facts.summary.strip() else []),
        f"**{_KIND[facts.kind]}** · branch {_code(facts.branch)} onto {_code(facts.base_ref)} "
        f"at {_code(facts.base_sha[:10])}"
        + (f" · into {_code(facts.target_branch)}" if facts.target_branch else "")
        + f" · run {_code(facts.run_id)}",
    ]
    for note in facts.notes:
        header += ["", f"> **Note:** {_escape(note)}"]
    sections = [
        header,
        _changes(facts),
        _requirements(facts),
        _acceptance(facts),
        _checks(facts),
        _tests(facts),
        _reproduction(facts),
        [
            "---",
            "",
            f"*Written by Dark Factory from run {_code(facts.run_id)}: every count and outcome "
            "above comes from tests it ran in a sandbox, none from a model. The run directory "
            f"holds the evidence (`report.html`) and the change as a patch (`{CHANGE_PATCH}`).*",
        ],
    ]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


def write_pull_request(facts: PullRequestFacts, dest: Path) -> Path:
    """Write ``render_pull_request(facts)`` to ``dest`` (``runs/<id>/pull_request.md``)."""
    dest.write_text(render_pull_request(facts), encoding="utf-8")
    return dest


# -- push --------------------------------------------------------------------------------------


class PushError(DarkFactoryError):
    """The branch was not pushed; the message says why and what to do."""


@dataclass(frozen=True)
class PushResult:
    remote: str  # the remote as shown (no credentials)
    branch: str
    commit: str
    status: Literal["created", "updated", "up-to-date"]


def branch_for(run_id: str, status: str, push_failed: bool) -> str | None:
    """The remote branch a finished run pushes to, or None when it pushes nothing.

    Delivered: ``darkfactory/<run-id>``. Failed, escalated, rejected or out of budget:
    ``darkfactory/<run-id>-failed`` with ``push_failed``, else nothing. A run that is not
    finished (running, awaiting approval) pushes nothing. Only a delivered run gets a pull
    request.
    """
    if status == "delivered":
        return f"{BRANCH_PREFIX}{run_id}"
    if status in UNDELIVERED and push_failed:
        return f"{BRANCH_PREFIX}{run_id}-failed"
    return None


def _transport(remote: str) -> tuple[str, str]:
    """``(transport, shown)`` for a remote URL or path; ``PushError`` for one a run may not use."""
    if remote.startswith("/") or remote.startswith("file://"):
        return "file", remote
    parts = urlsplit(remote)
    if parts.scheme in ("https", "http") and parts.hostname:
        if parts.password is not None or parts.username is not None:
            raise PushError(
                "deliver.push: put no credentials in the URL; name the variable holding the "
                "token in deliver.push_token_env (or deliver.pull_request.token_env)"
            )
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise PushError(f"deliver.push: {remote} is http://; use https://")
        return parts.scheme, remote
    scp = _SCP.fullmatch(remote)
    instead = f" (for {remote}: https://{scp[1]}/{scp[2]})" if scp else ""
    raise PushError(
        f"deliver.push: {remote!r} is not an https:// URL, a file:// URL or an absolute path; "
        f"ssh and other transports are off: give the https:// URL{instead}, or push the "
        "branch yourself from the run's workspace"
    )


def resolve_remote(remote: str, *, user_repo: Path | None = None) -> str:
    """``deliver.push`` as a URL or path: as given, or a remote's name (``origin``) looked up,
    read only, in the user's repository ``user_repo`` (the run's clone has no remote)."""
    if "://" in remote or remote.startswith(("/", "~")):
        return os.path.expanduser(remote)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", remote):
        raise InputError(f"{remote!r} is not a URL, a path or a remote name", key="deliver.push")
    if user_repo is None:
        raise InputError(
            f"{remote!r} names a remote, and the ticket's repository is not a local one to "
            "look it up in",
            key="deliver.push",
            hint="give the repository's URL (https://...)",
        )
    git_dir = user_repo / ".git" if (user_repo / ".git").is_dir() else user_repo
    try:
        url = gitrepo.query(git_dir, "config", "--get", f"remote.{remote}.url", timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        raise InputError(
            f"{user_repo} has no remote {remote!r}",
            key="deliver.push",
            hint="give the repository's URL (https://...) or the name of one of its remotes",
        ) from None
    if "://" not in url and not os.path.isabs(url) and not _SCP.match(url):
        url = str((user_repo / url).resolve())  # a path relative to the repository
    return url


#: git's scp-like ssh address, ``git@github.com:octo/calc.git``.
_SCP = re.compile(r"(?:[\w.-]+@)?([\w-]+(?:\.[\w-]+)+):(?!//)(.+)")


def _basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def _redacted(text: str, secrets: list[str]) -> str:
    text = gitrepo.without_credentials(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _remote_head(
    workspace: Path, transport: str, url: str, hidden: dict[str, str], timeout: float
) -> str | None:
    """The branch the remote's ``HEAD`` names (its default branch), if it names one."""
    out = gitrepo.remote_command(
        workspace,
        transport,
        "ls-remote",
        "--symref",
        url,
        "HEAD",
        hidden_config=hidden,
        timeout=timeout,
    )
    for line in out.splitlines():
        ref, _, name = line.partition("\t")
        if name == "HEAD" and ref.startswith("ref: refs/heads/"):
            return ref.removeprefix("ref: refs/heads/")
    return None


def push(
    workspace: Path,
    remote_url: str,
    branch: str,
    *,
    base_branch: str,
    token_env: str | None = None,
    token_user: str = TOKEN_USER["github"],
    timeout: float = 300.0,
    commit: str | None = None,
) -> PushResult:
    """Push ``commit`` (default: the workspace's ``HEAD``) to ``refs/heads/<branch>`` at
    ``remote_url``, never forced.

    Refused before anything is pushed: ``branch`` equal to ``base_branch`` or to the remote's
    default (``HEAD``) branch. A remote branch with commits the run does not have is left
    alone (``PushError``): nothing is overwritten. For ``https://``, the token in the
    environment variable ``token_env`` goes in an ``Authorization`` header that git gets
    through its environment; no credential helper runs. Pushing again is a no-op.
    """
    transport, shown = _transport(remote_url)
    base = base_branch.removeprefix("refs/heads/")
    if branch == base:
        raise PushError(f"refusing to push to {branch!r}: it is the base branch")
    try:
        if branch.startswith("-"):
            raise subprocess.CalledProcessError(1, "check-ref-format")
        gitrepo.run(workspace, "check-ref-format", f"refs/heads/{branch}")
    except subprocess.CalledProcessError:
        raise PushError(f"{branch!r} is not a valid branch name") from None
    hidden: dict[str, str] = {}
    secrets: list[str] = []
    if transport != "file" and token_env:
        token = read_token(token_env, key="deliver.push_token_env")
        header = _basic(token_user, token)
        hidden["http.extraHeader"] = f"Authorization: {header}"
        secrets = [token, header.removeprefix("Basic ")]
    commit = commit or gitrepo.head(workspace)
    if not _SHA.fullmatch(commit):
        raise ValueError(f"not a commit id: {commit!r}")
    try:
        remote_head = _remote_head(workspace, transport, remote_url, hidden, timeout)
        if remote_head == branch:
            raise PushError(f"refusing to push to {branch!r}: it is the default branch of {shown}")
        out = gitrepo.remote_command(
            workspace,
            transport,
            "push",
            "--porcelain",
            "--no-follow-tags",
            "--recurse-submodules=no",
            "--no-verify",
            remote_url,
            f"{commit}:refs/heads/{branch}",  # no leading +: never forced
            hidden_config=hidden,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise PushError(f"git push to {shown} took longer than {timeout:.0f} s") from None
    except subprocess.CalledProcessError as exc:
        raise PushError(_push_failure(exc, shown, branch, secrets)) from None
    return PushResult(remote=shown, branch=branch, commit=commit, status=_status(out, shown))


def _ref_line(porcelain: str) -> tuple[str, str] | None:
    """``(flag, summary)`` of the one ref line of ``git push --porcelain``."""
    for line in porcelain.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and len(fields[0]) == 1:
            return fields[0], fields[2]
    return None


def _status(porcelain: str, shown: str) -> Literal["created", "updated", "up-to-date"]:
    ref = _ref_line(porcelain)
    flag = ref[0] if ref else ""
    if flag == "*":
        return "created"
    if flag == " ":
        return "updated"
    if flag == "=":
        return "up-to-date"
    raise PushError(f"git push to {shown} answered something unexpected: {porcelain[-500:]}")


def _push_failure(
    exc: subprocess.CalledProcessError, shown: str, branch: str, secrets: list[str]
) -> str:
    ref = _ref_line(exc.stdout or "")
    if ref and ref[0] == "!":
        return (
            f"the remote branch {branch} at {shown} has commits this run does not have "
            f"({ref[1]}); Dark Factory never force-pushes, so nothing was overwritten: "
            "look at that branch, then delete or rename it and push again"
        )
    err = (exc.stderr or "").strip().splitlines()
    detail = _redacted("\n".join(err[-6:]), secrets) or f"git exited with {exc.returncode}"
    hint = ""
    if re.search(r"40[13]|Authentication failed|could not read Username", detail):
        hint = (
            "\n  hint: the remote refused the credentials: set deliver.push_token_env (or "
            "the pull request's token_env) to a variable holding a token allowed to push"
        )
    return f"git push to {shown} failed:\n{detail}{hint}"
