"""The repository a ticket names: checked (``open_repository``), then cloned into a run.

A local path, ``file://`` or ``https://`` URL. The user's repository is only ever read,
by hardened git (``workspace/git.py``) with no optional locks: no fetch into it, no index
refresh, no reflog entry, no lock file; its working tree is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit, urlunsplit

from darkfactory.config import RepoConfig
from darkfactory.repo.errors import RepoError
from darkfactory.workspace import git as gitrepo

#: Seconds an https repository has to answer ``git ls-remote``.
REACH_TIMEOUT_S = 20.0
#: Seconds a clone may take (an https one: from the network; a local one: a copy).
CLONE_TIMEOUT_S = 900.0
#: Branches and tags named when a base ref does not exist.
SHOWN_REFS = 8
_REF_OK = re.compile(r"[^\s\x00-\x1f\x7f~^:?*\[\\]+(?:[~^]\d*)*")


@dataclass
class RepoSource:
    """A repository checked to be workable: where it is, its base commit, its size."""

    #: As the user gave it, any password in a URL left out.
    location: str
    #: What a clone reads from: the user's repository, or a bare copy of a URL's.
    clone_from: str
    #: The git directory reads go to (the user's ``.git``, a bare repository, the copy).
    git_dir: Path
    #: Names the repository across runs, for the environment cache (a real path, or a URL).
    identity: str
    #: The base ref as given (``HEAD`` when none) and the commit it names.
    base: str
    base_sha: str
    files: int
    size_bytes: int
    #: What the user should know (uncommitted changes left out).
    warnings: list[str] = field(default_factory=list)
    #: A temporary copy of a URL's repository; ``close`` removes it.
    _copy: Path | None = None
    #: The branch the base names (``HEAD``: the branch it points to); None for a tag, a
    #: commit or a detached ``HEAD``.
    base_branch: str | None = None
    #: The repository's default branch: its ``origin/HEAD``, else the branch its ``HEAD``
    #: points to (a URL's: the remote's ``HEAD``); None when neither names one.
    default_branch: str | None = None

    def close(self) -> None:
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def __enter__(self) -> RepoSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_repository(location: str, base: str | None, *, limits: RepoConfig) -> RepoSource:
    """``location`` checked: a git repository, ``base`` (default ``HEAD``) in it, in limits.

    Every refusal is a ``RepoError`` (exit code 2). A URL's repository is cloned into a
    temporary bare copy first (``RepoSource.close`` removes it).
    """
    ref = base if base is not None else "HEAD"
    _check_ref_text(ref)
    if location.startswith("https://"):
        return _open_url(location, ref, limits)
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", location) and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise RepoError(
            f"{_shown(location)}: {scheme}:// repositories are not supported",
            hint="use an https:// URL, or clone it yourself and pass the local path",
        )
    if re.match(r"[\w.-]+@[\w.-]+:", location):
        raise RepoError(
            f"{location}: ssh repositories (user@host:path) are not supported",
            hint="use an https:// URL, or clone it yourself and pass the local path",
        )
    path = unquote(urlsplit(location).path) if location.startswith("file://") else location
    return _open_local(location, Path(path).expanduser(), ref, limits)


def clone_into(source: RepoSource, workspace: Path, branch: str) -> str:
    """Clone the base commit into ``workspace`` (new or empty), on the new ``branch``.

    The user's repository is only read; the clone has no remote (nothing in the run can
    fetch from or push to it). Returns the base commit's sha.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", branch) or ".." in branch:
        raise ValueError(f"not a branch name Dark Factory makes: {branch!r}")
    gitrepo.clone(source.clone_from, workspace, timeout=CLONE_TIMEOUT_S)
    gitrepo.run(workspace, "remote", "remove", "origin")
    gitrepo.run(workspace, "config", "commit.gpgsign", "false")
    gitrepo.run(workspace, "checkout", "-q", "-b", branch, source.base_sha)
    head = gitrepo.head(workspace)
    if head != source.base_sha:  # git itself would have to be broken
        raise RuntimeError(f"the clone is at {head}, not at the base {source.base_sha}")
    return head


# -- a local repository ----------------------------------------------------------------


