"""The hostile-agent suite's shared parts: planted secrets, a marker the host must never run.

A test here plays an attacker: a scripted playbook (a test tool, not AI) makes the agents
write hostile content, and the test then looks for what must not have happened. Each
secret is planted by the test itself (an environment variable, a file under a temporary
HOME, a ``.env`` in the working directory); ``Planted.assert_absent`` searches every file
of a run directory (and any recorded cassette, which holds every prompt) for each of them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Planted:
    """Secrets that exist on the host during a test, and where each one lives."""

    env_value: str
    home_value: str
    dotenv_value: str
    home: Path
    cwd: Path
    #: A path a hostile command or host step would create if the host ran agent code.
    marker: Path = field(default_factory=Path)

    @property
    def values(self) -> tuple[str, str, str]:
        return (self.env_value, self.home_value, self.dotenv_value)

    def assert_absent(self, *places: Path) -> None:
        """No planted secret in any file under ``places`` (files or directories)."""
        found = []
        for place in places:
            files = [place] if place.is_file() else sorted(place.rglob("*"))
            for path in files:
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                found += [f"{path}: {v}" for v in self.values if v.encode() in data]
        assert not found, f"a planted secret reached the run: {found}"

    def assert_marker_absent(self) -> None:
        assert not self.marker.exists(), f"the host ran agent-written code: {self.marker}"


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Planted]:
    """Plant three secrets and a marker path; the test runs in a directory with a ``.env``."""
    token = secrets.token_hex(8)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    p = Planted(
        env_value=f"env-secret-{token}",
        home_value=f"home-secret-{token}",
        dotenv_value=f"dotenv-secret-{token}",
        home=home,
        cwd=tmp_path / "cwd",
        marker=tmp_path / "PWNED",
    )
    (home / ".ssh" / "id_ed25519").write_text(f"-----KEY {p.home_value}-----\n")
    (home / ".netrc").write_text(f"machine example.org password {p.home_value}\n")
    p.cwd.mkdir()
    (p.cwd / ".env").write_text(f"DF_SECURITY_TEST_API_KEY={p.dotenv_value}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DF_SECURITY_TEST_TOKEN", p.env_value)
    monkeypatch.chdir(p.cwd)
    yield p
    os.environ.pop("DF_SECURITY_TEST_API_KEY", None)  # if a .env loader set it
