"""Host git runs nothing a model wrote: nested repositories, hostile user config, attributes.

The unit tests drive ``gitrepo`` on a repository in a temporary directory; the end-to-end
tests play variants of the example playbook in which the developer plants a nested
repository (with the file tools, or with git and python through ``run_command``) or the
user's own git config is hostile, and check that the host ran nothing, the run still
delivered and no ``.git`` reached a commit.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dockerd import docker_engine  # noqa: F401  (a fixture)
from runhelp import NEEDS_BWRAP, events, example_playbook, only_run, report_of, run_spec

from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import paths as workspace
from darkfactory.workspace.paths import PathRefused

if TYPE_CHECKING:
    from conftest import Planted  # tests/security/conftest.py


def payload(marker: Path) -> str:
    """A shell command that leaves ``marker`` if the host ever runs it."""
    return f"touch {shlex.quote(str(marker))}"


def clean_git(repo: Path, *args: str) -> str:
    """The output of a git that reads no config but the repository's (to check results)."""
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    argv = ["git", f"--git-dir={repo / '.git'}", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


def tree(repo: Path) -> list[tuple[str, str]]:
    """(mode, path) of every entry of HEAD."""
    out = clean_git(repo, "ls-tree", "-r", "--full-tree", "HEAD")
    return [(line.split()[0], line.split("\t", 1)[1]) for line in out.splitlines()]


def assert_no_git_committed(repo: Path) -> None:
    entries = tree(repo)
    assert entries, "nothing was committed"
    assert not [p for mode, p in entries if mode == "160000"], "a gitlink was committed"
    dotgit = [p for _, p in entries if any(gitrepo.is_dotgit(c) for c in p.split("/"))]
    assert not dotgit, f"git metadata was committed: {dotgit}"


def host_git(repo: Path, *args: str) -> None:
    """Plain git, as a model's command in the sandbox would run it."""
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    ident = ["-c", "user.name=m", "-c", "user.email=m@m", "-c", "core.hooksPath=/dev/null"]
    subprocess.run(
        ["git", "-C", str(repo), *ident, *args], env=env, check=True, capture_output=True
    )


def plant_nested_repo(repo: Path, marker: Path) -> None:
    """``vendor/``: a real repository with a commit whose config, attributes and hooks all
    run the payload; ``link/.git`` a symlink to it; ``file/.git`` a gitfile naming it."""
    vendor = repo / "vendor"
    vendor.mkdir()
    (vendor / "lib.py").write_text("X = 1\n")
    host_git(vendor, "init", "-q", "-b", "main")
    host_git(vendor, "add", "-A")
    host_git(vendor, "commit", "-q", "-m", "vendored")
    (vendor / ".gitattributes").write_text("* filter=x diff=x\n")
    with (vendor / ".git" / "config").open("a") as fh:
        fh.write(
            f"[core]\n\tfsmonitor = {payload(marker)}\n"
            f'[filter "x"]\n\tclean = {payload(marker)}; cat\n\tsmudge = {payload(marker)}; cat\n'
            f'[diff "x"]\n\ttextconv = {payload(marker)}; cat\n'
        )
    hooks = vendor / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("pre-commit", "post-commit", "post-index-change", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\n{payload(marker)}\n")
        (hooks / hook).chmod(0o755)
    (repo / "link").mkdir()
    (repo / "link" / ".git").symlink_to("../vendor/.git")
    (repo / "file").mkdir()
    (repo / "file" / ".git").write_text("gitdir: ../vendor/.git\n")


# -- unit: gitrepo on a repository in tmp_path ---------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    gitrepo.init(ws)
    (ws / "a.txt").write_text("a\n")
    assert gitrepo.commit_all(ws, "first") is not None
    return ws


@pytest.mark.parametrize(
    "name",
    [".git", ".GIT", ".Git", "git~1", "GIT~1", ".git.", ".git ", ".git. .", ".git::$DATA"],
)
def test_git_metadata_names_are_recognised_as_git_does(name: str) -> None:
    assert gitrepo.is_dotgit(name)


@pytest.mark.parametrize("name", [".gitignore", ".gitattributes", ".gitmodules", "git", "x.git"])
def test_other_names_are_not_git_metadata(name: str) -> None:
    assert not gitrepo.is_dotgit(name)


def test_a_nested_repository_is_removed_and_never_runs(repo: Path, planted: Planted) -> None:
    plant_nested_repo(repo, planted.marker)
    # vendor/ is a gitlink in the index already, as a commit before this check made it.
    sha = (repo / "vendor" / ".git" / "refs" / "heads" / "main").read_text().strip()
    host_git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},vendor")
    os.utime(repo / "vendor" / "lib.py", (0, 0))  # racy: a git looking in would re-clean it
    assert gitrepo.commit_all(repo, "second") is not None
    planted.assert_marker_absent()
    assert not any((repo / d / ".git").exists() for d in ("vendor", "link", "file"))
    assert not (repo / "link" / ".git").is_symlink()
    assert_no_git_committed(repo)
    assert ("100644", "vendor/lib.py") in tree(repo)
    assert gitrepo.log(repo) == ["first", "second"]
    assert "vendor/lib.py" in gitrepo.changed_files(repo, gitrepo.head(repo) + "~1")
    planted.assert_marker_absent()


def test_nested_git_removal_never_follows_links(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / ".git").mkdir(parents=True)
    (outside / ".git" / "HEAD").write_text("keep\n")
    (outside / "sub" / ".git").mkdir(parents=True)
    (repo / "linked").symlink_to(outside, target_is_directory=True)  # not walked into
    (repo / "deep" / "a" / ".GIT").mkdir(parents=True)
    (repo / "deep" / "a" / ".GIT" / "x").write_text("x")
    (repo / "deep" / "git~1").write_text("x")
    (repo / "deep" / ".git.").mkdir()
    (repo / "deep" / ".git.").joinpath("in").symlink_to(outside / ".git" / "HEAD")
    (repo / "out").mkdir()
    (repo / "out" / ".git").symlink_to(outside / ".git", target_is_directory=True)
    (repo / ".GIT").mkdir()  # not the repository's own .git
    assert shutil.rmtree.avoids_symlink_attacks  # what remove_nested_git relies on
    removed = gitrepo.remove_nested_git(repo)
    assert removed == [".GIT", "deep/.git.", "deep/a/.GIT", "deep/git~1", "out/.git"]
    assert (outside / ".git" / "HEAD").read_text() == "keep\n"
    assert (outside / "sub" / ".git").is_dir()
    assert (repo / "linked").is_symlink() and (repo / ".git" / "HEAD").is_file()
    assert gitrepo.remove_nested_git(repo) == []
    assert gitrepo.commit_all(repo, "second") is not None  # git would refuse .GIT paths
    assert_no_git_committed(repo)


def test_linked_git_metadata_files_cannot_fail_every_commit(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "modules").write_text('[submodule "x"]\n\tpath = x\n\turl = ../x\n')
    for name in (".gitmodules", ".gitattributes", "sub/.gitignore", ".mailmap"):
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).symlink_to(tmp_path / "modules")
    (repo / "kept.py").write_text("x = 1\n")
    assert gitrepo.commit_all(repo, "second") is not None
    assert ("100644", "kept.py") in tree(repo)
    assert not any(p.is_symlink() for p in repo.rglob(".git*"))
    assert (tmp_path / "modules").is_file()