def _open_local(location: str, path: Path, ref: str, limits: RepoConfig) -> RepoSource:
    shown = _shown(location)
    if not path.is_dir():
        what = "no such directory" if not path.exists() else "not a directory"
        raise RepoError(f"{shown} is not a git repository: {what}", hint="check the path")
    top = Path(os.path.realpath(path))
    dotgit = top / ".git"
    if dotgit.is_symlink() or dotgit.is_file():
        raise RepoError(
            f"{shown} is not a git repository Dark Factory can read: its .git is a "
            f"{'link' if dotgit.is_symlink() else 'file'} (a linked worktree or a submodule)",
            hint="pass the main repository's directory",
        )
    if dotgit.is_dir():
        git_dir, work_tree = dotgit, top
    elif all((top / n).exists() for n in ("HEAD", "objects", "refs")):
        git_dir, work_tree = top, None  # a bare repository
    else:
        raise RepoError(
            f"{shown} is not a git repository: there is no .git in {top}",
            hint=_inside_hint(top),
        )
    try:
        gitrepo.query(git_dir, "rev-parse", "--git-dir")
    except subprocess.CalledProcessError as exc:
        raise RepoError(f"{shown} is not a git repository: {_git_says(exc)}") from None
    sha = _resolve(git_dir, ref, shown)
    files, size = _measure(git_dir, sha, shown, limits)
    warnings = []
    if work_tree is not None and _uncommitted(git_dir, work_tree):
        warnings.append(f"runs on {ref} {sha[:12]}; uncommitted changes are not included")
    clone_from = str(work_tree if work_tree is not None else git_dir)
    return RepoSource(
        shown,
        clone_from,
        git_dir,
        str(top),
        ref,
        sha,
        files,
        size,
        warnings,
        base_branch=_branch_named(git_dir, ref),
        default_branch=_default_branch(git_dir),
    )


def _inside_hint(path: Path) -> str:
    for parent in path.parents:
        if (parent / ".git").exists():
            return f"it is inside the repository {parent}: pass that directory"
    return "pass the directory that holds the repository's .git"


def _uncommitted(git_dir: Path, work_tree: Path) -> bool:
    out = gitrepo.query(
        git_dir,
        "status",
        "--porcelain=v1",
        "--ignore-submodules=all",
        "--untracked-files=normal",
        work_tree=work_tree,
    )
    return bool(out)


# -- a repository behind an https URL ----------------------------------------------------


