"""Tokens, roles, bearer headers, CSRF tokens and the loopback check of ``darkfactory serve``."""

from __future__ import annotations

import pytest

from darkfactory.errors import ConfigError
from darkfactory.service.auth import Csrf, Principal, TokenStore, bearer, is_loopback
from darkfactory.service.settings import ROLES, Role, ServiceSettings, TokenEntry

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
CAROL = "carol-token-0123456789abcdef"


def settings(*entries: tuple[str, Role, str]) -> ServiceSettings:
    return ServiceSettings(tokens=[TokenEntry(name=n, role=r, token_env=v) for n, r, v in entries])


def test_each_role_may_do_what_the_roles_before_it_may() -> None:
    for i, role in enumerate(ROLES):
        who = Principal("x", role)
        assert [who.may(needed) for needed in ROLES] == [j <= i for j in range(len(ROLES))]
    assert Principal("v", "viewer").may("viewer")
    assert not Principal("v", "viewer").may("submitter")
    assert Principal("a", "approver").may("submitter")
    assert not Principal("a", "approver").may("admin")


def test_tokens_from_the_settings_file_and_the_environment() -> None:
    environ = {
        "ALICE_TOKEN": ALICE,
        "BOB_TOKEN": BOB,
        "DARKFACTORY_TOKENS": f"carol:viewer:{CAROL}",
    }
    store = TokenStore.load(
        settings(("alice", "approver", "ALICE_TOKEN"), ("bob", "submitter", "BOB_TOKEN")),
        environ,
    )
    assert not store.open
    assert store.check(ALICE) == Principal("alice", "approver")
    assert store.check(BOB) == Principal("bob", "submitter")
    assert store.check(CAROL) == Principal("carol", "viewer")
    for unknown in (None, "", ALICE[:-1], ALICE + "x", "wrong-token-0123456789abcdef", "é" * 30):
        assert store.check(unknown) is None


def test_tokens_from_the_environment_variable_alone() -> None:
    store = TokenStore.load(ServiceSettings(), {"DARKFACTORY_TOKENS": f"root:admin:{ALICE}"})
    assert not store.open
    assert store.check(ALICE) == Principal("root", "admin")
    assert store.check(BOB) is None


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_token_variable_names_the_key_and_the_variable(value: str | None) -> None:
    environ = {"ALICE_TOKEN": ALICE} if value is None else {"ALICE_TOKEN": ALICE, "BOB_TOKEN": ""}
    with pytest.raises(ConfigError) as caught:
        TokenStore.load(
            settings(("alice", "admin", "ALICE_TOKEN"), ("bob", "viewer", "BOB_TOKEN")), environ
        )
    text = str(caught.value)
    assert "service.yaml: tokens[1].token_env:" in text
    assert "BOB_TOKEN" in text and "'bob'" in text
    assert "hint: set BOB_TOKEN" in text


def test_a_short_token_is_refused_and_not_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        TokenStore.load(settings(("alice", "admin", "ALICE_TOKEN")), {"ALICE_TOKEN": "hunter2"})
    text = str(caught.value)
    assert "tokens[0].token_env" in text and "ALICE_TOKEN" in text
    assert "7 characters" in text and "at least 16" in text and "guessed" in text
    assert "hunter2" not in text

    with pytest.raises(ConfigError) as caught:
        TokenStore.load(ServiceSettings(), {"DARKFACTORY_TOKENS": "ci:submitter:short"})
    assert "DARKFACTORY_TOKENS" in str(caught.value) and "'ci'" in str(caught.value)
    assert "short" not in str(caught.value)


def test_one_token_for_two_holders_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        TokenStore.load(
            settings(("alice", "viewer", "ALICE_TOKEN")),
            {"ALICE_TOKEN": ALICE, "DARKFACTORY_TOKENS": f"root:admin:{ALICE}"},
        )
    assert "also in ALICE_TOKEN" in str(caught.value)
    assert ALICE not in str(caught.value)


def test_open_mode_when_no_token_is_configured() -> None:
    store = TokenStore.load(ServiceSettings(), {})
    assert store.open
    for anything in (None, "", "whatever", ALICE):
        assert store.check(anything) == Principal("local", "admin")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {ALICE}", ALICE),
        (f"bearer {ALICE}", ALICE),
        (f"BEARER   {ALICE}  ", ALICE),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {ALICE}", None),
        (ALICE, None),
        (f"Bearer {ALICE} extra", None),
    ],
)
def test_bearer(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_csrf_tokens_are_bound_to_the_session_and_the_secret() -> None:
    csrf = Csrf(b"s" * 32)
    token = csrf.issue("session-1")
    assert len(token) == 64 and int(token, 16) >= 0
    assert csrf.issue("session-1") == token
    assert csrf.valid("session-1", token)
    assert not csrf.valid("session-2", token)  # another session's token
    assert not csrf.valid("anon", token)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert not csrf.valid("session-1", tampered)
    assert not csrf.valid("session-1", token.upper() if token != token.upper() else "x")
    assert not csrf.valid("session-1", None)
    assert not csrf.valid("session-1", "")
    assert not csrf.valid("session-1", "é")
    assert not Csrf(b"t" * 32).valid("session-1", token)  # a token signed with another secret
    assert csrf.valid("anon", csrf.issue("anon"))


def test_csrf_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Csrf(b"short")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.5.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("::ffff:192.168.1.10", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
