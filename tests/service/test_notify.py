"""notify.py against real servers on 127.0.0.1: an HTTP receiver and an aiosmtpd SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from darkfactory.service.notify import Notifier, RunEvent
from darkfactory.service.settings import NotifySettings, SmtpSettings, WebhookTarget

LINKS = {
    "run": "http://127.0.0.1:8000/runs/r-42",
    "approve": "http://127.0.0.1:8000/inbox#r-42",
}
EVENT = RunEvent(
    run_id="r-42",
    status="awaiting_approval",
    title="Add a /health endpoint",
    reason="the plan needs approval",
    links=LINKS,
    cost_usd=0.1234,
)


# -- an HTTP receiver on loopback -----------------------------------------------------------


@dataclass
class Receiver:
    """Records each POST; answers ``fail_code`` to the first ``fail_first``, then 200."""

    fail_first: int = 0
    fail_code: int = 500
    redirect_to: str | None = None
    hang: threading.Event | None = None  # set: answer; unset: wait (up to 5 s) first
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if receiver.hang is not None:
                    receiver.hang.wait(5)
                if receiver.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                elif len(receiver.requests) <= receiver.fail_first:
                    self.send_response(receiver.fail_code)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[ThreadingHTTPServer, Receiver]] = []

    def start(receiver: Receiver) -> Receiver:
        server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        servers.append((server, receiver))
        return receiver

    yield start
    for server, receiver in servers:
        if receiver.hang is not None:
            receiver.hang.set()
        server.shutdown()
        server.server_close()


def notify(settings: NotifySettings, *events: RunEvent, **kwargs: Any) -> list[dict[str, Any]]:
    """Send ``events``, wait for them all to be delivered, return what on_result got."""
    results: list[dict[str, Any]] = []
    notifier = Notifier(settings, on_result=results.append, **kwargs)
    for event in events:
        notifier.send(event)
    notifier.close(timeout=10)
    return results


def webhook(url: str, **kwargs: Any) -> NotifySettings:
    return NotifySettings(webhooks=[WebhookTarget(url=url, **kwargs)], backoff_s=0.5)


# -- webhooks ---------------------------------------------------------------------------------


def test_json_payload_arrives_with_the_event(serve: Any) -> None:
    rx = serve(Receiver())
    results = notify(webhook(rx.url), EVENT)

    [request] = rx.requests
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == "darkfactory"
    body = json.loads(request["body"])
    assert body["event"] == "run.awaiting_approval"
    assert {k: body[k] for k in ("run_id", "status", "title", "reason", "links", "cost_usd")} == {
        "run_id": "r-42",
        "status": "awaiting_approval",
        "title": "Add a /health endpoint",
        "reason": "the plan needs approval",
        "links": LINKS,
        "cost_usd": 0.1234,
    }
    assert body["sent_at"].endswith("+00:00")
    assert results == [
        {
            "target": f"webhook {rx.url}",
            "run_id": "r-42",
            "status": "awaiting_approval",
            "ok": True,
            "attempts": 1,
            "error": None,
        }
    ]


def test_slack_payload_has_text_and_the_links(serve: Any) -> None:
    rx = serve(Receiver())
    event = RunEvent("r-7", "failed", "Fix <b> & co", "tests failed", LINKS)
    [result] = notify(webhook(rx.url, format="slack"), event)

    assert result["ok"] is True
    body = json.loads(rx.requests[0]["body"])
    assert "r-7" in body["text"] and "failed" in body["text"]
    assert "Fix &lt;b&gt; &amp; co" in body["text"]  # Slack's escapes: no stray markup
    blocks = json.dumps(body["blocks"])
    for label, url in LINKS.items():
        assert f"<{url}|{label}>" in body["text"]
        assert f"<{url}|{label}>" in blocks


def test_a_500_is_retried_with_exponential_backoff(serve: Any) -> None:
    rx = serve(Receiver(fail_first=2))
    waits: list[float] = []
    [result] = notify(webhook(rx.url), EVENT, sleep=waits.append)

    assert len(rx.requests) == 3
    assert waits == [0.5, 1.0]
    assert result["ok"] is True and result["attempts"] == 3 and result["error"] is None


def test_retries_stop_at_the_limit_and_waits_are_capped(serve: Any) -> None:
    rx = serve(Receiver(fail_first=100))
    waits: list[float] = []
    settings = NotifySettings(webhooks=[WebhookTarget(url=rx.url)], retries=7, backoff_s=10)
    [result] = notify(settings, EVENT, sleep=waits.append)

    assert len(rx.requests) == 8
    assert waits == [10, 20, 40, 60, 60, 60, 60]
    assert result["ok"] is False and result["attempts"] == 8
    assert "500" in result["error"]


def test_a_400_is_not_retried_but_a_429_is(serve: Any) -> None:
    bad = serve(Receiver(fail_first=100, fail_code=400))
    busy = serve(Receiver(fail_first=1, fail_code=429))
    waits: list[float] = []
    settings = NotifySettings(webhooks=[WebhookTarget(url=bad.url), WebhookTarget(url=busy.url)])
    results = notify(settings, EVENT, sleep=waits.append)

    by_target = {r["target"]: r for r in results}
    assert len(bad.requests) == 1
    assert by_target[f"webhook {bad.url}"]["ok"] is False
    assert by_target[f"webhook {bad.url}"]["attempts"] == 1
    assert "400" in by_target[f"webhook {bad.url}"]["error"]
    assert len(busy.requests) == 2
    assert by_target[f"webhook {busy.url}"]["ok"] is True
    assert waits == [1.0]


def test_a_redirect_is_not_followed(serve: Any) -> None:
    elsewhere = serve(Receiver())
    rx = serve(Receiver())
    rx.redirect_to = elsewhere.url
    [result] = notify(webhook(rx.url), EVENT, sleep=lambda s: None)

    assert elsewhere.requests == []
    assert result["ok"] is False and result["attempts"] == 1
    assert "302" in result["error"]


def test_only_the_events_a_target_asks_for_go_to_it(serve: Any) -> None:
    every = serve(Receiver())
    failures = serve(Receiver())
    settings = NotifySettings(
        webhooks=[WebhookTarget(url=every.url), WebhookTarget(url=failures.url, events=["failed"])]
    )
    failed = RunEvent("r-9", "failed", "t", "tests failed", {})
    notify(settings, EVENT, failed)

    assert [json.loads(r["body"])["status"] for r in every.requests] == [
        "awaiting_approval",
        "failed",
    ]
    assert [json.loads(r["body"])["run_id"] for r in failures.requests] == ["r-9"]


def test_send_never_waits_for_a_hanging_receiver(serve: Any) -> None:
    rx = serve(Receiver(hang=threading.Event()))
    results: list[dict[str, Any]] = []
    notifier = Notifier(
        NotifySettings(webhooks=[WebhookTarget(url=rx.url)], timeout_s=5),
        on_result=results.append,
    )
    start = time.monotonic()
    notifier.send(EVENT)
    notifier.send(EVENT)
    assert time.monotonic() - start < 0.5

    start = time.monotonic()
    notifier.close(timeout=0.5)
    assert time.monotonic() - start < 2.0
    assert results == []  # still waiting on the receiver: close gave up on waiting
    with pytest.raises(RuntimeError):
        notifier.send(EVENT)


# -- SMTP -------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str, str]] = []
        self.accept_login = True

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((mechanism, data.login.decode(), data.password.decode()))
        # handled=False: aiosmtpd answers a refusal with 535 itself.
        return AuthResult(success=self.accept_login, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def smtp(port: int, **kwargs: Any) -> NotifySettings:
    target = SmtpSettings(
        host="127.0.0.1",
        port=port,
        sender="factory@example.test",
        to=["ops@example.test"],
        **kwargs,
    )
    return NotifySettings(smtp=target, backoff_s=0.5)


def test_mail_arrives_with_the_status_title_and_links(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    [result] = notify(smtp(port), EVENT)

    assert result == {
        "target": f"smtp 127.0.0.1:{port}",
        "run_id": "r-42",
        "status": "awaiting_approval",
        "ok": True,
        "attempts": 1,
        "error": None,
    }
    [msg] = box.messages
    assert "awaiting approval" in msg["Subject"] and "Add a /health endpoint" in msg["Subject"]
    assert msg["From"] == "factory@example.test" and msg["To"] == "ops@example.test"
    assert box.envelopes == [("factory@example.test", ["ops@example.test"])]
    body = msg.get_content()
    assert "the plan needs approval" in body
    for url in LINKS.values():
        assert url in body
    assert box.logins == []


def test_login_uses_the_password_from_the_environ(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    settings = smtp(port, username="factory", password_env="SMTP_PW")
    results = notify(settings, EVENT, environ={"SMTP_PW": "s3cret-pw"})

    assert [(login, password) for _, login, password in box.logins] == [("factory", "s3cret-pw")]
    assert len(box.messages) == 1
    assert results[0]["ok"] is True
    assert "s3cret-pw" not in repr(results)


def test_a_refused_login_is_not_retried_and_not_revealed(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    box.accept_login = False
    waits: list[float] = []
    settings = smtp(port, username="factory", password_env="SMTP_PW")
    [result] = notify(settings, EVENT, environ={"SMTP_PW": "s3cret-pw"}, sleep=waits.append)

    assert box.messages == [] and waits == []
    assert result["ok"] is False and result["attempts"] == 1 and "535" in result["error"]
    assert "s3cret-pw" not in repr(result)


def test_a_missing_password_variable_is_reported(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    [result] = notify(smtp(port, username="u", password_env="SMTP_PW"), EVENT, environ={})

    assert box.messages == [] and box.logins == []
    assert result["ok"] is False and result["attempts"] == 1
    assert "SMTP_PW" in result["error"]


def test_an_unreachable_smtp_server_is_retried() -> None:
    waits: list[float] = []
    settings = smtp(free_port()).model_copy(update={"retries": 2})
    [result] = notify(settings, EVENT, sleep=waits.append)

    assert result["ok"] is False and result["attempts"] == 3
    assert waits == [0.5, 1.0]


def test_a_title_with_a_newline_makes_one_subject_line() -> None:
    event = RunEvent("r-1", "delivered", "two\nlines", "done", {})
    msg = event.as_email("a@example.test", ["b@example.test"])
    assert msg["Subject"] == "[darkfactory] delivered: two lines"