def test_the_users_git_config_and_environment_are_not_read(
    repo: Path, planted: Planted, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = payload(planted.marker)
    hooks = planted.home / "hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "prepare-commit-msg", "post-commit", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\n{run}\n")
        (hooks / hook).chmod(0o755)
    hostile = (
        f"[core]\n\tfsmonitor = {run}\n\thooksPath = {hooks}\n\tpager = {run}; cat\n"
        f'[filter "x"]\n\tclean = {run}; cat\n\tsmudge = {run}; cat\n'
        f'[diff "x"]\n\ttextconv = {run}; cat\n\tcommand = {run}\n'
        f"[diff]\n\texternal = {run}\n"
        f"[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = {hooks / 'pre-commit'}\n"
        f"[log]\n\tshowSignature = true\n"
    )
    (planted.home / ".gitconfig").write_text(hostile)
    xdg = planted.home / ".config"
    (xdg / "git").mkdir(parents=True)
    (xdg / "git" / "config").write_text(hostile)
    (xdg / "git" / "attributes").write_text("* filter=x diff=x\n")
    (tmp_path / "system.gitconfig").write_text(hostile)
    other = tmp_path / "other"
    host_git(tmp_path, "init", "-q", str(other))
    fake_git = repo / "git"  # found through a "." on PATH if git ran from the cwd by name
    fake_git.write_text(f"#!/bin/sh\n{run}\n")
    fake_git.chmod(0o755)
    for name, value in {
        "XDG_CONFIG_HOME": str(xdg),
        "GIT_CONFIG_SYSTEM": str(tmp_path / "system.gitconfig"),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": run,
        "GIT_CONFIG_PARAMETERS": f"'core.fsmonitor'='{run}'",
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(other),
        "GIT_EXTERNAL_DIFF": run,
        "GIT_PAGER": run,
        "PATH": f".:{os.environ['PATH']}",
    }.items():
        monkeypatch.setenv(name, value)
    (repo / ".gitattributes").write_text("* filter=x diff=x\n")
    (repo / "b.txt").write_text("b\n")
    first = gitrepo.head(repo)
    assert gitrepo.commit_all(repo, "second") is not None
    planted.assert_marker_absent()
    assert sorted(gitrepo.changed_files(repo, first)) == [".gitattributes", "b.txt", "git"]
    assert gitrepo.log(repo) == ["first", "second"]
    (repo / "b.txt").write_text("changed\n")
    assert gitrepo.stash_uncommitted(repo, "partial") is True
    planted.assert_marker_absent()
    assert (repo / "b.txt").read_text() == "b\n"  # no smudge filter on the way back either
    assert clean_git(repo, "cat-file", "-p", "HEAD:b.txt") == "b\n"  # no clean filter ran
    assert not clean_git(other, "rev-list", "--all"), "a commit went to the user's GIT_DIR"


