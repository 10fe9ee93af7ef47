"""Base class for tools that work inside a run's workspace."""

from __future__ import annotations

from typing import Any

from crewai.tools import BaseTool
from pydantic import Field

from darkfactory.context import RunContext


class WorkspaceTool(BaseTool):
    """A CrewAI tool bound to one run: its workspace, sandbox and protected paths.

    Subclasses set ``name``, ``description``, ``args_schema`` and implement ``_run``.
    Errors the model can fix are returned as text starting with ``ERROR:``; bugs raise.
    """

    ctx: Any = Field(exclude=True, description="the RunContext this tool works in")

    @property
    def run_context(self) -> RunContext:
        ctx: RunContext = self.ctx
        return ctx
