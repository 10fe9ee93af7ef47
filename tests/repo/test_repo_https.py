"""A ticket on a repository behind an ``https://`` URL: a real TLS server on loopback.

The server is Python's own HTTP server, wrapped in TLS with a certificate made for
127.0.0.1 by openssl, serving a bare repository over git's "dumb" HTTP protocol. It records
every request: a run only reads (GET and HEAD), never pushes. git trusts the certificate
only through ``GIT_SSL_CAINFO``, the user's setting a company CA needs; without it the run
is refused with exit 2 and leaves nothing behind. The command-line checks of a closed port
and of the size limits are here too.
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git, snapshot
from runhelp import NEEDS_BWRAP, config_with, report_of
from test_repo_run import bug_ticket, calc_repo, playbook, run

from darkfactory.cli import main

__all__ = ["calc_repo"]  # the fixture, shared with test_repo_run


class _Server:
    def __init__(self, root: Path, cert: Path, key: Path) -> None:
        self.requests: list[tuple[str, str]] = []
        seen = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                seen.append(("GET", self.path))
                super().do_GET()

            def do_HEAD(self) -> None:
                seen.append(("HEAD", self.path))
                super().do_HEAD()

            def do_POST(self) -> None:  # git's smart protocol and any push: refused
                seen.append(("POST", self.path))
                self.send_error(405)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def https_repo(tmp_path: Path, calc_repo: Any) -> Iterator[tuple[str, Path, _Server]]:
    """``(url, ca_file, server)``: the calc repository, served over https on loopback."""
    root = tmp_path / "served"
    root.mkdir()
    bare = root / "calc.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(calc_repo.path), str(bare)], check=True)
    git(bare, "update-server-info")  # what the dumb protocol reads (info/refs)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            *subject,
            *files,
        ],
        check=True,
        capture_output=True,
    )
    server = _Server(root, cert, key)
    try:
        yield f"https://127.0.0.1:{server.port}/calc.git", cert, server
    finally:
        server.close()


@NEEDS_BWRAP
@pytest.mark.e2e
def test_a_bug_on_an_https_repository_is_delivered_and_the_server_is_only_read(
    tmp_path: Path,
    calc_repo: Any,
    https_repo: tuple[str, Path, _Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, cert, server = https_repo
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))
    before = snapshot(calc_repo.path)
    code, run_dir = run(
        tmp_path, bug_ticket(tmp_path, calc_repo.path), playbook(tmp_path), "--repo", url
    )
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    ws = run_dir / "workspace"
    assert git(ws, "merge-base", "HEAD", git(calc_repo.path, "rev-parse", "v1.0")) == git(
        calc_repo.path, "rev-parse", "v1.0"
    )
    assert "calc/__init__.py" in git(ws, "diff", "--name-only", "v1.0", "HEAD")
    assert server.requests and {m for m, _ in server.requests} <= {"GET", "HEAD"}
    assert any(p.startswith("/calc.git/info/refs") for _, p in server.requests)
    assert snapshot(calc_repo.path) == before


def test_an_untrusted_certificate_is_refused_with_exit_2_and_nothing_left(
    tmp_path: Path,
    calc_repo: Any,
    https_repo: tuple[str, Path, _Server],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _, _ = https_repo
    for name in ("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    code, err, out = _run_cli(tmp_path, calc_repo, capsys, "--repo", url)
    assert code == 2
    assert f"cannot reach {url}" in err and "certificate" in err.lower()
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("extra", "factory", "says"),
    [
        (["--repo", "https://127.0.0.1:1/nothing.git"], {}, "cannot reach https://127.0.0.1:1/"),
        ([], {"max_files": 2}, "repo.max_files"),
    ],
    ids=["closed-port", "too-many-files"],
)
def test_an_unreachable_url_or_a_repository_over_the_limits_exits_2_from_the_cli(
    tmp_path: Path,
    calc_repo: Any,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    factory: dict[str, Any],
    says: str,
) -> None:
    code, err, out = _run_cli(tmp_path, calc_repo, capsys, *extra, **factory)
    assert code == 2 and says in err
    assert not out.exists() or not any(out.iterdir())


def _run_cli(
    tmp_path: Path,
    calc_repo: Any,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    **repo_limits: Any,
) -> tuple[int, str, Path]:
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs"), **repo_limits})
    out = tmp_path / "runs"
    book = playbook(tmp_path)
    ticket = bug_ticket(tmp_path, calc_repo.path)
    argv = ["run", str(ticket), "--model", f"scripted:{book}", "--config", str(config)]
    code = main([*argv, "--out", str(out), *extra])
    return code, capsys.readouterr().err, out
