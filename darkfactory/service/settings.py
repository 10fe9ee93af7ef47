"""The service's settings: ``config/service.yaml`` (optional) and the environment.

Everything here is for ``darkfactory serve``: who may do what (tokens with roles), where
notifications go (webhooks, SMTP), the GitHub webhook's secret, the limits on a request.
A run itself is configured by ``factory.yaml`` as always; a request may only choose the
model, the budget, the checkpoints and the repository keys of its own run.

Secrets are never written in ``service.yaml`` itself: a token, an SMTP password and the
GitHub secret are each named by the environment variable that holds them (``*_env``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from darkfactory.errors import ConfigError
from darkfactory.yamlio import load_yaml, pydantic_errors

SERVICE_FILE = "service.yaml"
#: ``name:role:token`` entries, comma-separated: tokens without a file (CI, containers).
TOKENS_ENV = "DARKFACTORY_TOKENS"

Role = Literal["viewer", "submitter", "approver", "admin"]
#: Each role may do what the roles before it may.
ROLES: tuple[Role, ...] = ("viewer", "submitter", "approver", "admin")
#: The statuses a notification is sent for (a run that needs a person, or ended).
NotifyEvent = Literal["awaiting_approval", "escalated", "failed", "delivered", "budget_exhausted"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = (
    "awaiting_approval",
    "escalated",
    "failed",
    "delivered",
    "budget_exhausted",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenEntry(_Strict):
    """One API token: who holds it, their role, and the variable that holds the token."""

    name: str = Field(min_length=1, description="who holds the token (recorded with approvals)")
    role: Role
    token_env: str = Field(
        min_length=1, description="the environment variable that holds the token"
    )


class WebhookTarget(_Strict):
    url: str = Field(pattern=r"^https?://", description="where the event is POSTed")
    format: Literal["json", "slack"] = "json"
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))


class SmtpSettings(_Strict):
    host: str
    port: int = Field(default=25, gt=0, lt=65536)
    sender: str = Field(min_length=3, description="the From: address")
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="the environment variable that holds the SMTP password"
    )
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))


class NotifySettings(_Strict):
    webhooks: list[WebhookTarget] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    retries: int = Field(default=5, ge=0, le=20, description="attempts after the first")
    backoff_s: float = Field(default=1.0, gt=0, description="first wait; doubles each retry")
    timeout_s: float = Field(default=10.0, gt=0)


class GithubSettings(_Strict):
    secret_env: str = "DARKFACTORY_GITHUB_SECRET"
    label: str = "darkfactory"


class DispatchSettings(_Strict):
    """``serve --broker``: global caps, checked before each run is sent to the workers."""

    max_in_flight: int | None = Field(default=None, gt=0, description="runs sent and not ended")
    max_usd_per_hour: float | None = Field(
        default=None, gt=0, description="dollars runs that ended in the last hour may have cost"
    )


class ServiceSettings(_Strict):
    """``config/service.yaml``."""

    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="the server's address in links sent out (default: http://HOST:PORT)",
    )
    tokens: list[TokenEntry] = Field(default_factory=list)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    github: GithubSettings = Field(default_factory=GithubSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    max_spec_bytes: int = Field(default=1_000_000, gt=0, description="larger specs get 413")
    repo_roots: list[str] = Field(
        default_factory=list,
        description=(
            "folders under which a request's `repo` may be a local path (a submitter could "
            "otherwise read any repository this machine can); git URLs (https, ssh) are "
            "always taken"
        ),
    )
    scripted_root: str | None = Field(
        default=None,
        description=(
            "where a request's `scripted:PATH` playbook must be (default: the directory "
            "the server runs in)"
        ),
    )

    def secret_variables(self) -> list[str]:
        """The environment variables that hold the service's own secrets: a run never needs
        them, so its processes never get them."""
        names = [TOKENS_ENV, self.github.secret_env, *(t.token_env for t in self.tokens)]
        if self.notify.smtp is not None and self.notify.smtp.password_env:
            names.append(self.notify.smtp.password_env)
        return names

    @model_validator(mode="after")
    def _unique_names(self) -> ServiceSettings:
        names = [t.name for t in self.tokens]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"token names must be unique: {', '.join(dup)}")
        return self


def load_service_settings(config_dir: Path) -> ServiceSettings:
    """``config_dir/service.yaml`` validated (defaults when there is none)."""
    path = Path(config_dir) / SERVICE_FILE
    if not path.is_file():
        return ServiceSettings()
    data, locs = load_yaml(path, error=ConfigError)
    if data is None:
        return ServiceSettings()
    if not isinstance(data, dict):
        raise ConfigError(
            "must be a mapping of settings",
            file=path,
            line=locs.line_of(()),
            hint="e.g.\ntokens:\n  - {name: alice, role: approver, token_env: ALICE_TOKEN}",
        )
    try:
        return ServiceSettings.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors(exc, file=path, locs=locs, error=ConfigError) from None


def tokens_from_env(environ: dict[str, str] | None = None) -> dict[str, tuple[str, Role]]:
    """``DARKFACTORY_TOKENS`` (``name:role:token,...``) as ``{token: (name, role)}``."""
    env = os.environ if environ is None else environ
    raw = env.get(TOKENS_ENV, "").strip()
    found: dict[str, tuple[str, Role]] = {}
    for n, item in enumerate(filter(None, (p.strip() for p in raw.split(","))), start=1):
        parts = item.split(":", 2)
        if len(parts) != 3 or not all(parts) or parts[1] not in ROLES:
            raise ConfigError(
                f"entry {n} is not name:role:token with a role of {', '.join(ROLES)}",
                key=TOKENS_ENV,
                hint="e.g. DARKFACTORY_TOKENS=alice:approver:$(openssl rand -hex 24)",
            )
        name, role, token = parts
        found[token] = (name, role)  # type: ignore[assignment]
    return found
