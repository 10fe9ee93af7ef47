"""Models that break the agent protocol: bad tool calls, rambling, refusals, empty claims.

``ProtocolGuard`` judges every text answer of a phase before CrewAI acts on it; ``WorkLedger``
and ``previous_work`` tell the fix task what the crew's earlier answers really changed.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal, NoReturn

from crewai.agents.parser import AgentAction, AgentFinish, OutputParserError, parse
from crewai.hooks import (
    register_after_llm_call_hook,
    register_before_llm_call_hook,
    unregister_after_llm_call_hook,
    unregister_before_llm_call_hook,
)
from crewai.hooks.dispatch import HookAborted
from crewai.hooks.llm_hooks import model_call_hooks_dispatched
from crewai.utilities.string_utils import sanitize_tool_name
from pydantic import BaseModel, ValidationError

from darkfactory.crews.texts import texts
from darkfactory.engine.native_calls import NativeCalls, NativeKind
from darkfactory.engine.state import Escalate
from darkfactory.errors import DarkFactoryError
from darkfactory.models.prompt_guard import PromptGuard

#: Consecutive protocol errors by one agent that fail its phase (class ``model_protocol``).
MAX_PROTOCOL_ERRORS = 3
#: Most characters of a model's text quoted in a reason, a trace event or a prompt.
MAX_QUOTE_CHARS = 300
#: Finish reasons with which providers report that they refused (lower case).
REFUSAL_FINISH_REASONS = frozenset(
    {"content_filter", "content_filtered", "refusal", "safety", "prohibited_content", "blocklist"}
)
#: How a refusal starts (after an optional apology), compared in lower case.
_REFUSAL = re.compile(
    r"^(?:(?:i'?m|i am)\s+(?:so\s+|very\s+|really\s+)?sorry|sorry|unfortunately|apologies)?"
    r"[\s,.!:;-]*(?:but\s+)?"
    r"(?:i\s+(?:can'?t|cannot|can not|won'?t|will not|am unable to|'?m unable to|am not able to"
    r"|'?m not able to)\s+(?:help|assist|comply|do that|do this|fulfil|fulfill|continue with"
    r"|provide (?:that|this|help|assistance))"
    r"|i\s+(?:must|have to)\s+decline|i\s+refuse\b)"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)")
_ACTION_INPUT = re.compile(r"Action\s*\d*\s*Input\s*\d*\s*:[\s]*(.*)", re.S)

#: The ``detail`` of a ``prose`` error whose reply was an empty final answer.
EMPTY = "an empty final answer"

Kind = Literal["ok", "answer", "refusal", "unknown_tool", "invalid_json", "bad_arguments", "prose"]
PROTOCOL_ERRORS: tuple[Kind, ...] = ("unknown_tool", "invalid_json", "bad_arguments", "prose")

#: What an agent is told after each kind of protocol error (``{tool}``, ``{tools}``,
#: ``{expected}``, ``{detail}``): ``darkfactory.protocol`` in crews/prompts.json.
NOTES = texts("protocol", PROTOCOL_ERRORS)
#: The same for a native tool call (function calling): ``darkfactory.native``. A native
#: call whose arguments are no JSON gets CrewAI's own answer: no hook sees it.
NATIVE_NOTES = texts("native", ("unknown_tool", "bad_arguments"))


def quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """A model's text made safe to quote: no control characters, one line, bounded."""
    text = unicodedata.normalize("NFC", text[: limit * 8])
    text = " ".join(_CONTROL.sub(" ", _ANSI.sub("", text)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def said_in(text: str) -> str:
    """What a reply says, quoted: its final answer if it has one, else all of it."""
    answer = text.split("Final Answer:")[-1] if "Final Answer:" in text else text
    return quote(re.sub(r"^\s*Thought\s*:", "", answer.strip()))


def refusal_in(text: str) -> str | None:
    """The refusal a reply (a final answer or prose) starts with, quoted; None if none."""
    said = said_in(text)
    probe = said.lower().replace("\u2019", "'").lstrip("\"'*` ")
    return said if _REFUSAL.match(probe) else None


# -- judging one reply ---------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What one reply is: fine (``ok``/``answer``), a refusal, or a protocol error."""

    kind: Kind
    tool: str = ""
    detail: str = ""

    @property
    def is_error(self) -> bool:
        return self.kind in PROTOCOL_ERRORS


def _select(name: str, tools: Mapping[str, type[BaseModel] | None]) -> str | None:
    """The tool CrewAI would run for ``name`` (its own rule: same name, or 85% alike)."""
    wanted = sanitize_tool_name(name)
    if wanted in tools:
        return wanted
    best = max(tools, key=lambda t: SequenceMatcher(None, t, wanted).ratio(), default=None)
    if best is not None and SequenceMatcher(None, best, wanted).ratio() > 0.85:
        return best
    return None


def _lenient_object(raw: str) -> dict[str, Any] | None:
    """The arguments as CrewAI reads them (JSON or a Python literal), if they are an object."""
    for load in (json.loads, ast.literal_eval):
        with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = load(raw)
            if isinstance(value, dict):
                return value
    return None


def _strict_json_error(raw: str) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return f"JSON error: {exc}"
    return None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"


def _schema_problems(schema: type[BaseModel], args: dict[str, Any]) -> str | None:
    try:
        schema.model_validate(args)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
    return None


def judge(text: str, tools: Mapping[str, type[BaseModel] | None]) -> Verdict:
    """Judge one reply against the agent's tools (sanitized name -> args schema)."""
    try:
        parsed = parse(text)
    except OutputParserError:
        parsed = None
    if parsed is None or isinstance(parsed, AgentFinish):
        refused = refusal_in(text)
        if refused is not None:
            return Verdict("refusal", detail=refused)
        if parsed is None:
            return Verdict("prose")
        # Nothing after "Final Answer:": no answer (a refusal or a glitch; a refusal finish
        # reason, judged first, escalates). Reminded like prose, as CrewAI re-asks an empty reply.
        return Verdict("answer") if str(parsed.output).strip() else Verdict("prose", detail=EMPTY)
    assert isinstance(parsed, AgentAction)
    tool = _select(parsed.tool, tools)
    if tool is None:
        return Verdict("unknown_tool", tool=quote(parsed.tool, 80))
    found = _ACTION_INPUT.search(text)
    raw = found.group(1).strip().strip("`").strip() if found else ""
    strict = _strict_json_error(raw)
    args = _lenient_object(raw) if strict else json.loads(raw)
    if args is None:  # CrewAI may still repair it: judge what it would run
        args = _lenient_object(parsed.tool_input)
    if args is None:
        return Verdict("invalid_json", tool=tool, detail=quote(strict or "empty", 160))
    schema = tools[tool]
    problems = _schema_problems(schema, args) if schema is not None else None
    if problems is not None:
        kind: Kind = "invalid_json" if strict else "bad_arguments"
        return Verdict(kind, tool=tool, detail=quote(strict or problems, 240))
    return Verdict("ok", tool=tool)


def expected_args(schema: type[BaseModel] | None) -> str:
    """A tool's arguments as the model should send them, from its args schema."""
    if schema is None:
        return "a JSON object"
    spec = schema.model_json_schema()
    required = set(spec.get("required", []))
    fields = [
        f'"{name}": {prop.get("type", "value")}{"" if name in required else " (optional)"}'
        for name, prop in spec.get("properties", {}).items()
    ]
    return "{" + ", ".join(fields) + "}"


def note_for(verdict: Verdict, tools: Mapping[str, type[BaseModel] | None]) -> str:
    """What the agent is told about a protocol error: its tools, or the expected arguments."""
    return NOTES[verdict.kind].format(
        tool=verdict.tool,
        tools=", ".join(sorted(tools)) or "(none)",
        expected=expected_args(tools.get(verdict.tool)),
        detail=verdict.detail,
    )


def native_note(
    kind: NativeKind, tool: str, detail: str, tools: Mapping[str, type[BaseModel] | None]
) -> str:
    """What the agent is told about a native call's protocol error (``NATIVE_NOTES``)."""
    return NATIVE_NOTES[kind].format(
        tool=tool,
        tools=", ".join(sorted(tools)) or "(none)",
        expected=expected_args(tools.get(tool)),
        detail=detail,
    )


# -- how a phase ends -----------------------------------------------------------------------
class ModelProtocolError(DarkFactoryError):
    """An agent broke the tool protocol ``MAX_PROTOCOL_ERRORS`` times in a row (the run fails)."""

    failure_class = "model_protocol"

    def __init__(self, role: str, phase: str, errors: Sequence[Verdict]) -> None:
        self.role = role
        self.phase = phase
        self.errors = list(errors)
        what = ", ".join(f"{e.kind} {e.tool}".strip() for e in errors)
        super().__init__(
            f"model_protocol: the {role} broke the tool protocol {len(errors)} times in a "
            f"row in phase {phase} ({what}); its model does not follow CrewAI's tool-call "
            "format: give the role a more capable model (agents.yaml llm: or --model) and "
            "start a new run"
        )


class ModelRefused(Escalate):
    """An agent's model refused the task: a person must look (the run is escalated)."""

    def __init__(self, role: str, phase: str, said: str, finish_reason: str | None) -> None:
        self.role = role
        self.phase = phase
        self.said = said
        self.finish_reason = finish_reason
        how = f" (finish reason {finish_reason})" if finish_reason else ""
        super().__init__(
            f'the {role}\'s model refused in phase {phase}{how}: "{said or "(no text)"}"; '
            "a person should look at the spec and the model"
        )


Emit = Callable[..., None]


class ProtocolGuard:
    """Judges each text reply of a phase's agents before CrewAI acts on it.

    A protocol error (a tool the agent lacks, arguments that are no JSON object or do not
    fit the schema, prose that is neither a tool call nor an answer) is sent back with a
    note naming the tools or the expected arguments, and the model is asked again, at most
    ``MAX_PROTOCOL_ERRORS - 1`` times in a row; then the phase stops (``stop``). A refusal
    stops it at once. Before each such extra call (CrewAI's before-call hooks do not see
    it) ``before_call`` runs (the budget) and ``prompts`` fits the prompt to its ceiling.
    """

    def __init__(
        self, emit: Emit, before_call: Callable[[], None], *, prompts: PromptGuard
    ) -> None:
        self.emit = emit
        self.before_call = before_call
        self.prompts = prompts
        self.phase = ""
        #: What stopped the phase: ``ModelProtocolError`` or ``ModelRefused``.
        self.stop: DarkFactoryError | None = None
        #: Per role: a refusal finish reason not judged yet, and the text of its call.
        self._finish: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        #: Native tool calls (function calling): judged as they run (engine/native_calls.py).
        self.native = NativeCalls(native_note)
        #: Per role: its native protocol errors in a row.
        self._native_errors: dict[str, list[Verdict]] = {}

    @contextlib.contextmanager
    def enforced(self, phase: str) -> Iterator[ProtocolGuard]:
        """Install the guard's hooks (and the finish-reason listener) for one phase."""
        from crewai.events import crewai_event_bus
        from crewai.events.types.llm_events import LLMCallCompletedEvent

        self.phase, self.stop = phase, None
        self._native_errors = {}
        register_before_llm_call_hook(self._before)
        register_after_llm_call_hook(self._after)
        crewai_event_bus.register_handler(LLMCallCompletedEvent, self._completed)
        try:
            with self.native.enforced():
                yield self
        finally:
            unregister_before_llm_call_hook(self._before)
            unregister_after_llm_call_hook(self._after)
            crewai_event_bus.off(LLMCallCompletedEvent, self._completed)

    # -- hooks ----------------------------------------------------------------------------
    def _before(self, context: Any) -> None:
        if self.stop is None:
            # A refused call whose reply never reached _after (CrewAI turns an empty reply
            # down and asks again): the refusal stops the phase before the new call.
            role = str(getattr(context.agent, "role", "") or "?")
            refused = self._finish_verdict(role)  # flushes CrewAI's event bus
            if refused is not None:
                self._refuse(role, refused)
            self._settle_native(role)  # after that flush: its JSON errors are events
        if self.stop is not None:  # every later call of the phase, e.g. the manager's
            raise HookAborted(str(self.stop), source="darkfactory.engine.protocol")

    def _settle_native(self, role: str) -> None:
        """Count ``role``'s native calls since its last model call: a good one ends a streak
        of protocol errors; ``MAX_PROTOCOL_ERRORS`` in a row stop the phase here."""
        errors = self._native_errors.setdefault(role, [])
        for kind, tool, detail in self.native.take(role):
            if kind == "ok":
                errors.clear()
            else:
                self._count(role, errors, Verdict(kind, tool, detail))

    def _count(self, role: str, errors: list[Verdict], verdict: Verdict) -> None:
        """One more protocol error in ``role``'s streak ``errors``: traced, and the phase
        stopped (``ModelProtocolError``) at ``MAX_PROTOCOL_ERRORS`` in a row."""
        errors.append(verdict)
        self.emit(
            "protocol_error",
            role=role,
            error=verdict.kind,
            tool=verdict.tool,
            detail=verdict.detail,
            streak=len(errors),
            limit=MAX_PROTOCOL_ERRORS,
        )
        if len(errors) >= MAX_PROTOCOL_ERRORS:
            failed = ModelProtocolError(role, self.phase, errors)
            self.emit(
                "protocol_failure",
                role=role,
                failure_class=failed.failure_class,
                errors=[e.kind for e in errors],
            )
            self._stop(failed)

    def _completed(self, source: Any, event: Any) -> None:
        reason = str(getattr(event, "finish_reason", None) or "").lower()
        if reason in REFUSAL_FINISH_REASONS:
            text = event.response if isinstance(event.response, str) else ""
            with self._lock:
                self._finish[str(event.agent_role or "")] = (reason, text)

    def _after(self, context: Any) -> str | None:
        executor = context.executor
        response = context.response
        if executor is None or not isinstance(response, str):
            return None
        role = str(getattr(context.agent, "role", "") or "?")
        tools = {
            sanitize_tool_name(t.name): getattr(t, "args_schema", None)
            for t in (getattr(executor, "tools", None) or [])
        }
        # With native function calling, tool calls never come as text: a text reply is the
        # final answer (only a refusal is judged), never prose to remind about.
        native = bool(getattr(getattr(executor, "state", None), "use_native_tools", False))
        errors: list[Verdict] = []
        while True:
            verdict = self._judge(role, response, tools)
            if native and verdict.kind in PROTOCOL_ERRORS:
                verdict = Verdict("answer")
            if verdict.kind == "refusal":
                self._refuse(role, verdict)
            if not verdict.is_error:
                return response if errors else None
            self._count(role, errors, verdict)
            response = self._ask_again(context, role, response, note_for(verdict, tools))

    def _judge(self, role: str, response: str, tools: Mapping[str, Any]) -> Verdict:
        refused = self._finish_verdict(role)
        return refused if refused is not None else judge(response, tools)

    def _finish_verdict(self, role: str) -> Verdict | None:
        """The refusal a finish reason reported for ``role``'s calls so far, if any."""
        from crewai.events import crewai_event_bus

        crewai_event_bus.flush(timeout=10.0)  # the finish reason of the call just made
        with self._lock:
            finish = self._finish.pop(role, None)
        if finish is None:
            return None
        reason, text = finish
        return Verdict("refusal", tool=reason, detail=refusal_in(text) or said_in(text))

    def _refuse(self, role: str, verdict: Verdict) -> NoReturn:
        reason = verdict.tool or None
        self.emit("model_refusal", role=role, text=verdict.detail, finish_reason=reason)
        self._stop(ModelRefused(role, self.phase, verdict.detail, reason))

    def settled(self) -> DarkFactoryError | None:
        """What stopped the phase, or a refusal only a finish reason showed (e.g. a
        provider call that refused and then failed its retries): ``CrewPhases`` raises it."""
        from crewai.events import crewai_event_bus

        if self.stop is None:
            crewai_event_bus.flush(timeout=10.0)
            with self._lock:
                late = next(iter(self._finish.items()), None)
                self._finish.clear()
            if late is not None:
                role, (reason, text) = late
                said = said_in(text)
                self.emit("model_refusal", role=role, text=said, finish_reason=reason)
                self.stop = ModelRefused(role, self.phase, said, reason)
        return self.stop

    def _stop(self, error: DarkFactoryError) -> NoReturn:
        if self.stop is None:
            self.stop = error
        raise HookAborted(str(self.stop), source="darkfactory.engine.protocol")

    def _ask_again(self, context: Any, role: str, response: str, note: str) -> str:
        """The bad reply and the note go into the agent's conversation; the model answers."""
        context.messages.append({"role": "assistant", "content": response[:4000]})
        context.messages.append({"role": "user", "content": note})
        try:
            self.before_call()
            # Cut in place, as the before-call hook cuts (a prompt_cut event), or refused.
            self.prompts.check(context.messages, context.llm, role)
        except DarkFactoryError as exc:  # the budget, PromptTooLarge: CrewPhases raises them
            raise HookAborted(str(exc), source="darkfactory.engine.protocol") from exc
        with model_call_hooks_dispatched():
            answer = context.llm.call(
                list(context.messages),
                callbacks=getattr(context.executor, "callbacks", None),
                from_task=context.task,
                from_agent=context.agent,
            )
        return answer if isinstance(answer, str) else ""
