"""Small real git repositories, made in ``tmp_path`` with the git command line, for tests/repo.

``make_repo(name, files)`` runs ``git init`` and commits ``files``; the ``Repo`` it returns
adds commits, branches and tags. ``snapshot(path)`` hashes every file under a directory
(``.git`` and its reflogs included) to prove a repository was not written.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pypi_local
import pytest

from darkfactory.config import RepoConfig

#: git for the tests' own repositories: no user or system config, a fixed identity.
GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class Repo:
    """A real repository in a temporary directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")

    def write(self, files: dict[str, str | bytes]) -> None:
        for rel, content in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")

    def commit(self, files: dict[str, str | bytes] | None = None, message: str = "change") -> str:
        self.write(files or {})
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")

    def branch(self, name: str, start: str = "HEAD") -> None:
        git(self.path, "branch", name, start)

    def tag(self, name: str) -> None:
        git(self.path, "tag", name)

    def git(self, *args: str) -> str:
        return git(self.path, *args)


MakeRepo = Callable[..., Repo]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """``make_repo(name="repo", files={...})``: a repository with one commit of ``files``."""

    def make(name: str = "repo", files: dict[str, str | bytes] | None = None) -> Repo:
        repo = Repo(tmp_path / name)
        repo.commit(files or {"README.md": "# a repository\n"}, "first")
        return repo

    return make


@pytest.fixture
def limits() -> RepoConfig:
    return RepoConfig()


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (links as their target text), each directory too."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                found[rel] = f"dir:{oct(path.stat().st_mode)}:{path.stat().st_mtime_ns}"
            else:
                st = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = f"{digest}:{oct(st.st_mode)}:{st.st_mtime_ns}"
    return found


#: A pytest plugin published only on ``plugin_index``: its fixture ``dfmark`` exists only when
#: the plugin is loaded (the verdict runner loads none by itself).
PLUGIN = "pytest-dfmark"


def plugin_wheel(dest: Path) -> Path:
    """``pytest_dfmark-1.0-py3-none-any.whl``: a module and a ``pytest11`` entry point."""
    info = "pytest_dfmark-1.0.dist-info"
    files = {
        "pytest_dfmark.py": "import pytest\n\n@pytest.fixture\ndef dfmark():\n    return 'plugin'\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: pytest-dfmark\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[pytest11]\ndfmark = pytest_dfmark\n",
    }

    def digest(text: str) -> str:
        raw = hashlib.sha256(text.encode()).digest()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    record = "".join(
        f"{path},sha256={digest(text)},{len(text.encode())}\n" for path, text in files.items()
    )
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    target = dest / "pytest_dfmark-1.0-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return target


@pytest.fixture
def plugin_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pypi_local.LocalIndex]:
    """An index on 127.0.0.1 serving ``pytest-dfmark``; PIP_INDEX_URL points at it meanwhile."""
    root = tmp_path / "plugin-index"
    (root / "files").mkdir(parents=True)
    whl = plugin_wheel(root / "files")
    for directory, links in (
        (root / "simple", f'<a href="{PLUGIN}/">{PLUGIN}</a>'),
        (root / "simple" / PLUGIN, f'<a href="../../files/{whl.name}">{whl.name}</a>'),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "index.html").write_text(f"<html><body>{links}</body></html>\n")
    with pypi_local.serve(root) as index:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        yield index
