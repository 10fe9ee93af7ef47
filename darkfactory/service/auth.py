"""Who a request is: API tokens with roles, bearer headers, CSRF tokens for the HTML forms.

Plain Python with no web framework, so the rules can be tested alone; ``api.py`` wires them in.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from darkfactory.errors import ConfigError
from darkfactory.service.settings import (
    ROLES,
    SERVICE_FILE,
    TOKENS_ENV,
    Role,
    ServiceSettings,
    tokens_from_env,
)

#: Shorter tokens can be guessed; ``openssl rand -hex 24`` gives 48 characters.
MIN_TOKEN_LENGTH = 16
_TOKEN_HINT = "make one with: openssl rand -hex 24"


@dataclass(frozen=True)
class Principal:
    """The holder of a token: their name (recorded with approvals) and their role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        """Whether this role is ``needed`` or above it (each role may do what those before may)."""
        return ROLES.index(self.role) >= ROLES.index(needed)


class TokenStore:
    """The API tokens the server accepts, each mapped to its principal."""

    def __init__(self, entries: list[tuple[bytes, Principal]]) -> None:
        self._entries = entries

    @classmethod
    def load(
        cls, settings: ServiceSettings, environ: Mapping[str, str] | None = None
    ) -> TokenStore:
        """Tokens of ``service.yaml`` (each read from its ``token_env``) and ``DARKFACTORY_TOKENS``.

        Raises ConfigError for a token variable that is unset or empty, a token shorter than
        ``MIN_TOKEN_LENGTH`` and a token given twice. No error shows a token itself.
        """
        env = os.environ if environ is None else environ
        entries: list[tuple[bytes, Principal]] = []
        seen: dict[str, str] = {}  # token -> where it was set

        def add(token: str, who: Principal, source: str, file: str | None, key: str) -> None:
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"the token of {who.name!r} in {source} has {len(token)} characters; "
                    f"at least {MIN_TOKEN_LENGTH} are needed so that it cannot be guessed",
                    file=file,
                    key=key,
                    hint=_TOKEN_HINT,
                )
            if token in seen:
                raise ConfigError(
                    f"the token of {who.name!r} in {source} is also in {seen[token]}; "
                    "a token names one holder",
                    file=file,
                    key=key,
                    hint=f"give each holder their own token; {_TOKEN_HINT}",
                )
            seen[token] = source
            entries.append((token.encode(), who))

        for i, entry in enumerate(settings.tokens):
            key = f"tokens[{i}].token_env"
            token = env.get(entry.token_env, "")
            if not token:
                raise ConfigError(
                    f"the variable {entry.token_env} (token of {entry.name!r}) is not set or empty",
                    file=SERVICE_FILE,
                    key=key,
                    hint=f"set {entry.token_env} in the server's environment; {_TOKEN_HINT}",
                )
            who = Principal(entry.name, entry.role)
            add(token, who, entry.token_env, SERVICE_FILE, key)
        for token, (name, role) in tokens_from_env(dict(env)).items():
            add(token, Principal(name, role), TOKENS_ENV, None, TOKENS_ENV)
        return cls(entries)

    @property
    def open(self) -> bool:
        """No token is configured: every request is the local admin."""
        return not self._entries

    def check(self, token: str | None) -> Principal | None:
        """The principal holding ``token``, or None when it is unknown.

        Every configured token is compared in constant time. In open mode (no tokens) any
        input, even none, is ``Principal("local", "admin")``: that is only safe because the
        server refuses to bind to a non-loopback address in open mode, a check that is the
        caller's (see :func:`is_loopback`).
        """
        if self.open:
            return Principal("local", "admin")
        if not token:
            return None
        given = token.encode()
        match: Principal | None = None
        for known, principal in self._entries:  # no early exit: the time does not tell which
            if hmac.compare_digest(given, known):
                match = principal
        return match


def bearer(header_value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case), else None."""
    parts = (header_value or "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


class Csrf:
    """Double-submit tokens for the HTML forms, signed so a cookie set by another site can't be forged."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the CSRF secret needs at least {MIN_TOKEN_LENGTH} bytes")
        self._secret = secret

    def issue(self, session: str) -> str:
        """The form token for ``session`` (the login cookie's value, or ``"anon"``)."""
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str, token: str | None) -> bool:
        """Whether ``token`` was issued for ``session`` (compared in constant time)."""
        if not token:
            return False
        return hmac.compare_digest(self.issue(session).encode(), token.encode())


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine (127.0.0.0/8, ::1, localhost).

    Anything else is False: ``0.0.0.0`` and ``::`` listen everywhere, and a name other than
    ``localhost`` may resolve to anything.
    """
    text = host.strip().lower()
    if text == "localhost":
        return True
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
