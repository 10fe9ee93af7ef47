"""Run events sent out by the server: webhooks (JSON or Slack) and mail over SMTP.

``Notifier.send`` only queues; one daemon thread delivers, retrying with exponential backoff.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from darkfactory.service.settings import NotifySettings, SmtpSettings, WebhookTarget

log = logging.getLogger(__name__)

#: The longest wait between two attempts, whatever ``backoff_s`` and the attempt number say.
MAX_WAIT_S = 60.0
#: HTTP answers outside 5xx that are still worth another attempt.
RETRY_HTTP = {408, 429}

Result = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunEvent:
    """What happened to one run, with the links a person follows to act on it."""

    run_id: str
    status: str
    title: str
    reason: str
    links: dict[str, str]
    cost_usd: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "event": f"run.{self.status}",
            "run_id": self.run_id,
            "status": self.status,
            "title": self.title,
            "reason": self.reason,
            "links": dict(self.links),
            "cost_usd": self.cost_usd,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def headline(self) -> str:
        return f"{self.status.replace('_', ' ')}: {' '.join(self.title.split())}"

    def as_slack(self) -> dict[str, Any]:
        links = " · ".join(f"<{_slack(u)}|{_slack(label)}>" for label, u in self.links.items())
        text = f"darkfactory run {_slack(self.run_id)} {_slack(self.headline())}"
        detail = f"*{_slack(self.headline())}*\n{_slack(self.reason)}"
        if self.cost_usd is not None:
            detail += f"\ncost: ${self.cost_usd:.2f}"
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}}
        ]
        if links:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
            text += f" ({links})"
        return {"text": text, "blocks": blocks}

    def as_email(self, sender: str, to: list[str]) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[darkfactory] {self.headline()}"
        msg["From"] = sender
        msg["To"] = ", ".join(to)
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["Message-ID"] = email.utils.make_msgid(domain="darkfactory")
        lines = [f"Run {self.run_id}: {self.headline()}", "", self.reason, ""]
        if self.cost_usd is not None:
            lines += [f"Cost: ${self.cost_usd:.2f}", ""]
        lines += [f"{label}: {url}" for label, url in self.links.items()]
        msg.set_content("\n".join(lines) + "\n")
        return msg


def _slack(text: str) -> str:
    """Slack's mrkdwn escapes; ``|`` would end a link's URL early."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "¦")


class DeliveryError(Exception):
    """One attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx, not retried), never followed: it could go anywhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Webhook:
    def __init__(self, target: WebhookTarget, timeout_s: float) -> None:
        self.target, self.timeout_s = target, timeout_s
        self.events = set(target.events)
        self.opener = urllib.request.build_opener(_NoRedirect)
        parts = urllib.parse.urlsplit(target.url)
        # No user:password@ nor query string in a trace.
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
        self.label = f"webhook {parts.scheme}://{netloc}{parts.path}"
        self.secrets = [parts.password] if parts.password else []

    def deliver(self, event: RunEvent) -> None:
        payload = event.as_slack() if self.target.format == "slack" else event.as_json()
        request = urllib.request.Request(
            self.target.url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "darkfactory"},
        )
        try:
            with self.opener.open(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            retry = exc.code >= 500 or exc.code in RETRY_HTTP
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}", retry=retry) from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"cannot connect: {exc.reason}", retry=True) from None
        except OSError as exc:  # a timeout or a reset while reading the answer
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retry=True) from None


class _Smtp:
    def __init__(self, smtp: SmtpSettings, timeout_s: float, environ: Mapping[str, str]) -> None:
        self.smtp, self.timeout_s = smtp, timeout_s
        self.events = set(smtp.events)
        self.label = f"smtp {smtp.host}:{smtp.port}"
        self.password = environ.get(smtp.password_env, "") if smtp.password_env else ""
        self.secrets = [self.password] if self.password else []

    def deliver(self, event: RunEvent) -> None:
        s = self.smtp
        if s.password_env and not self.password:
            raise DeliveryError(f"the variable {s.password_env} is not set", retry=False)
        try:
            with smtplib.SMTP(s.host, s.port, timeout=self.timeout_s) as client:
                if s.starttls:
                    client.starttls(context=ssl.create_default_context())
                if s.username:
                    client.login(s.username, self.password)
                client.send_message(event.as_email(s.sender, s.to))
        except smtplib.SMTPResponseException as exc:
            # 4xx is "try again later", 5xx is a refusal that will not change.
            raise DeliveryError(f"SMTP {exc.smtp_code}", retry=exc.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(sorted(exc.recipients))
            raise DeliveryError(f"recipients refused: {refused}", retry=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retry=True) from None


_Target = _Webhook | _Smtp


class Notifier:
    """Delivers run events to the configured targets from one background thread."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        on_result: Result | None = None,
        sleep: Callable[[float], None] = time.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._on_result = on_result
        self._sleep = sleep
        env = os.environ if environ is None else environ
        self.targets: list[_Target] = [_Webhook(w, settings.timeout_s) for w in settings.webhooks]
        if settings.smtp is not None:
            self.targets.append(_Smtp(settings.smtp, settings.timeout_s, env))
        self._queue: queue.Queue[tuple[_Target, RunEvent] | None] = queue.Queue()
        self._closed = False
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._work, name="darkfactory-notify", daemon=True)
        self._thread.start()

    def send(self, event: RunEvent) -> None:
        """Queue ``event`` for every target that wants its status; returns at once."""
        if self._closed:
            raise RuntimeError("Notifier.send after close()")
        for target in self.targets:
            if event.status in target.events:
                self._queue.put((target, event))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then give up on the rest."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        self._abandon.set()  # a worker still busy stops at its next wait, reporting the rest

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            target, event = item
            try:
                ok, attempts, error = self._deliver(target, event)
            except Exception as exc:  # a bug: recorded, and the worker lives on
                log.exception("notification to %s failed", target.label)
                ok, attempts, error = False, 1, f"{type(exc).__name__}: {exc}"
            self._report(target, event, ok=ok, attempts=attempts, error=error)

    def _deliver(self, target: _Target, event: RunEvent) -> tuple[bool, int, str | None]:
        if self._abandon.is_set():
            return False, 0, "not sent: the notifier was closed"
        attempt = 0
        while True:
            attempt += 1
            try:
                target.deliver(event)
                return True, attempt, None
            except DeliveryError as exc:
                if not exc.retry or attempt > self.settings.retries or self._abandon.is_set():
                    return False, attempt, str(exc)
            self._sleep(min(self.settings.backoff_s * 2 ** (attempt - 1), MAX_WAIT_S))

    def _report(
        self, target: _Target, event: RunEvent, *, ok: bool, attempts: int, error: str | None
    ) -> None:
        for secret in target.secrets:
            error = error.replace(secret, "***") if error else error
        result = {
            "target": target.label,
            "run_id": event.run_id,
            "status": event.status,
            "ok": ok,
            "attempts": attempts,
            "error": error,
        }
        if ok:
            log.info("notified %s of run %s (%s)", target.label, event.run_id, event.status)
        else:
            log.warning("could not notify %s of run %s: %s", target.label, event.run_id, error)
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:  # the caller's bug must not stop the deliveries after it
                log.exception("on_result raised for %s", target.label)
