"""Nobody watches: a paused run's notification reaches a loopback receiver, and its link
opens the approval; the delivery that follows is notified too, once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from runhelp import NEEDS_BWRAP
from svc import put_playbook, spec_body, start_server, wait_status

pytestmark = [pytest.mark.e2e, NEEDS_BWRAP]


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def _wait(got: list[dict[str, Any]], status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in got:
            if event["status"] == status:
                return event
        time.sleep(0.1)
    raise AssertionError(f"no {status} notification in {timeout} s: {got}")


def test_a_paused_run_is_notified_with_a_link_that_opens_its_approval(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    put_playbook(tmp_path)
    srv = start_server(tmp_path, service={"notify": {"webhooks": [{"url": url}]}})
    try:
        with srv.client() as c:
            run_id = c.post(
                "/api/runs", json=spec_body(checkpoints={"output_review": "ask"})
            ).json()["id"]
            wait_status(c, run_id, ("awaiting_approval",))
            paused = _wait(got, "awaiting_approval")
            assert paused["event"] == "run.awaiting_approval" and paused["run_id"] == run_id
            assert paused["title"] == "Word count CLI"
            link = paused["links"]["approve"]
            assert link == f"{srv.url}/inbox#{run_id}"
            page = httpx.get(link.split("#")[0], timeout=30)
            assert page.status_code == 200 and run_id in page.text
            assert c.post(f"/api/runs/{run_id}/approve").status_code == 200
            wait_status(c, run_id, ("delivered",))
            delivered = _wait(got, "delivered")
        assert delivered["links"]["run"] == f"{srv.url}/runs/{run_id}"
        time.sleep(1)  # the monitor looks four times a second: nothing is sent twice
        assert [e["status"] for e in got] == ["awaiting_approval", "delivered"]
    finally:
        srv.stop()
