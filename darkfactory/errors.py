"""The error types and the exit codes they map to.

Errors a user can fix (a bad spec, config, playbook or command line) are ``InputError``s:
their text names the file, the line or key, and what to do. The CLI prints them without a
traceback and exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes of every ``darkfactory`` command (documented in docs/exit-codes.md)."""

    DELIVERED = 0
    FAILED = 1  # failed or escalated
    BAD_INPUT = 2  # spec, config, usage, playbook, no model configured, no sandbox
    AWAITING_APPROVAL = 3
    BUDGET_EXHAUSTED = 4


#: A run's final status -> the exit code of the command that ran, continued or watched it.
STATUS_EXIT: dict[str, ExitCode] = {
    "delivered": ExitCode.DELIVERED,
    "failed": ExitCode.FAILED,
    "escalated": ExitCode.FAILED,
    "rejected": ExitCode.FAILED,
    "awaiting_approval": ExitCode.AWAITING_APPROVAL,
    "budget_exhausted": ExitCode.BUDGET_EXHAUSTED,
}


class DarkFactoryError(Exception):
    """Base of every error Dark Factory raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class InputError(DarkFactoryError):
    """Something the user gave us is wrong; the message says where and what to do."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        text = f"{where}{key}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(InputError):
    """A config file (agents.yaml, tasks.yaml, factory.yaml) is invalid."""


class SpecError(InputError):
    """A spec file is missing, empty or invalid."""


class PlaybookError(InputError):
    """A scripted-model playbook is malformed."""


class NoModelConfigured(InputError):
    """No model is configured for a run that needs one."""


class SandboxUnavailable(InputError):
    """The requested sandbox backend cannot run on this machine."""
