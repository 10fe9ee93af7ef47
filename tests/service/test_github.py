"""The GitHub webhook: signatures over the raw body, and labelled issues turned into specs."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest

from darkfactory.service.github import (
    MAX_BODY_CHARS,
    IssueTicket,
    WebhookRefused,
    ticket_from_event,
    verify_signature,
)

SECRET = b"webhook-secret-0123456789abcdef"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

#: An ``issues`` / ``labeled`` delivery, shaped as GitHub sends it (fields trimmed).
LABELED: dict[str, Any] = {
    "action": "labeled",
    "issue": {
        "url": "https://api.github.com/repos/octo-org/hello-world/issues/42",
        "html_url": "https://github.com/octo-org/hello-world/issues/42",
        "id": 1234567890,
        "number": 42,
        "title": "Add a /health endpoint",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "labels": [{"id": 7, "name": "DarkFactory", "color": "5319e7"}],
        "state": "open",
        "body": 'The service needs `GET /health` returning 200 and `{"ok": true}`.\r\n\r\n- no auth',
    },
    "label": {"id": 7, "name": "DarkFactory", "color": "5319e7", "default": False},
    "repository": {
        "id": 99,
        "name": "hello-world",
        "full_name": "octo-org/hello-world",
        "clone_url": "https://github.com/octo-org/hello-world.git",
    },
    "sender": {"login": "maintainer-jo", "id": 2, "type": "User"},
}


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def refused(status: int, call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(WebhookRefused) as caught:
        call(*args, **kwargs)
    assert caught.value.status == status
    return caught.value.message


def labeled(**issue: Any) -> dict[str, Any]:
    payload = copy.deepcopy(LABELED)
    payload["issue"].update(issue)
    return payload


def test_githubs_own_test_vector() -> None:
    """The secret, payload and signature given in GitHub's "Validating webhook deliveries"."""
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header)


def test_a_good_signature_passes() -> None:
    body = json.dumps(LABELED).encode()
    verify_signature(SECRET, body, sign(body))
    verify_signature(SECRET, body, sign(body).upper().replace("SHA256=", "sha256="))


def test_a_bad_signature_is_refused() -> None:
    body = json.dumps(LABELED).encode()
    other = body.replace(b"octocat", b"mallory")
    assert "does not match" in refused(401, verify_signature, SECRET, other, sign(body))
    wrong_key = sign(body, b"another-secret-0123456789abcdef")
    assert "does not match" in refused(401, verify_signature, SECRET, body, wrong_key)
    # The same JSON serialised differently is another body: the raw bytes are signed.
    respaced = json.dumps(LABELED, indent=2).encode()
    refused(401, verify_signature, SECRET, respaced, sign(body))


@pytest.mark.parametrize("header", [None, ""])
def test_a_missing_signature_is_refused(header: str | None) -> None:
    assert "X-Hub-Signature-256" in refused(401, verify_signature, SECRET, b"{}", header)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.removeprefix("sha256="),  # no scheme
        lambda s: s.replace("sha256=", "sha1="),  # another algorithm
        lambda s: s[:-2],  # too short
        lambda s: s + "00",  # too long
        lambda s: s[:-1] + "g",  # not hex
        lambda s: "sha256=",
    ],
)
def test_a_malformed_signature_is_refused(mangle: Any) -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    message = refused(401, verify_signature, SECRET, body, mangle(sign(body)))
    assert "sha256=<64 hex digits>" in message


def test_no_secret_is_never_a_valid_key() -> None:
    body = b"{}"
    refused(503, verify_signature, b"", body, sign(body, b""))


def test_a_labelled_issue_becomes_a_spec() -> None:
    ticket = ticket_from_event("issues", LABELED, label="darkfactory", delivery=DELIVERY)
    assert ticket == IssueTicket(
        filename="issue-42.md",
        content=(
            "# Add a /health endpoint\n\n"
            'The service needs `GET /health` returning 200 and `{"ok": true}`.\n\n- no auth\n\n'
            "_From https://github.com/octo-org/hello-world/issues/42, opened by octocat._\n"
        ),
        submitted_by="github:maintainer-jo",
        delivery=DELIVERY,
    )


@pytest.mark.parametrize(
    ("event", "change"),
    [
        ("issues", {"label": {"name": "bug"}}),  # another label
        ("issues", {"label": None}),
        ("issues", {"action": "unlabeled"}),  # another action
        ("issues", {"action": "opened"}),
        ("issue_comment", {}),  # another event
        ("ping", {}),
        (None, {}),
    ],
)
def test_anything_else_is_ignored(event: str | None, change: dict[str, Any]) -> None:
    payload = {**copy.deepcopy(LABELED), **change}
    assert ticket_from_event(event, payload, label="darkfactory") is None


def test_a_payload_without_the_issue_is_refused() -> None:
    payload = copy.deepcopy(LABELED)
    del payload["issue"]
    assert "issue.number" in refused(422, ticket_from_event, "issues", payload, label="DarkFactory")


@pytest.mark.parametrize(
    ("issue", "names"),
    [
        ({"number": "42/../../etc"}, "issue.number"),
        ({"number": True}, "issue.number"),
        ({"number": -1}, "issue.number"),
        ({"title": None}, "issue.title"),
        ({"body": ["not", "text"]}, "issue.body"),
        ({"user": {}}, "issue.user.login"),
    ],
)
def test_a_payload_with_a_bad_field_is_refused(issue: dict[str, Any], names: str) -> None:
    message = refused(422, ticket_from_event, "issues", labeled(**issue), label="darkfactory")
    assert names in message


def test_a_null_body_gives_a_spec_of_the_title() -> None:
    ticket = ticket_from_event("issues", labeled(body=None), label="darkfactory")
    assert ticket is not None
    assert ticket.content == (
        "# Add a /health endpoint\n\n"
        "_From https://github.com/octo-org/hello-world/issues/42, opened by octocat._\n"
    )
    assert ticket.delivery is None


def test_control_characters_are_stripped() -> None:
    payload = labeled(
        title="Fix\x00 it\n# Injected heading\x1b[31m\u202e",
        body="line one\x00\x07\r\nline\ttwo\x1b]0;title\x07\x7f\x85\n",
    )
    payload["sender"]["login"] = "evil\nlogin\x00"
    ticket = ticket_from_event("issues", payload, label="darkfactory")
    assert ticket is not None
    assert ticket.content.startswith(
        "# Fix it # Injected heading[31m\n\nline one\nline\ttwo]0;title\n\n"
    )
    assert ticket.submitted_by == "github:evil login"
    assert not [c for c in ticket.content if ord(c) < 32 and c not in "\n\t"]
    assert "\x7f" not in ticket.content and "\x85" not in ticket.content
    assert "\u202e" not in ticket.content


def test_the_body_is_capped() -> None:
    ticket = ticket_from_event(
        "issues", labeled(body="x" * (MAX_BODY_CHARS + 10)), label="darkfactory"
    )
    assert ticket is not None
    assert ticket.content.count("x") == MAX_BODY_CHARS