def _open_url(url: str, ref: str, limits: RepoConfig) -> RepoSource:
    shown = _shown(url)
    try:
        refs = gitrepo.ls_remote(url, timeout=REACH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RepoError(
            f"cannot reach {shown}: no answer within {REACH_TIMEOUT_S:g} s",
            hint="check the URL and your network, or clone it yourself and pass the path",
        ) from None
    except subprocess.CalledProcessError as exc:
        raise RepoError(
            f"cannot reach {shown}: {_git_says(exc).replace(url, shown)}",
            hint="check the URL and your network, or clone it yourself and pass the path",
        ) from None
    names = {line.split("\t", 1)[1] for line in refs.splitlines() if "\t" in line}
    wanted = {ref, f"refs/heads/{ref}", f"refs/tags/{ref}"}
    if not re.fullmatch(r"[0-9a-f]{7,64}", ref) and not names & wanted:
        raise RepoError(
            f"ref {ref!r} does not exist in {shown}",
            key="base",
            hint=_refs_hint(sorted(names)),
        )
    copy = Path(tempfile.mkdtemp(prefix="darkfactory-repo-"))
    try:
        gitrepo.clone(url, copy / "repo.git", bare=True, timeout=CLONE_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(copy, ignore_errors=True)
        why = (
            _git_says(exc).replace(url, shown)
            if isinstance(exc, subprocess.CalledProcessError)
            else f"it took longer than {CLONE_TIMEOUT_S:g} s"
        )
        raise RepoError(f"cannot clone {shown}: {why}") from None
    git_dir = copy / "repo.git"
    try:
        sha = _resolve(git_dir, ref, shown)
        files, size = _measure(git_dir, sha, shown, limits)
        branch, default = _branch_named(git_dir, ref), _default_branch(git_dir)
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise
    return RepoSource(
        shown,
        str(git_dir),
        git_dir,
        shown,
        ref,
        sha,
        files,
        size,
        [],
        copy,
        base_branch=branch,
        default_branch=default,  # a bare clone's HEAD is the remote's
    )


# -- shared checks -----------------------------------------------------------------------


def _check_ref_text(ref: str) -> None:
    if not ref or len(ref) > 255 or ref.startswith("-") or not _REF_OK.fullmatch(ref):
        raise RepoError(
            f"{ref!r} is not a ref: name a branch, a tag or a commit",
            key="base",
            hint="e.g. --base main, --base v1.2.0 or --base 3f2c1a9",
        )


def _resolve(git_dir: Path, ref: str, shown: str) -> str:
    """The commit ``ref`` names, reachable from a ref or HEAD (so a clone has it)."""
    try:
        sha = gitrepo.query(
            git_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        )
    except subprocess.CalledProcessError:
        if ref == "HEAD":
            raise RepoError(f"{shown} has no commits yet", hint="commit something first") from None
        raise RepoError(
            f"ref {ref!r} does not exist in {shown}",
            key="base",
            hint=_refs_hint(_local_refs(git_dir)),
        ) from None
    head = _try(git_dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    on_a_ref = _try(git_dir, "for-each-ref", "--count=1", f"--contains={sha}", "--format=x")
    if sha != head and not on_a_ref:
        raise RepoError(
            f"the base {ref!r} ({sha[:12]}) is on no branch or tag of {shown}, so a clone "
            "would not have it",
            key="base",
            hint=f"put a branch on it (git branch darkfactory-base {sha[:12]}) and pass that",
        )
    return sha


def _branch_named(git_dir: Path, ref: str) -> str | None:
    """The branch ``ref`` names (``HEAD``: the branch it points to; ``origin/x``: ``x``);
    None for a tag, a commit, an expression (``main~1``) or a detached ``HEAD``."""
    full = _try(git_dir, "rev-parse", "--symbolic-full-name", ref)  # ref checked: no "-"
    if full.startswith("refs/heads/"):
        return full.removeprefix("refs/heads/") or None
    if full.startswith("refs/remotes/"):
        _, _, branch = full.removeprefix("refs/remotes/").partition("/")
        return branch if branch and branch != "HEAD" else None
    return None


def _default_branch(git_dir: Path) -> str | None:
    """Where the repository's pull requests go: its ``origin/HEAD`` (the remote's default
    branch, as the clone recorded it), else the branch its ``HEAD`` points to."""
    remote = _try(git_dir, "symbolic-ref", "-q", "refs/remotes/origin/HEAD")
    if remote.startswith("refs/remotes/origin/"):
        return remote.removeprefix("refs/remotes/origin/")
    head = _try(git_dir, "symbolic-ref", "-q", "HEAD")
    if head.startswith("refs/heads/") and _try(git_dir, "rev-parse", "--verify", "-q", head):
        return head.removeprefix("refs/heads/")
    return None


def _measure(git_dir: Path, sha: str, shown: str, limits: RepoConfig) -> tuple[int, int]:
    """(files, bytes) the commit tracks; ``RepoError`` past ``repo.max_files``/``max_mb``."""
    listing = gitrepo.query(git_dir, "ls-tree", "-r", "-l", "-z", "--full-tree", sha, timeout=600)
    files = size = 0
    for entry in listing.split("\0"):
        meta = entry.split("\t", 1)[0].split()
        if len(meta) == 4 and meta[1] == "blob":
            files += 1
            size += int(meta[3]) if meta[3].isdigit() else 0
    mb = size / (1024 * 1024)
    over = []
    if files > limits.max_files:
        over.append(("repo.max_files", f"{files} files, over the limit of {limits.max_files}"))
    if mb > limits.max_mb:
        over.append(("repo.max_mb", f"{mb:.1f} MB, over the limit of {limits.max_mb} MB"))
    if over:
        keys = " and ".join(k for k, _ in over)
        raise RepoError(
            f"{shown} at {sha[:12]} is too big: {'; '.join(w for _, w in over)}",
            key=keys,
            hint=f"raise {keys} in config/factory.yaml (repo:) to work on it",
        )
    return files, size


def _local_refs(git_dir: Path) -> list[str]:
    out = _try(git_dir, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags")
    return out.splitlines()


def _refs_hint(refs: list[str]) -> str:
    branches = [r.removeprefix("refs/heads/") for r in refs if r.startswith("refs/heads/")]
    tags = [
        r.removeprefix("refs/tags/")
        for r in refs
        if r.startswith("refs/tags/") and not r.endswith("^{}")
    ]

    def few(names: list[str]) -> str:
        more = f" (and {len(names) - SHOWN_REFS} more)" if len(names) > SHOWN_REFS else ""
        return ", ".join(names[:SHOWN_REFS]) + more if names else "(none)"

    return f"branches: {few(branches)}; tags: {few(tags)}"


def _try(git_dir: Path, *args: str) -> str:
    """``git ARGS`` on ``git_dir``, empty when git fails."""
    try:
        return gitrepo.query(git_dir, *args)
    except subprocess.CalledProcessError:
        return ""


def _git_says(exc: subprocess.CalledProcessError) -> str:
    """git's last line of complaint, without a credential a URL in it may carry."""
    lines = [ln.strip() for ln in str(exc.stderr or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else f"git exit code {exc.returncode}"
    return gitrepo.without_credentials(text.removeprefix("fatal: "))


def _shown(location: str) -> str:
    """``location`` without the password or token a URL may carry."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if parts.username is None and parts.password is None:
        return location
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
