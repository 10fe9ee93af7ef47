"""Keys stay out of everything a run writes or prints.

The values of environment variables whose names look like keys or tokens (the same rule
as the trace's: ``darkfactory.reporting.trace``) are replaced by ``[redacted]`` in error texts, log
records and what CrewAI prints to the console while a run is active.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from darkfactory.reporting.trace import _secrets, redact

#: The key a local, keyless server gets (providers insist on one); never a secret.
LOCAL_KEY_PLACEHOLDER = "unused-by-local-server"


def secret_values(extra: Iterable[str] = ()) -> list[str]:
    """The secret values known now: the environment's keys and tokens, and ``extra``."""
    values = {*_secrets(), *(v for v in extra if v and len(v) >= 6)}
    return sorted(values, key=len, reverse=True)  # a key that contains another goes first


def redact_secrets(text: str, *, extra: Iterable[str] = ()) -> str:
    """``text`` with every secret value replaced by ``[redacted]``."""
    return redact(text, secret_values(extra))


class RedactingStream(io.TextIOBase):
    """A text stream that writes to ``target`` with secrets redacted."""

    def __init__(self, target: TextIO, secrets: list[str]) -> None:
        self._target = target
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._target.write(redact(text, self._secrets))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8")

    def fileno(self) -> int:
        return self._target.fileno()


@contextlib.contextmanager
def redacted_logs() -> Iterator[list[str]]:
    """While active, every log record's message has the secrets redacted (any handler)."""
    secrets = secret_values()
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to logging to report
                return record
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and not record.exc_text:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = redact(text, secrets)
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield secrets
    finally:
        logging.setLogRecordFactory(previous)


def redact_messages(messages: Any, secrets: list[str]) -> Any:
    """``messages`` (a prompt string or chat messages) with every secret value redacted.

    Returns the same object when nothing needed redacting (the common case), else a copy.
    """
    if not secrets:
        return messages
    if isinstance(messages, str):
        return redact(messages, secrets)
    if isinstance(messages, list):
        out = [redact_messages(m, secrets) for m in messages]
        return messages if all(a is b for a, b in zip(out, messages, strict=True)) else out
    if isinstance(messages, dict):
        copied = {k: redact_messages(v, secrets) for k, v in messages.items()}
        same = all(copied[k] is v for k, v in messages.items())
        return messages if same else copied
    return messages