@pytest.mark.parametrize("kind", ["symlink", "gitfile"])
def test_git_refuses_a_workspace_whose_git_is_not_a_directory(
    tmp_path: Path, kind: str, repo: Path
) -> None:
    ws = tmp_path / "other-ws"
    ws.mkdir()
    if kind == "symlink":
        (ws / ".git").symlink_to(repo / ".git", target_is_directory=True)
    else:
        (ws / ".git").write_text(f"gitdir: {repo / '.git'}\n")
    with pytest.raises(gitrepo.UnsafeRepository, match="not a directory"):
        gitrepo.head(ws)


@pytest.mark.parametrize(
    "path",
    ["vendor/.git/config", "vendor/.git", "a/b/.GIT/HEAD", "x/git~1/config", "src/.git./h"],
)
def test_file_tools_refuse_to_write_git_metadata_at_any_depth(tmp_path: Path, path: str) -> None:
    with pytest.raises(PathRefused, match="nested repositories are not kept"):
        workspace.resolve(tmp_path, path, write=True)
    assert workspace.resolve(tmp_path, path, write=False)  # reading is harmless


def test_file_tools_refuse_git_metadata_behind_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "vendor" / ".git").mkdir(parents=True)
    (tmp_path / "v").symlink_to("vendor/.git", target_is_directory=True)
    with pytest.raises(PathRefused, match=r"leads through a symlink to 'vendor/\.git/config'"):
        workspace.resolve(tmp_path, "v/config", write=True)


