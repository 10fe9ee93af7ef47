"""Base class for tools that work inside a run's workspace."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from darkfactory.tools._prompt import LeanTool
from darkfactory.workspace.context import RunContext


def _drop_titles(schema: dict[str, Any]) -> None:
    """Leave pydantic's generated titles out of the schema: they only repeat the names."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)


class ToolArgs(BaseModel):
    """Base of a tool's ``args_schema``: the JSON schema the model reads, without titles.

    CrewAI puts each tool's schema into every prompt of the agents that have the tool, so
    every word in it is paid for on every call; the field descriptions say what matters.
    """

    model_config = ConfigDict(json_schema_extra=_drop_titles)


class WorkspaceTool(LeanTool):
    """A CrewAI tool bound to one run: its workspace, sandbox and protected paths.

    Subclasses set ``name``, ``description``, ``args_schema`` and implement ``_run``.
    Errors the model can fix are returned as text starting with ``ERROR:``; bugs raise.
    """

    ctx: Any = Field(exclude=True, description="the RunContext this tool works in")
    output_tokens: int | None = Field(
        default=None,
        exclude=True,
        description="most tokens (4 characters each) one answer may take: a share of the "
        "role's model context window (llm.read_file_share); None: the tool's own caps",
    )

    @property
    def run_context(self) -> RunContext:
        ctx: RunContext = self.ctx
        return ctx
