"""The repository a ticket names: every refusal (exit code 2), and a clone that never writes it.

Real repositories made with git in ``tmp_path`` (conftest.py); nothing reaches a network:
the unreachable URL is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import MakeRepo, git, snapshot

from darkfactory.config import RepoConfig
from darkfactory.errors import ExitCode, InputError
from darkfactory.repo.errors import RepoError
from darkfactory.repo.source import clone_into, open_repository

BRANCH = "darkfactory/20250101-000000-fix-it-abcd"


def refused(location: str, base: str | None = None, limits: RepoConfig | None = None) -> RepoError:
    with pytest.raises(RepoError) as caught:
        open_repository(location, base, limits=limits or RepoConfig())
    assert isinstance(caught.value, InputError)
    assert caught.value.exit_code == ExitCode.BAD_INPUT == 2
    return caught.value


# -- the user's repository is never written ------------------------------------------------


def test_the_clone_leaves_the_users_repository_byte_identical(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = make_repo(files={"app.py": "X = 1\n", "tests/test_app.py": "def test(): pass\n"})
    repo.branch("feature")
    repo.tag("v1.0")
    base = repo.commit({"app.py": "X = 2\n"}, "second")
    (repo.path / "app.py").write_text("X = 'uncommitted'\n")  # a dirty working tree
    (repo.path / "notes.txt").write_text("untracked\n")
    before = snapshot(repo.path)
    assert "logs/HEAD" in {k.removeprefix(".git/") for k in before}

    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        sha = clone_into(source, tmp_path / "ws", BRANCH)

    assert snapshot(repo.path) == before, "the user's repository or working tree changed"
    assert not list(repo.path.glob(".git/**/*.lock"))
    assert sha == base
    ws = tmp_path / "ws"
    assert git(ws, "rev-parse", "HEAD") == base
    assert git(ws, "symbolic-ref", "--short", "HEAD") == BRANCH
    assert git(ws, "status", "--porcelain") == ""
    assert (ws / "app.py").read_text() == "X = 2\n"  # the commit, not the dirty file
    assert not (ws / "notes.txt").exists()
    assert git(ws, "remote") == "", "the clone must not point back at the user's repository"
    assert not (ws / ".git" / "objects" / "info" / "alternates").exists()
    assert not (ws / ".git" / "hooks").exists()
    # Objects are copies: no file of the clone shares an inode with the user's repository.
    theirs = {
        (p.stat().st_dev, p.stat().st_ino)
        for p in (repo.path / ".git" / "objects").rglob("*")
        if p.is_file()
    }
    ours = {
        (p.stat().st_dev, p.stat().st_ino)
        for p in (ws / ".git" / "objects").rglob("*")
        if p.is_file()
    }
    assert not theirs & ours


def test_hooks_and_config_of_the_users_repository_run_nothing(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = make_repo(files={"app.py": "X = 1\n"})
    marker = tmp_path / "ran"
    hook = f"#!/bin/sh\ntouch {marker}\n"
    for name in ("post-checkout", "reference-transaction", "pre-auto-gc", "post-index-change"):
        path = repo.path / ".git" / "hooks" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(hook)
        path.chmod(0o755)
    script = tmp_path / "fsmonitor.sh"
    script.write_text(hook)
    script.chmod(0o755)
    repo.git("config", "core.fsmonitor", str(script))
    (repo.path / "dirty.txt").write_text("so that status looks at the tree\n")
    before = snapshot(repo.path)
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        assert source.warnings
        clone_into(source, tmp_path / "ws", BRANCH)
    assert not marker.exists()
    assert snapshot(repo.path) == before


@pytest.mark.parametrize("how", ["path", "file-url", "bare"])
def test_a_path_a_file_url_and_a_bare_repository(
    make_repo: MakeRepo, tmp_path: Path, how: str
) -> None:
    repo = make_repo(files={"a.txt": "a\n"})
    location = str(repo.path)
    if how == "file-url":
        location = f"file://{repo.path}"
    elif how == "bare":
        git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(tmp_path / "bare.git"))
        location = str(tmp_path / "bare.git")
    with open_repository(location, None, limits=RepoConfig()) as source:
        assert (source.base, source.base_sha) == ("HEAD", repo.head())
        assert (source.files, source.size_bytes) == (1, 2)
        assert source.warnings == []
        assert clone_into(source, tmp_path / "ws", BRANCH) == repo.head()
    assert (tmp_path / "ws" / "a.txt").read_text() == "a\n"


def test_the_base_may_be_a_branch_a_tag_or_a_commit(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(files={"v.txt": "one\n"})
    first = repo.head()
    repo.tag("v1")
    repo.branch("old")
    repo.commit({"v.txt": "two\n"}, "second")
    for n, base in enumerate(["v1", "old", first, first[:10], "HEAD~1", "main~1"]):
        with open_repository(str(repo.path), base, limits=RepoConfig()) as source:
            assert source.base_sha == first, base
            clone_into(source, tmp_path / f"ws{n}", BRANCH)
        assert (tmp_path / f"ws{n}" / "v.txt").read_text() == "one\n"
    with open_repository(str(repo.path), "main", limits=RepoConfig()) as source:
        assert source.base_sha == repo.head()


def test_a_detached_head_off_every_branch_is_cloned(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    repo.git("checkout", "-q", "--detach")
    detached = repo.commit({"d.txt": "detached\n"}, "on no branch")
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        assert clone_into(source, tmp_path / "ws", BRANCH) == detached
    assert (tmp_path / "ws" / "d.txt").read_text() == "detached\n"


def test_the_clone_needs_an_empty_workspace(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "x").write_text("x")
    with (
        open_repository(str(repo.path), None, limits=RepoConfig()) as source,
        pytest.raises(FileExistsError),
    ):
        clone_into(source, tmp_path / "ws", BRANCH)


# -- uncommitted changes -------------------------------------------------------------------


def test_uncommitted_changes_are_left_out_and_said(make_repo: MakeRepo) -> None:
    repo = make_repo(files={"app.py": "X = 1\n"})
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        assert source.warnings == []
    (repo.path / "app.py").write_text("X = 3\n")
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        assert source.warnings == [
            f"runs on HEAD {repo.head()[:12]}; uncommitted changes are not included"
        ]
    assert (repo.path / "app.py").read_text() == "X = 3\n"


# -- refusals --------------------------------------------------------------------------------


def test_not_a_git_repository(tmp_path: Path, make_repo: MakeRepo) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    err = refused(str(plain))
    assert f"{plain} is not a git repository: there is no .git" in err.message

    err = refused(str(tmp_path / "missing"))
    assert "is not a git repository: no such directory" in err.message

    repo = make_repo(files={"pkg/mod.py": "x = 1\n"})
    err = refused(str(repo.path / "pkg"))
    assert "is not a git repository" in err.message
    assert err.hint is not None and f"inside the repository {repo.path}" in err.hint

    (tmp_path / "gitfile").mkdir()
    (tmp_path / "gitfile" / ".git").write_text("gitdir: /somewhere/else\n")
    err = refused(str(tmp_path / "gitfile"))
    assert "its .git is a file (a linked worktree or a submodule)" in err.message


def test_a_repository_without_commits(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    git(tmp_path / "empty", "init", "-q")
    err = refused(str(tmp_path / "empty"))
    assert "has no commits yet" in err.message


def test_an_unknown_base_ref_names_it_and_lists_branches_and_tags(make_repo: MakeRepo) -> None:
    repo = make_repo()
    repo.branch("develop")
    repo.tag("v1.0")
    err = refused(str(repo.path), "relese-2")
    assert err.key == "base"
    assert f"ref 'relese-2' does not exist in {repo.path}" in err.message
    assert err.hint == "branches: develop, main; tags: v1.0"
    assert "ref 'relese-2'" in str(err) and "hint: branches" in str(err)


@pytest.mark.parametrize("ref", ["-x", "--upload-pack=touch", "a b", "", "x\n"])
def test_a_base_that_is_no_ref_at_all(make_repo: MakeRepo, ref: str) -> None:
    err = refused(str(make_repo().path), ref)
    assert "is not a ref" in err.message


def test_a_base_on_no_branch_or_tag(make_repo: MakeRepo) -> None:
    repo = make_repo()
    lost = repo.commit({"x.txt": "x\n"}, "to be dropped")
    repo.git("reset", "-q", "--hard", "HEAD~1")  # only the reflog has it now
    err = refused(str(repo.path), lost)
    assert "is on no branch or tag" in err.message
    assert err.hint is not None and "git branch" in err.hint


def test_a_repository_over_the_size_limits(make_repo: MakeRepo) -> None:
    files: dict[str, str | bytes] = {f"f{i}.txt": f"{i}\n" for i in range(5)}
    files["big.bin"] = os.urandom(3 * 1024 * 1024)
    repo = make_repo(files=files)
    err = refused(str(repo.path), limits=RepoConfig(max_files=4))
    assert err.key == "repo.max_files"
    assert "6 files, over the limit of 4" in err.message
    assert err.hint is not None and "raise repo.max_files in config/factory.yaml" in err.hint

    err = refused(str(repo.path), limits=RepoConfig(max_mb=2))
    assert err.key == "repo.max_mb"
    assert "3.0 MB, over the limit of 2 MB" in err.message

    err = refused(str(repo.path), limits=RepoConfig(max_files=1, max_mb=1))
    assert err.key == "repo.max_files and repo.max_mb"

    with open_repository(str(repo.path), None, limits=RepoConfig(max_files=6, max_mb=4)) as ok:
        assert ok.files == 6


def test_an_unreachable_url_fails_within_seconds() -> None:
    started = time.monotonic()
    err = refused("https://127.0.0.1:1/nothing/here.git")  # a closed port on loopback
    assert time.monotonic() - started < 15
    assert err.message.startswith("cannot reach https://127.0.0.1:1/nothing/here.git: ")
    assert err.hint is not None and "check the URL" in err.hint


def test_a_password_in_a_url_is_never_shown() -> None:
    err = refused("https://user:s3cret-token@127.0.0.1:1/x.git")
    assert "s3cret-token" not in str(err)
    assert "https://127.0.0.1:1/x.git" in err.message


@pytest.mark.parametrize(
    "location",
    ["ssh://git@example.invalid/x.git", "git@example.invalid:org/x.git", "git://h/x", "http://h/x"],
)
def test_other_transports_are_refused(location: str) -> None:
    err = refused(location)
    assert "not supported" in err.message
    assert err.hint is not None and "https://" in err.hint


def test_a_credential_in_gits_complaint_is_never_shown() -> None:
    # git may name the proxy it used (HTTPS_PROXY, passed on for an https transfer) or a
    # remote with its credentials; what it says reaches the console and the service's jobs.
    from darkfactory.repo.source import _git_says

    said = (
        "error: whatever\nfatal: unable to access 'https://u:t0ken@git.example/x.git/': "
        "Received HTTP code 407 from proxy http://proxyuser:pr0xy-s3cret@10.0.0.1:3128"
    )
    text = _git_says(subprocess.CalledProcessError(128, ["git"], stderr=said))
    assert "t0ken" not in text and "pr0xy-s3cret" not in text and "proxyuser" not in text
    assert "https://git.example/x.git/" in text and "http://10.0.0.1:3128" in text