# -- end to end: the hostile developer, real crew, real sandbox ---------------------------


def with_developer_steps(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The example playbook; the developer takes ``steps`` before it writes the code."""
    book = example_playbook()
    dev = book["roles"]["developer"]
    book["roles"]["developer"] = [dev[0], *steps, *dev[1:]]
    return book


def run_hostile(
    tmp_path: Path, planted: Planted, book: dict[str, Any], backend: str = "bwrap"
) -> Path:
    out = tmp_path / "runs"
    code = run_spec(out, book, backend=backend)
    run = only_run(out)
    report = report_of(run)
    planted.assert_marker_absent()
    assert (code, report["status"]) == (0, "delivered"), report["reason"]
    assert report["acceptance"]["passed"] == report["acceptance"]["total"] == 8
    assert_no_git_committed(run / "workspace")
    planted.assert_absent(run)
    return run


def write(path: str, content: str) -> dict[str, Any]:
    return {"tool": "write_file", "args": {"path": path, "content": content}}


@NEEDS_BWRAP
@pytest.mark.e2e
def test_a_nested_repository_written_with_the_file_tools_is_refused(
    tmp_path: Path, planted: Planted
) -> None:
    config = f"[core]\n\tfsmonitor = {payload(planted.marker)}\n"
    book = with_developer_steps(
        [
            write("vendor/.git/HEAD", "ref: refs/heads/main\n"),
            # The refusal reached the model: the next step's prompt holds it.
            {**write("vendor/.git/config", config), "expect": "nested repositories are not kept"},
            write("vendor/.GIT/config", config),
            write("vendor/.git", "gitdir: ../.git\n"),
            write("vendor/lib.py", "X = 1\n"),
        ]
    )
    run = run_hostile(tmp_path, planted, book)
    ws = run / "workspace"
    assert not (ws / "vendor" / ".git").exists() and not (ws / "vendor" / ".GIT").exists()
    refused = [e["path"] for e in events(run, "file_op") if e["ok"] is False]
    assert refused == [
        "vendor/.git/HEAD",
        "vendor/.git/config",
        "vendor/.GIT/config",
        "vendor/.git",
    ]
    assert ("100644", "vendor/lib.py") in tree(ws)
    assert events(run, "security") == []  # nothing got through to be removed


def nested_repo_by_git(marker: Path) -> str:
    """What the developer's ``sh -c`` runs in the sandbox: a real repository with a commit,
    whose config and hooks run the payload (set after the commit: it runs nowhere there)."""
    run = payload(marker)
    hooks = " ".join(("pre-commit", "post-commit", "post-index-change", "reference-transaction"))
    return "\n".join(
        [
            "set -e",
            "git init -q vendor",
            "echo 'X = 1' > vendor/lib.py",
            "git -C vendor add -A",
            "git -C vendor -c user.name=m -c user.email=m@m commit -q -m vendored",
            f"git -C vendor config core.fsmonitor {shlex.quote(run)}",
            f"git -C vendor config filter.x.clean {shlex.quote(run + '; cat')}",
            "printf '* filter=x\\n' > vendor/.gitattributes",
            f"for h in {hooks}; do",
            f"  printf '#!/bin/sh\\n%s\\n' {shlex.quote(run)} > vendor/.git/hooks/$h",
            "  chmod +x vendor/.git/hooks/$h",
            "done",
            "mkdir link && ln -s ../vendor/.git link/.git",
            "echo ok",
        ]
    )


#: The same without git (the docker image has none): loose objects written by python.
NESTED_REPO_BY_PYTHON = """
import hashlib, os, sys, zlib
def put(kind, body):
    data = f"{kind} {len(body)}".encode() + b"\\0" + body
    sha = hashlib.sha1(data).hexdigest()
    os.makedirs(f"vendor/.git/objects/{sha[:2]}", exist_ok=True)
    with open(f"vendor/.git/objects/{sha[:2]}/{sha[2:]}", "wb") as fh:
        fh.write(zlib.compress(data))
    return sha
blob = put("blob", b"X = 1\\n")
tree = put("tree", b"100644 lib.py\\0" + bytes.fromhex(blob))
who = "m <m@m> 0 +0000"
commit = put("commit", f"tree {tree}\\nauthor {who}\\ncommitter {who}\\n\\nvendored\\n".encode())
os.makedirs("vendor/.git/refs/heads")
with open("vendor/.git/refs/heads/main", "w") as fh:
    fh.write(commit + "\\n")
run = sys.argv[1]
files = {
    "vendor/.git/HEAD": "ref: refs/heads/main\\n",
    "vendor/.git/config": f"[core]\\n\\tfsmonitor = {run}\\n[filter \\"x\\"]\\n\\tclean = {run}; cat\\n",
    "vendor/.gitattributes": "* filter=x\\n",
    "vendor/lib.py": "X = 1\\n",
    "file/.git": "gitdir: ../vendor/.git\\n",
}
for path, text in files.items():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
os.makedirs("link")
os.symlink("../vendor/.git", "link/.git")
print("ok")
"""


def assert_commanded_and_removed(run: Path, expected: set[str]) -> None:
    """The developer's command really planted the repositories, and the host removed them."""
    execs = [e for e in events(run, "sandbox_exec") if e["argv"][0] in ("sh", "python3")]
    assert execs and execs[0]["exit_code"] == 0, execs
    removed = events(run, "security")
    assert removed and removed[0]["what"] == "nested_git_removed"
    assert removed[0]["phase"] == "implement"
    assert set(removed[0]["paths"]) == expected


@NEEDS_BWRAP
@pytest.mark.e2e
def test_a_nested_repository_made_with_git_in_the_sandbox_is_removed(
    tmp_path: Path, planted: Planted
) -> None:
    command = {
        "tool": "run_command",
        "args": {"argv": ["sh", "-c", nested_repo_by_git(planted.marker)]},
    }
    run = run_hostile(tmp_path, planted, with_developer_steps([command]))
    assert_commanded_and_removed(run, {"vendor/.git", "link/.git"})
    ws = run / "workspace"
    assert not (ws / "vendor" / ".git").exists() and not (ws / "link" / ".git").is_symlink()
    assert ("100644", "vendor/lib.py") in tree(ws)


@pytest.mark.e2e
@pytest.mark.parametrize("backend", [pytest.param("bwrap", marks=NEEDS_BWRAP), "docker"])
def test_a_nested_repository_made_by_a_command_is_removed_on_every_backend(
    tmp_path: Path, planted: Planted, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "docker":
        request.getfixturevalue("docker_engine")
    argv = ["python3", "-c", NESTED_REPO_BY_PYTHON, payload(planted.marker)]
    book = with_developer_steps([{"tool": "run_command", "args": {"argv": argv}}])
    run = run_hostile(tmp_path, planted, book, backend=backend)
    assert_commanded_and_removed(run, {"vendor/.git", "link/.git", "file/.git"})


@NEEDS_BWRAP
@pytest.mark.e2e
def test_the_users_own_git_config_runs_nothing_on_a_workspace_with_attributes(
    tmp_path: Path, planted: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = payload(planted.marker)
    (planted.home / ".gitconfig").write_text(
        f"[core]\n\tfsmonitor = {run}\n"
        f'[filter "x"]\n\tclean = {run}; cat\n\tsmudge = {run}; cat\n'
        f'[diff "x"]\n\ttextconv = {run}; cat\n'
    )
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", run)
    book = with_developer_steps([write(".gitattributes", "* filter=x diff=x\n")])
    run_dir = run_hostile(tmp_path, planted, book)
    assert ("100644", ".gitattributes") in tree(run_dir / "workspace")
