"""What went wrong with a model call, as far as retrying it is concerned.

``classify`` maps an exception raised by a provider's CrewAI LLM (and the provider SDK's
exceptions in its cause chain) to a ``Fault``: transient (HTTP 408, 409, 425, 429 and
5xx, a timeout, a dropped or cut-off connection, a body that is not a completion) or not
(other HTTP 4xx: a wrong key, model or request), with a short reason and the error text
with keys redacted. Anything else (a budget hook's denial, an overflowing context window,
our own errors, a bug) is not a provider fault: ``classify`` returns None and the caller
lets it pass. Provider SDKs are recognised by shape (``status_code``, ``response``), not
by class, so any provider's errors are classified alike.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from darkfactory.errors import DarkFactoryError
from darkfactory.models.secrets import redact_secrets

MAX_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Fault:
    """What went wrong with one attempt, as far as retrying is concerned."""

    transient: bool
    #: Short, e.g. ``HTTP 429``, ``timed out``, ``connection failed``, ``empty answer``.
    reason: str
    #: The error text (redacted, cut short).
    detail: str
    retry_after: float | None = None
    #: The answer came but was unusable (no point calling the provider unreachable).
    bad_answer: bool = False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(exc: BaseException) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date) of an error response."""
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None)
        if headers is None:
            continue
        try:
            ms = headers.get("retry-after-ms")
            if ms is not None:
                return float(ms) / 1000
            value = headers.get("retry-after")
        except (AttributeError, TypeError, ValueError):
            continue
        if value is None:
            continue
        try:
            return float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def _detail(exc: BaseException, secrets: list[str]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    text = redact_secrets(text, extra=secrets)
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."


def classify(exc: BaseException, *, secrets: list[str] | None = None) -> Fault | None:
    """The provider fault ``exc`` stands for, or None when it is not one (pass it on)."""
    import httpx
    from crewai.hooks.dispatch import HookAborted
    from crewai.llms.base_llm import LLMCallBlockedError
    from crewai.utilities.exceptions.context_window_exceeding_exception import (
        LLMContextLengthExceededError,
    )

    chain = list(_chain(exc))
    passthrough = (
        HookAborted,
        LLMCallBlockedError,
        LLMContextLengthExceededError,
        DarkFactoryError,
    )
    if any(isinstance(e, passthrough) for e in chain):
        return None
    detail = _detail(exc, secrets or [])
    for e in chain:
        status = _status(e)
        if status is None:
            continue
        if status < 400:  # a 2xx whose body was not a completion
            return Fault(True, "malformed response", detail, bad_answer=True)
        if status in (408, 409, 425, 429) or status >= 500:
            return Fault(True, f"HTTP {status}", detail, _retry_after(e))
        return Fault(False, f"HTTP {status}", detail)
    if any(
        isinstance(e, TimeoutError | httpx.TimeoutException) or "Timeout" in type(e).__name__
        for e in chain
    ):
        return Fault(True, "timed out", detail)
    if any(isinstance(e, json.JSONDecodeError) for e in chain):
        return Fault(True, "malformed response", detail, bad_answer=True)
    if any(isinstance(e, httpx.TransportError | ConnectionError) for e in chain):
        return Fault(True, "connection failed", detail)
    if any(type(e).__name__ == "APIConnectionError" for e in chain):
        return Fault(True, "connection failed", detail)
    return None
