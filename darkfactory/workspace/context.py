"""What a tool needs to know about the run it works in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkfactory.sandbox.base import Sandbox

#: Workspace-relative paths no agent may write (files or whole directories).
DEFAULT_PROTECTED: tuple[str, ...] = ("acceptance", ".git")

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass
class RunContext:
    """The run's workspace, its sandbox, and what agents may not touch.

    ``protected`` can change during a run: a spec without acceptance tests lets the
    architect write ``acceptance/`` in the design phase, after which the flow freezes it.
    """

    workspace: Path
    sandbox: Sandbox | None = None
    protected: set[str] = field(default_factory=lambda: set(DEFAULT_PROTECTED))
    test_timeout_s: float = 300.0
    on_event: EventSink | None = None
    #: A ticket on an existing repository: the crew gets the tools for reading code.
    repo: bool = False
    #: Questions agents raised with ``report_ambiguity``; the pipeline escalates on them.
    ambiguities: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace).resolve()

    def emit(self, kind: str, **data: Any) -> None:
        """Report an event (tool call, sandbox exec, ...) to the run's trace, if any."""
        if self.on_event is not None:
            self.on_event(kind, data)
