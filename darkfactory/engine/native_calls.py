"""Protocol errors of native tool calls (a model with function calling), for ``ProtocolGuard``.

A native call never comes as text, so ``ProtocolGuard._after`` cannot judge it: CrewAI runs
it and answers an unknown tool with "Tool not found" and arguments that do not fit with the
tool's exception. Here the answer becomes the same note a text reply gets (the tools, or
the expected arguments), and the errors count the same way: ``MAX_PROTOCOL_ERRORS`` in a
row by one agent, with no good call between, stop its phase before its next model call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

from crewai.hooks import register_after_tool_call_hook, unregister_after_tool_call_hook
from crewai.utilities.string_utils import sanitize_tool_name
from pydantic import BaseModel, ValidationError

#: CrewAI's code for arguments that are not JSON (``parse_tool_call_args``): its tool hooks
#: never see such a call, only ``ToolFailureDetectedEvent``.
JSON_DECODE_ERROR = "json_decode_error"

#: What one native call was: fine, or one of ``protocol.PROTOCOL_ERRORS``.
NativeKind = Literal["ok", "unknown_tool", "invalid_json", "bad_arguments"]
#: ``(kind, tool, detail)`` of one native call.
Outcome = tuple[NativeKind, str, str]
#: ``ProtocolGuard``'s note for a protocol error: ``(kind, tool, detail, tools)`` -> text.
NoteFor = Callable[[NativeKind, str, str, dict[str, type[BaseModel] | None]], str]


class NativeCalls:
    """The native tool calls of a phase, judged as they run; settled before each model call."""

    def __init__(self, note_for: NoteFor) -> None:
        self.note_for = note_for
        self._pending: dict[str, list[Outcome]] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def enforced(self) -> Iterator[NativeCalls]:
        from crewai.events import crewai_event_bus
        from crewai.events.types.tool_usage_events import ToolFailureDetectedEvent

        register_after_tool_call_hook(self._after_tool)
        crewai_event_bus.register_handler(ToolFailureDetectedEvent, self._failed)
        try:
            yield self
        finally:
            unregister_after_tool_call_hook(self._after_tool)
            crewai_event_bus.off(ToolFailureDetectedEvent, self._failed)

    def take(self, role: str) -> list[Outcome]:
        """``role``'s native calls since the last model call, in order (then forgotten).

        A JSON error arrives as an event only: the caller flushes CrewAI's event bus first
        (``ProtocolGuard._before`` does, once, for the finish reasons too).
        """
        with self._lock:
            return self._pending.pop(role, [])

    # -- CrewAI's hooks ---------------------------------------------------------------------
    def _after_tool(self, context: Any) -> str | None:
        role = str(getattr(context.agent, "role", "") or "?")
        name = sanitize_tool_name(str(context.tool_name or ""))
        tools = tools_of(context.agent)
        result = context.tool_result if isinstance(context.tool_result, str) else ""
        if context.tool is None and name not in tools:
            outcome: Outcome = ("unknown_tool", name, "")
        else:
            problem = _misfit(tools.get(name), context.tool_input, result)
            outcome = ("bad_arguments", name, problem) if problem else ("ok", name, "")
        with self._lock:
            self._pending.setdefault(role, []).append(outcome)
        kind, tool, detail = outcome
        return None if kind == "ok" else self.note_for(kind, tool, detail, tools)

    def _failed(self, source: Any, event: Any) -> None:
        failure = getattr(event, "failure", None)
        if getattr(failure, "code", None) != JSON_DECODE_ERROR:
            return
        role = str(getattr(event, "agent_role", "") or "?")
        detail = str(getattr(failure, "message", "") or "")[:300]
        with self._lock:
            self._pending.setdefault(role, []).append(
                ("invalid_json", sanitize_tool_name(str(event.tool_name or "")), detail)
            )


def tools_of(agent: Any) -> dict[str, type[BaseModel] | None]:
    """The tools ``agent`` runs with (its executor's, delegation tools included)."""
    executor = getattr(agent, "agent_executor", None)
    found = getattr(executor, "tools", None) or getattr(agent, "tools", None) or []
    return {sanitize_tool_name(t.name): getattr(t, "args_schema", None) for t in found}


def _misfit(schema: type[BaseModel] | None, args: Any, result: str) -> str:
    """Why ``args`` do not fit ``schema`` ("" if they do): only for a call that failed."""
    if schema is None or not result.startswith("Error executing tool"):
        return ""
    try:
        schema.model_validate(args if isinstance(args, dict) else {})
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
    return ""
