"""A real ``darkfactory serve`` on a loopback port, for the service's tests.

The server runs as its own process (as a user starts it), in a folder of the test's own
with a copy of the repository's config (plus ``service.yaml`` when a test gives one); runs
are played by the scripted model (a test tool, not AI) from playbooks in that folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from runhelp import REPO, config_with, example_playbook, write_playbook

from darkfactory.cli import EXAMPLE_SPEC

TERMINAL = ("delivered", "failed", "escalated", "rejected", "budget_exhausted", "cancelled")


@dataclass
class Server:
    root: Path
    url: str
    proc: subprocess.Popen[str]
    tokens: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def client(self, who: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(kw.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


def start_server(
    root: Path,
    *,
    jobs: int = 1,
    service: dict[str, Any] | None = None,
    tokens: dict[str, str] | None = None,
    factory: dict[str, Any] | None = None,
    port: int = 0,
    extra_env: dict[str, str] | None = None,
    broker: str | None = None,
    store: Path | None = None,
) -> Server:
    """``darkfactory serve --port 0`` in ``root``; returns once it answers."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config"
    if not config.is_dir():
        config_with(root, **(factory or {}))
        if service is not None:
            (config / "service.yaml").write_text(yaml.safe_dump(service), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DARKFACTORY_")}
    env.update({f"TOKEN_{name.upper()}": value for name, value in (tokens or {}).items()})
    env["PYTHONPATH"] = str(REPO)
    env.update(extra_env or {})
    argv = [
        sys.executable, "-m", "darkfactory", "serve", "--port", str(port), "--jobs", str(jobs),
        "--out", str(root / "runs"), "--config", str(config), "--sandbox", "bwrap",
    ]  # fmt: skip
    if broker is not None:
        argv += ["--broker", broker, "--store", str(store)]
    log = (root / "server.log").open("a", encoding="utf-8")
    proc = subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first.startswith("darkfactory serve: "):
        proc.kill()
        raise AssertionError(
            f"the server did not start: {first!r}\n{(root / 'server.log').read_text()}"
        )
    url = first.split()[2]
    server = Server(root, url, proc, dict(tokens or {}), argv, env, dict(extra_env or {}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer within 30 s")


def restart(server: Server) -> Server:
    """The same server again (same folder, config and runs), on a new port."""
    return start_server(server.root, tokens=server.tokens, extra_env=server.extra_env)


def spec_body(**extra: Any) -> dict[str, Any]:
    """A run request for the example spec, played by ``playbook.yaml`` in the server's folder."""
    return {
        "spec": {"filename": "wordcount.yaml", "content": EXAMPLE_SPEC.read_text(encoding="utf-8")},
        "model": "scripted:playbook.yaml",
        **extra,
    }


def put_playbook(
    root: Path, book: dict[str, Any] | None = None, name: str = "playbook.yaml"
) -> Path:
    return write_playbook(root, book or example_playbook(), name)


def wait_status(
    client: httpx.Client, run_id: str, wanted: tuple[str, ...], timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = client.get(f"/api/runs/{run_id}").json()
        if last.get("status") in wanted:
            return last
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not reach {wanted} in {timeout} s: {last}")


def sse(
    client: httpx.Client, run_id: str, last_id: str | None = None
) -> Iterator[tuple[str, str, str]]:
    """``(event, id, data)`` of the run's event stream until it ends."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers, timeout=300) as r:
        assert r.status_code == 200, r.read()
        event, ident, data = "message", "", []
        for line in r.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if data:
                    yield event, ident, "\n".join(data)
                    if event == "end":
                        return
                event, ident, data = "message", "", []
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "id":
                ident = value
            elif name == "data":
                data.append(value)


def trace_kinds(data: list[str]) -> list[str]:
    return [json.loads(d)["kind"] for d in data]
