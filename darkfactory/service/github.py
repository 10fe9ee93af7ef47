"""The GitHub webhook: check a delivery's signature, and turn a labelled issue into a spec.

Plain Python with no web framework; ``api.py`` reads the headers and answers with the status.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
MAX_BODY_CHARS = 200_000
MAX_LINE_CHARS = 1_000  # a title, a login, a URL: GitHub's own limits are far lower

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
#: Bidirectional overrides and isolates: they make text read differently from what it is.
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


class WebhookRefused(Exception):
    """A delivery the server refuses: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Raise WebhookRefused(401) unless ``header`` is ``sha256=<HMAC-SHA256 of body>``.

    ``body`` must be the raw bytes received, never JSON parsed and serialised again.
    """
    if not secret:
        raise WebhookRefused(503, "the GitHub webhook secret is not configured")
    if not header:
        raise WebhookRefused(401, f"the {SIGNATURE_HEADER} header is missing")
    found = _SIGNATURE.fullmatch(header.strip())
    if found is None:
        raise WebhookRefused(401, f"the {SIGNATURE_HEADER} header is not sha256=<64 hex digits>")
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, found.group(1).lower()):
        raise WebhookRefused(401, f"the {SIGNATURE_HEADER} signature does not match the body")


@dataclass(frozen=True)
class IssueTicket:
    """A spec made from a GitHub issue, ready to submit as a run."""

    filename: str  # "issue-<number>.md"
    content: str  # the Markdown spec
    submitted_by: str  # "github:<sender login>"
    delivery: str | None  # X-GitHub-Delivery: the same for a redelivery, so it deduplicates


def ticket_from_event(
    event: str | None,
    payload: dict[str, Any],
    *,
    label: str,
    delivery: str | None = None,
) -> IssueTicket | None:
    """The ticket for an ``issues`` event with action ``labeled`` and the label ``label``.

    None for any other event, action or label (the caller answers 202 "ignored").
    WebhookRefused(422) when the payload lacks a field the spec needs. Titles, bodies and
    logins are hostile input: control characters (but newline and tab in the body) and
    bidirectional overrides are removed, the body is capped at ``MAX_BODY_CHARS``.
    """
    if event != "issues" or not isinstance(payload, dict) or payload.get("action") != "labeled":
        return None
    label_name = _field(payload, "label", "name", required=False)
    if not isinstance(label_name, str) or label_name.casefold() != label.casefold():
        return None

    number = _field(payload, "issue", "number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise WebhookRefused(422, "issue.number is not a positive integer")
    title = _line(_text(payload, "issue", "title"))
    raw_body = _field(payload, "issue", "body", required=False)
    if raw_body is not None and not isinstance(raw_body, str):
        raise WebhookRefused(422, "issue.body is neither text nor null")
    body = _clean(raw_body or "", keep="\n\t")[:MAX_BODY_CHARS].strip()
    url = _line(_text(payload, "issue", "html_url"))
    author = _line(_text(payload, "issue", "user", "login"))
    sender = _line(_text(payload, "sender", "login"))

    heading = f"# {title or f'Issue {number}'}\n\n"
    paragraph = f"{body}\n\n" if body else ""
    return IssueTicket(
        filename=f"issue-{number}.md",
        content=f"{heading}{paragraph}_From {url}, opened by {author}._\n",
        submitted_by=f"github:{sender}",
        delivery=delivery,
    )


def _field(payload: dict[str, Any], *path: str, required: bool = True) -> Any:
    """``payload[path[0]][path[1]]...``; a missing step is None, or 422 when ``required``."""
    value: Any = payload
    for step in path:
        if not isinstance(value, dict) or step not in value:
            if required:
                raise WebhookRefused(422, f"the payload has no {'.'.join(path)}")
            return None
        value = value[step]
    return value


def _text(payload: dict[str, Any], *path: str) -> str:
    value = _field(payload, *path)
    if not isinstance(value, str):
        raise WebhookRefused(422, f"{'.'.join(path)} is not text")
    return value


def _clean(text: str, *, keep: str = "") -> str:
    """``text`` without control characters (but those in ``keep``) and bidi overrides."""
    text = text.replace("\r\n", "\n").translate(_BIDI)
    return "".join(c for c in text if c in keep or unicodedata.category(c) != "Cc")


def _line(text: str) -> str:
    """One line of at most ``MAX_LINE_CHARS``: each run of white space becomes one space."""
    return " ".join(_clean(text, keep="\n\t").split())[:MAX_LINE_CHARS]
