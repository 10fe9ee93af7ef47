"""What a repository ticket delivers: the patch, pull_request.md, the push and the pull request.

The remote is a real local bare repository; the forges' APIs are a loopback test double
(forge_double.py) that checks every request. Nothing is sent beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import MakeRepo, Repo, git
from forge_double import ForgeDouble
from pydantic import ValidationError

from darkfactory.config import DeliverConfig, PullRequestConfig
from darkfactory.errors import InputError
from darkfactory.repo.baseline import Baseline
from darkfactory.repo.deliver import (
    BaselineComparison,
    PullRequestFacts,
    PushError,
    PushResult,
    Reproduction,
    RequirementEvidence,
    branch_for,
    change_summary,
    push,
    render_pull_request,
    resolve_remote,
    write_change_patch,
    write_pull_request,
)
from darkfactory.repo.forge import ForgeError, PullRequest, open_pull_request
from darkfactory.workspace import git as gitrepo

RUN_ID = "20250101-000000-fix-add-abcd"
BRANCH = f"darkfactory/{RUN_ID}"
LOGO = bytes(range(256)) * 4
BASE_FILES: dict[str, str | bytes] = {
    "README.md": "# calc\n",
    "calc/core.py": "def add(a, b):\n    return a - b\n",
    "tests/test_core.py": (
        "from calc.core import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
    ),
    "logo.png": LOGO,
    "old_name.py": "X = 1\n",
    "gone.txt": "bye\n",
}


@dataclass
class Delivery:
    user: Repo
    remote: Path
    workspace: Path
    base: str

    def head(self) -> str:
        return gitrepo.head(self.workspace)


def refs(remote: Path) -> dict[str, str]:
    out = git(remote, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ") for line in out.splitlines())


@pytest.fixture
def delivery(make_repo: MakeRepo, tmp_path: Path) -> Delivery:
    """A user's repository, its bare remote, and a run's clone with three phase commits."""
    user = make_repo("user", BASE_FILES)
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(user.path), str(remote))
    ws = tmp_path / "run" / "workspace"
    git(tmp_path, "clone", "-q", str(remote), str(ws))
    git(ws, "checkout", "-q", "-b", BRANCH)
    base = gitrepo.head(ws)
    # committed the way the flow commits each phase
    (ws / "tests" / "test_repro.py").write_text(
        "from calc.core import add\n\n\ndef test_add_two():\n    assert add(2, 2) == 4\n"
    )
    gitrepo.commit_all(ws, "reproduce: add(2, 2) returns 0")
    (ws / "calc" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "logo.png").write_bytes(LOGO[::-1])
    (ws / "gone.txt").unlink()
    (ws / "old_name.py").rename(ws / "new_name.py")
    gitrepo.commit_all(ws, "implement: add adds")
    (ws / "calc" / "core.py").write_text('def add(a, b):\n    """a + b"""\n    return a + b\n')
    gitrepo.commit_all(ws, "document: add's docstring")
    return Delivery(user=user, remote=remote, workspace=ws, base=base)


# -- change.patch ---------------------------------------------------------------------------


def test_change_patch_applies_to_a_fresh_clone_at_base(delivery: Delivery, tmp_path: Path) -> None:
    patch = write_change_patch(delivery.workspace, delivery.base, tmp_path / "run" / "change.patch")
    assert patch == tmp_path / "run" / "change.patch"
    head_tree = git(delivery.workspace, "rev-parse", "HEAD^{tree}")

    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(delivery.remote), str(fresh))
    git(fresh, "checkout", "-q", delivery.base)
    git(fresh, "apply", "--check", str(patch))
    git(fresh, "apply", "--index", str(patch))
    assert git(fresh, "write-tree") == head_tree  # binary, rename and deletion included

    am = tmp_path / "am"
    git(tmp_path, "clone", "-q", str(delivery.remote), str(am))
    git(am, "checkout", "-q", "-b", "replay", delivery.base)
    git(am, "am", "-q", str(patch))
    assert git(am, "rev-parse", "HEAD^{tree}") == head_tree
    subjects = git(am, "log", "--reverse", "--format=%s", f"{delivery.base}..HEAD").splitlines()
    assert subjects == [
        "reproduce: add(2, 2) returns 0",
        "implement: add adds",
        "document: add's docstring",
    ]


def test_a_branch_without_commits_gives_an_empty_patch(delivery: Delivery, tmp_path: Path) -> None:
    head = delivery.head()
    assert write_change_patch(delivery.workspace, head, tmp_path / "p").read_bytes() == b""


def test_the_patch_refuses_a_base_that_is_not_under_the_branch(
    delivery: Delivery, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not a commit id"):
        write_change_patch(delivery.workspace, "--output=/tmp/x", tmp_path / "p")
    other = delivery.user.commit({"x.txt": "x\n"}, "elsewhere")
    git(delivery.workspace, "fetch", "-q", str(delivery.user.path), "main")
    with pytest.raises(Exception, match="not an ancestor"):
        write_change_patch(delivery.workspace, other, tmp_path / "p")


def test_change_summary_counts_each_file_and_lists_the_phase_commits(delivery: Delivery) -> None:
    summary = change_summary(delivery.workspace, delivery.base)
    by_path = {f.path: (f.added, f.removed) for f in summary.files}
    assert by_path == {
        "calc/core.py": (2, 1),
        "gone.txt": (0, 1),
        "logo.png": (None, None),
        "old_name.py => new_name.py": (0, 0),
        "tests/test_repro.py": (5, 0),
    }
    assert (summary.added, summary.removed) == (7, 2)
    assert [c.subject for c in summary.commits] == [
        "reproduce: add(2, 2) returns 0",
        "implement: add adds",
        "document: add's docstring",
    ]
    assert summary.commits[-1].sha == delivery.head()


# -- pull_request.md ------------------------------------------------------------------------

FAILURE = "\n".join(
    [f"noise line {i}" for i in range(100)]
    + [
        "    def test_add_two():",
        ">       assert add(2, 2) == 4",
        "E       assert 0 == 4",
        "E        +  where 0 = add(2, 2)",
        "tests/test_repro.py:5: AssertionError",
    ]
)


def facts(delivery: Delivery, **overrides: Any) -> PullRequestFacts:
    at_base = Baseline(
        commit=delivery.base,
        test_command=("pytest",),
        outcomes={
            "tests/test_core.py::test_zero": "passed",
            "tests/test_core.py::test_one": "passed",
            "tests/test_core.py::test_flaky": "failed",
            "tests/test_core.py::test_old": "failed",
        },
    )
    at_end = Baseline(
        commit=delivery.head(),
        test_command=("pytest",),
        outcomes={
            "tests/test_core.py::test_zero": "passed",
            "tests/test_core.py::test_one": "passed",
            "tests/test_core.py::test_flaky": "passed",
            "tests/test_core.py::test_old": "failed",
            "tests/test_repro.py::test_add_two": "passed",
        },
    )
    values: dict[str, Any] = {
        "title": "Fix add: it subtracts",
        "summary": "`add(2, 2)` returns 0; it must return 4.",
        "kind": "bug",
        "run_id": RUN_ID,
        "branch": BRANCH,
        "base_ref": "main",
        "base_sha": delivery.base,
        "head_sha": delivery.head(),
        "changes": change_summary(delivery.workspace, delivery.base),
        "requirements": (
            RequirementEvidence(
                id="R1",
                text="add returns the sum of its arguments",
                tests=(("tests/test_repro.py::test_add_two", "passed"),),
            ),
            RequirementEvidence(
                id="R2",
                text="nothing that worked breaks",
                tests=(
                    ("tests/test_core.py::test_zero", "passed"),
                    ("tests/test_x.py::test[a`|b @octocat]", "failed"),
                ),
            ),
            RequirementEvidence(id="R3", text="documented", tests=()),
        ),
        "tests": BaselineComparison.of(at_base, at_end),
        "reproduction": Reproduction(
            test="tests/test_repro.py::test_add_two", failure_at_base=FAILURE, passes_at_end=True
        ),
    }
    return PullRequestFacts(**{**values, **overrides})


def test_pull_request_md_says_what_changed_why_and_what_proves_it(
    delivery: Delivery, tmp_path: Path
) -> None:
    pr = facts(delivery)
    path = write_pull_request(pr, tmp_path / "run" / "pull_request.md")
    text = path.read_text(encoding="utf-8")
    assert text == render_pull_request(pr)
    lines = text.splitlines()
    assert lines[0] == "# Fix add: it subtracts"
    assert lines[2] == "`add(2, 2)` returns 0; it must return 4."
    assert f"**Bug fix** · branch `{BRANCH}` onto `main` at `{delivery.base[:10]}`" in text

    # what changed: the files with their counts, the commits in order
    assert "this branch changes 5 files (+7 -2) in 3 commits, one per phase:" in text
    assert "To meet the ticket's 3 requirements (below)" in text
    assert "| `calc/core.py` | +2 | -1 |" in text
    assert "| `logo.png` | binary | binary |" in text
    assert "| `old_name.py => new_name.py` | +0 | -0 |" in text
    first, second, third = (text.index(s) for s in ("reproduce: ", "implement: ", "document: "))
    assert first < second < third
    assert "1. implement: add adds (`" in text
    assert "1. document: add's docstring" in text

    # requirements, each with its tests and their outcomes
    assert "1 of 3 requirements are proven by tests that pass." in text
    assert "- **R1**: add returns the sum of its arguments" in text
    assert "  - `tests/test_repro.py::test_add_two`: passed" in text
    assert "  - ``tests/test_x.py::test[a`|b @octocat]``: **failed**" in text  # inert
    assert "- **R3**: documented\n  - no test proves it" in text

    # the repository's suite at base against the end
    assert f"| Base `{delivery.base[:10]}` | 2 | 2 | 0 | 0 |" in text
    assert f"| End `{delivery.head()[:10]}` | 4 | 1 | 0 | 0 |" in text
    assert "**Still passing (PASS_TO_PASS):** 2 of the 2 tests that passed at base." in text
    assert "**Regressions:** none." in text
    assert "**Now passing (FAIL_TO_PASS):** `tests/test_core.py::test_flaky`" in text
    assert "**Failing at base and still failing** (not counted as regressions): `tests/" in text
    assert "**New tests:** 1, all passing." in text

    # the reproduction: its failure at base, verbatim, the end kept
    assert "`tests/test_repro.py::test_add_two` reproduces the bug." in text
    assert "it passes at the end." in text
    block = text.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert block.startswith("[earlier output left out]\n")
    assert block.endswith(
        "E       assert 0 == 4\nE        +  where 0 = add(2, 2)\n"
        "tests/test_repro.py:5: AssertionError"
    )
    assert "noise line 0\n" not in block and "noise line 99" in block
    assert "none from a model" in text


def test_pull_request_md_shows_regressions_and_keeps_workspace_names_inert(
    delivery: Delivery,
) -> None:
    at_base = Baseline(commit="a", test_command=(), outcomes={"t::a": "passed", "t::b": "passed"})
    at_end = Baseline(commit="b", test_command=(), outcomes={"t::a": "failed"})
    pr = facts(
        delivery,
        kind="feature",
        tests=BaselineComparison.of(at_base, at_end),
        reproduction=None,
        requirements=(),
    )
    text = render_pull_request(pr)
    assert "**Feature**" in text
    assert "0 of the 2 tests that passed at base." in text
    assert "**Regressions:** `t::a`, `t::b`" in text
    assert "reproduction" not in text.lower()
    assert "this branch changes 5 files" in text and "To meet" not in text

    evil = facts(
        delivery,
        reproduction=Reproduction(
            test="t", failure_at_base="```\n# not a heading\n````", passes_at_end=False
        ),
    )
    text = render_pull_request(evil)
    assert "**still fails at the end.**" in text
    assert "`````text\n```\n# not a heading\n````\n`````" in text  # the fence outlasts it


# -- config --------------------------------------------------------------------------------


def test_deliver_config_defaults_and_what_it_refuses() -> None:
    config = DeliverConfig.model_validate(
        {
            "push": "https://github.com/octo/calc.git",
            "pull_request": {"forge": "github", "repo": "octo/calc", "token_env": "GH_TOKEN"},
        }
    )
    assert config.pull_request is not None
    assert config.pull_request.draft is True
    assert config.pull_request.api_root() == "https://api.github.com"
    assert config.push_failed is False
    assert config.push_token() == ("GH_TOKEN", "x-access-token")
    gitlab = PullRequestConfig(forge="gitlab", repo="group/sub/calc", token_env="GL_TOKEN")
    assert gitlab.api_root() == "https://gitlab.com/api/v4"
    assert DeliverConfig(push="/srv/calc.git", pull_request=gitlab).push_token()[1] == "oauth2"
    assert DeliverConfig().push is None

    bad = [
        ({"pull_request": {"forge": "github", "repo": "o/r", "token_env": "T"}}, "needs push"),
        (
            {"push": "x", "pull_request": {"forge": "github", "repo": "o", "token_env": "T"}},
            "owner/name",
        ),
        (
            {"push": "x", "pull_request": {"forge": "gitlab", "repo": "a b", "token_env": "T"}},
            "GitLab",
        ),
        ({"push_token_env": "$TOKEN"}, "not an environment variable name"),
        (
            {
                "push": "x",
                "pull_request": {
                    "forge": "github",
                    "repo": "o/r",
                    "token_env": "T",
                    "api_url": "http://example.com/api",
                },
            },
            "https",
        ),
        (
            {"push": "x", "pull_request": {"forge": "bitbucket", "repo": "o/r", "token_env": "T"}},
            "forge",
        ),
        ({"push": "x", "pushh": "y"}, "pushh"),
    ]
    for data, words in bad:
        with pytest.raises(ValidationError, match=words):
            DeliverConfig.model_validate(data)
    loopback = PullRequestConfig(
        forge="github", repo="o/r", token_env="T", api_url="http://127.0.0.1:8080/"
    )
    assert loopback.api_root() == "http://127.0.0.1:8080"


def test_branch_for_a_finished_run() -> None:
    assert branch_for(RUN_ID, "delivered", False) == BRANCH
    assert branch_for(RUN_ID, "delivered", True) == BRANCH
    for status in ("failed", "escalated", "rejected", "budget_exhausted"):
        assert branch_for(RUN_ID, status, False) is None
        assert branch_for(RUN_ID, status, True) == f"{BRANCH}-failed"
    assert branch_for(RUN_ID, "awaiting_approval", True) is None


# -- push to a real bare repository ---------------------------------------------------------


class GitSpy:
    """Every argv and environment git is started with (subprocess.Popen, still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        real = subprocess.Popen
        spy = self

        class Recording(real):  # type: ignore[misc, valid-type]
            def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
                spy.calls.append((list(args), dict(kw.get("env") or {})))
                super().__init__(args, *a, **kw)

        monkeypatch.setattr(subprocess, "Popen", Recording)

    def argv(self, sub: str) -> list[list[str]]:
        return [argv for argv, _ in self.calls if sub in argv]


def test_push_creates_the_branch_and_leaves_the_base_branch_alone(
    delivery: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = GitSpy(monkeypatch)
    before = refs(delivery.remote)
    head = delivery.head()
    result = push(delivery.workspace, str(delivery.remote), BRANCH, base_branch="main")
    assert result == PushResult(str(delivery.remote), BRANCH, head, "created")
    assert refs(delivery.remote) == {**before, f"refs/heads/{BRANCH}": head}

    again = push(delivery.workspace, f"file://{delivery.remote}", BRANCH, base_branch="main")
    assert again.status == "up-to-date"
    assert refs(delivery.remote) == {**before, f"refs/heads/{BRANCH}": head}

    (delivery.workspace / "more.txt").write_text("more\n")
    newer = gitrepo.commit_all(delivery.workspace, "fix: round 2")
    delivery.user.git("remote", "add", "origin", "../remote.git")
    origin = resolve_remote("origin", user_repo=delivery.user.path)  # read in the user's repo
    assert origin == str(delivery.remote)
    assert push(delivery.workspace, origin, BRANCH, base_branch="main").status == "updated"
    assert refs(delivery.remote) == {**before, f"refs/heads/{BRANCH}": newer}

    pushes = spy.argv("push")
    assert len(pushes) == 3
    for argv in pushes:  # never forced
        assert not any(a.startswith("+") or a.startswith("--force") or a == "-f" for a in argv)
        assert argv[-1].endswith(f":refs/heads/{BRANCH}")


def test_a_diverged_remote_branch_is_refused_never_overwritten(
    delivery: Delivery, tmp_path: Path
) -> None:
    other = tmp_path / "someone-else"
    git(tmp_path, "clone", "-q", str(delivery.remote), str(other))
    git(other, "checkout", "-q", "-b", BRANCH)
    (other / "theirs.txt").write_text("theirs\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "someone else's work")
    git(other, "push", "-q", "origin", BRANCH)
    before = refs(delivery.remote)

    with pytest.raises(PushError, match="never force-pushes, so nothing was overwritten"):
        push(delivery.workspace, str(delivery.remote), BRANCH, base_branch="main")
    assert refs(delivery.remote) == before


def test_the_base_branch_and_the_remote_default_branch_are_refused(delivery: Delivery) -> None:
    git(delivery.remote, "branch", "trunk", "main")
    git(delivery.remote, "symbolic-ref", "HEAD", "refs/heads/trunk")
    before = refs(delivery.remote)
    ws, remote = delivery.workspace, str(delivery.remote)
    with pytest.raises(PushError, match="it is the base branch"):
        push(ws, remote, "main", base_branch="main")
    with pytest.raises(PushError, match="it is the base branch"):
        push(ws, remote, "release", base_branch="refs/heads/release")
    with pytest.raises(PushError, match="default branch"):
        push(ws, remote, "trunk", base_branch="main")
    for bad in ("bad..name", "-f", "x@{-1}", "a b"):
        with pytest.raises(PushError, match="not a valid branch name"):
            push(ws, remote, bad, base_branch="main")
    assert refs(delivery.remote) == before


@pytest.mark.parametrize(
    ("remote", "words"),
    [
        ("git@github.com:octo/calc.git", "https://github.com/octo/calc.git"),
        ("ssh://git@github.com/octo/calc.git", "not an https:// URL"),
        ("ext::sh -c touch% /tmp/pwned", "not an https:// URL"),
        ("relative/calc.git", "not an https:// URL"),
        ("--upload-pack=touch /tmp/pwned", "not an https:// URL"),
        ("http://example.com/octo/calc.git", "use https://"),
        ("https://me:hunter2@github.com/octo/calc.git", "no credentials in the URL"),
    ],
)
def test_remotes_a_run_may_not_use_are_refused_before_git_runs(
    delivery: Delivery, monkeypatch: pytest.MonkeyPatch, remote: str, words: str
) -> None:
    spy = GitSpy(monkeypatch)
    with pytest.raises(PushError, match=words):
        push(delivery.workspace, remote, BRANCH, base_branch="main")
    assert spy.calls == []


def test_a_remote_name_the_users_repository_does_not_have_is_an_input_error(
    delivery: Delivery,
) -> None:
    with pytest.raises(InputError, match="has no remote 'upstream'"):
        resolve_remote("upstream", user_repo=delivery.user.path)
    with pytest.raises(InputError, match="not a local one"):
        resolve_remote("origin", user_repo=None)
    assert resolve_remote("https://h.example/o/r.git") == "https://h.example/o/r.git"


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A loopback git server that refuses everything (403) and keeps the headers it got."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_git_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    _Refusing.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/octo/calc.git", _Refusing.seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_push_token_goes_in_a_header_never_in_argv_or_an_error(
    delivery: Delivery,
    monkeypatch: pytest.MonkeyPatch,
    refusing_git_server: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = refusing_git_server
    token = "ghp_" + "S3cretTok3n" * 3
    monkeypatch.setenv("DF_TEST_PUSH_TOKEN", token)
    spy = GitSpy(monkeypatch)
    with pytest.raises(PushError) as caught:
        push(delivery.workspace, url, BRANCH, base_branch="main", token_env="DF_TEST_PUSH_TOKEN")
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert seen and seen[0]["authorization"] == f"Basic {basic}"
    message = str(caught.value)
    assert token not in message and basic not in message
    assert "403" in message and "push_token_env" in message
    assert spy.calls
    for argv, env in spy.calls:
        assert not any(token in a or basic in a for a in argv)
        assert not any(k.startswith("GIT_TRACE") for k in env)
    (_, ls_env), *_ = [call for call in spy.calls if "ls-remote" in call[0]]
    assert ls_env["GIT_CONFIG_KEY_0"] == "http.extraHeader"  # the token's one way in


def test_a_push_token_variable_that_is_not_set_is_an_input_error(
    delivery: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DF_TEST_UNSET_TOKEN", raising=False)
    with pytest.raises(InputError, match="DF_TEST_UNSET_TOKEN is not set"):
        push(
            delivery.workspace,
            "https://127.0.0.1:9/o/r.git",
            BRANCH,
            base_branch="main",
            token_env="DF_TEST_UNSET_TOKEN",
        )


# -- the forges' APIs, against the loopback test double -------------------------------------

TOKEN = "tok_" + "Sup3rS3cret" * 3
BODY = "# Fix add\n\nThe body, from pull_request.md.\n"


@pytest.fixture
def forge_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def github(forge_token: str) -> Iterator[ForgeDouble]:
    with ForgeDouble("github", repo="octo/calc", token=forge_token, branches={"main", BRANCH}) as d:
        yield d
    assert d.violations == []


@pytest.fixture
def gitlab(forge_token: str) -> Iterator[ForgeDouble]:
    with ForgeDouble("gitlab", repo="group/sub/calc", token=forge_token) as d:
        yield d
    assert d.violations == []


def config_for(double: ForgeDouble, **overrides: Any) -> PullRequestConfig:
    values = {
        "forge": double.forge,
        "repo": double.repo,
        "token_env": "DF_TEST_FORGE_TOKEN",
        "api_url": double.api_url,
        **overrides,
    }
    return PullRequestConfig.model_validate(values)


def open_it(config: PullRequestConfig, **overrides: Any) -> PullRequest:
    args = {"branch": BRANCH, "base": "main", "title": "Fix add: it subtracts", "body": BODY}
    return open_pull_request(config, **{**args, **overrides}, timeout=5)


def test_github_opens_a_draft_pull_request_with_the_body(github: ForgeDouble) -> None:
    pr = open_it(config_for(github))
    assert pr == PullRequest(
        number=1, url="https://github.com/octo/calc/pull/1", draft=True, created=True
    )
    assert [(r.method, r.path) for r in github.requests] == [
        ("GET", "/repos/octo/calc/pulls"),
        ("POST", "/repos/octo/calc/pulls"),
    ]
    listed, posted = github.requests
    assert listed.query == {"state": ["open"], "per_page": ["100"]}
    assert posted.body == {
        "title": "Fix add: it subtracts",
        "head": BRANCH,
        "base": "main",
        "body": BODY,
        "draft": True,
    }
    for seen in github.requests:
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["accept"] == "application/vnd.github+json"
        assert seen.headers["x-github-api-version"] == "2022-11-28"


def test_github_a_second_call_returns_the_open_pull_request_without_posting(
    github: ForgeDouble,
) -> None:
    config = config_for(github)
    first = open_it(config)
    second = open_it(config, title="another title", body="another body")
    assert second == PullRequest(number=first.number, url=first.url, draft=True, created=False)
    assert len(github.posts()) == 1
    assert len(github.pulls) == 1


def test_github_an_open_pull_request_the_list_missed_is_returned_not_duplicated(
    github: ForgeDouble,
) -> None:
    config = config_for(github)
    open_it(config)
    github.stale_list_once = True  # opened by someone else between looking and opening
    again = open_it(config)
    assert (again.number, again.created) == (1, False)
    assert len(github.pulls) == 1


def test_github_a_wrong_token_is_a_clear_401_without_the_token(
    github: ForgeDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", "tok_wrong_" + "x" * 20)
    with pytest.raises(ForgeError) as caught:
        open_it(config_for(github))
    message = str(caught.value)
    assert caught.value.status == 401
    assert "GitHub refused the token in DF_TEST_FORGE_TOKEN (401: Bad credentials)" in message
    assert "tok_wrong_" not in message and TOKEN not in message
    assert github.posts() == []


def test_github_an_unpushed_branch_is_a_clear_422_without_the_token(github: ForgeDouble) -> None:
    with pytest.raises(ForgeError) as caught:
        open_it(config_for(github), branch="darkfactory/never-pushed")
    message = str(caught.value)
    assert caught.value.status == 422
    assert "422: Validation Failed; head invalid" in message
    assert "was pushed to octo/calc (deliver.push)" in message
    assert TOKEN not in message


def test_github_an_unknown_repository_is_a_clear_404(github: ForgeDouble) -> None:
    with pytest.raises(
        ForgeError, match=r"no repository octo/other .*\(404: Not Found\)"
    ) as caught:
        open_it(config_for(github, repo="octo/other"))
    assert TOKEN not in str(caught.value)


def test_github_a_body_over_its_limit_is_cut_with_a_note(github: ForgeDouble) -> None:
    open_it(config_for(github), body="x" * 70_000)
    sent = github.posts()[0].body["body"]
    assert len(sent) <= 65_000 and sent.endswith("in the run directory.)*\n")


def test_gitlab_opens_a_draft_merge_request_with_the_body(gitlab: ForgeDouble) -> None:
    mr = open_it(config_for(gitlab))
    assert mr == PullRequest(
        number=1,
        url="https://gitlab.com/group/sub/calc/-/merge_requests/1",
        draft=True,
        created=True,
    )
    path = "/api/v4/projects/group%2Fsub%2Fcalc/merge_requests"
    assert [(r.method, r.path) for r in gitlab.requests] == [("GET", path), ("POST", path)]
    assert gitlab.requests[0].query == {"state": ["opened"], "per_page": ["100"]}
    assert gitlab.posts()[0].body == {
        "source_branch": BRANCH,
        "target_branch": "main",
        "title": "Draft: Fix add: it subtracts",
        "description": BODY,
    }
    assert all(r.headers["private-token"] == TOKEN for r in gitlab.requests)
    assert all("authorization" not in r.headers for r in gitlab.requests)


def test_gitlab_a_second_call_returns_the_open_merge_request_without_posting(
    gitlab: ForgeDouble,
) -> None:
    config = config_for(gitlab, repo="42")  # the project's numeric id works too
    first = open_it(config)
    assert open_it(config) == PullRequest(first.number, first.url, True, created=False)
    assert len(gitlab.posts()) == 1
    gitlab.stale_list_once = True  # the 409 "already exists" path
    assert open_it(config).created is False
    assert len(gitlab.pulls) == 1


def test_gitlab_not_a_draft_when_configured_so(gitlab: ForgeDouble) -> None:
    mr = open_it(config_for(gitlab, draft=False))
    assert mr.draft is False
    assert gitlab.posts()[0].body["title"] == "Fix add: it subtracts"


def test_gitlab_a_wrong_token_is_a_clear_401_without_the_token(
    gitlab: ForgeDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", "glpat-wrong-" + "y" * 20)
    with pytest.raises(ForgeError) as caught:
        open_it(config_for(gitlab))
    assert caught.value.status == 401
    assert "GitLab refused the token in DF_TEST_FORGE_TOKEN (401: 401 Unauthorized)" in str(
        caught.value
    )
    assert "glpat-wrong-" not in str(caught.value)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_forge_that_refuses_connections_is_a_clear_error(forge_token: str) -> None:
    config = PullRequestConfig(
        forge="github",
        repo="octo/calc",
        token_env="DF_TEST_FORGE_TOKEN",
        api_url=f"http://127.0.0.1:{closed_port()}",
    )
    with pytest.raises(
        ForgeError,
        match=r"cannot reach GitHub's API at http://127\.0\.0\.1:\d+ "
        r"\(GET /repos/octo/calc/pulls\): .*[Cc]onnection refused",
    ):
        open_it(config)


def test_a_forge_that_does_not_answer_is_a_timeout_not_a_hang(forge_token: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection, never answers
        config = PullRequestConfig(
            forge="gitlab",
            repo="7",
            token_env="DF_TEST_FORGE_TOKEN",
            api_url=f"http://127.0.0.1:{silent.getsockname()[1]}/api/v4",
        )
        with pytest.raises(ForgeError, match=r"no answer within 0\.5 s"):
            open_pull_request(config, branch=BRANCH, base="main", title="t", body="b", timeout=0.5)


def test_the_forge_token_variable_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DF_TEST_FORGE_TOKEN", raising=False)
    config = PullRequestConfig(
        forge="github", repo="o/r", token_env="DF_TEST_FORGE_TOKEN", api_url="http://127.0.0.1:9"
    )
    with pytest.raises(InputError, match="DF_TEST_FORGE_TOKEN is not set"):
        open_it(config)


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every request with a redirect, and counts the requests."""

    count: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        type(self).count.append(1)
        self.send_response(301)
        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_redirect_is_not_followed_and_the_token_not_sent_on(forge_token: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    _Redirecting.count = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = PullRequestConfig(
            forge="github",
            repo="octo/calc",
            token_env="DF_TEST_FORGE_TOKEN",
            api_url=f"http://127.0.0.1:{server.server_address[1]}",
        )
        with pytest.raises(
            ForgeError, match=r"answered 301 .* a redirect to http://127\.0\.0\.1:9/"
        ):
            open_it(config)
    finally:
        server.shutdown()
        server.server_close()
    assert _Redirecting.count == [1]
