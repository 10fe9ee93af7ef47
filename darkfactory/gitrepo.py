"""The run's workspace is a real git repository with one commit per phase."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Dark Factory",
    "GIT_AUTHOR_EMAIL": "darkfactory@localhost",
    "GIT_COMMITTER_NAME": "Dark Factory",
    "GIT_COMMITTER_EMAIL": "darkfactory@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k.startswith(("PATH", "LANG", "LC_", "HOME"))}
    env.update(_ENV)
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return out.stdout.strip()


def init(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "commit.gpgsign", "false")


def commit_all(repo: Path, message: str) -> str | None:
    """Commit everything in the work tree; the new commit's sha, or None if nothing changed."""
    _git(repo, "add", "-A")
    if not _git(repo, "status", "--porcelain"):
        return None
    _git(repo, "commit", "-q", "--no-verify", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def head(repo: Path) -> str:
    """The sha of the current commit."""
    return _git(repo, "rev-parse", "HEAD")


def log(repo: Path) -> list[str]:
    """Commit subjects, oldest first."""
    text = _git(repo, "log", "--reverse", "--format=%s")
    return text.splitlines() if text else []


def changed_files(repo: Path, since: str | None = None) -> list[str]:
    """Files changed by the commits after ``since`` (all files when None)."""
    if since is None:
        text = _git(repo, "ls-files")
    else:
        text = _git(repo, "diff", "--name-only", since, "HEAD")
    return text.splitlines() if text else []


def stash_uncommitted(repo: Path, message: str) -> bool:
    """Set aside uncommitted work (kept in ``git stash list``); True if there was any."""
    if not _git(repo, "status", "--porcelain"):
        return False
    _git(repo, "stash", "push", "--include-untracked", "-m", message)
    return True
