"""The scripted model: a CrewAI ``BaseLLM`` that plays a playbook.

It is a test and rehearsal tool, not AI: every answer comes from the playbook, in order,
per role. It writes its answers in the text format CrewAI's agent loop parses
(``Action:`` / ``Action Input:`` or ``Final Answer:``), so the real crew, the manager's real
delegation tool, the real file tools and the real sandbox all run.

Token counts of a scripted run are estimates (4 characters a token), labelled as such.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import BaseLLM, llm_call_context
from pydantic import PrivateAttr

from darkfactory.errors import DarkFactoryError
from darkfactory.models.playbook import Playbook, Step
from darkfactory.reporting.trace import DELEGATE_TOOL

ASK_TOOL = "ask_question_to_coworker"


class PlaybookExhausted(DarkFactoryError):
    """A role asked the scripted model for more answers than its playbook has."""


class PlaybookMismatch(DarkFactoryError):
    """The prompt did not contain what the playbook step expected."""


@dataclass
class ScriptedCall:
    """One call the scripted model answered."""

    role: str
    step: int
    kind: str
    prompt: str
    response: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


def estimate_tokens(text: str) -> int:
    """A deterministic token estimate: 4 characters a token, rounded up."""
    return math.ceil(len(text) / 4)


def messages_text(messages: str | list[Any]) -> str:
    if isinstance(messages, str):
        return messages
    parts = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", m)
        if isinstance(content, list):
            content = " ".join(
                c.get("text", "") if isinstance(c, dict) else str(c) for c in content
            )
        parts.append(str(content or ""))
    return "\n".join(parts)


def role_text_of(role_keys: dict[str, str], key_or_role: str) -> str:
    """The role text (agents.yaml ``role:``) of a role key; a role text is returned as is."""
    for text, key in role_keys.items():
        if key == key_or_role and text != text.casefold():
            return text
    for text, key in role_keys.items():
        if key == key_or_role:
            return text
    return key_or_role


def step_call(step: Step, role_text: Callable[[str], str]) -> tuple[str, dict[str, Any]]:
    """The tool a ``tool``, ``delegate`` or ``ask`` step calls, and its arguments.

    ``role_text`` turns a role key into the role text CrewAI matches coworkers by.
    """
    if step.tool is not None:
        return step.tool, dict(step.args)
    if step.delegate is not None:
        return DELEGATE_TOOL, {
            "task": step.delegate.task,
            "context": step.delegate.context,
            "coworker": role_text(step.delegate.to),
        }
    if step.ask is not None:
        return ASK_TOOL, {
            "question": step.ask.question,
            "context": step.ask.context,
            "coworker": role_text(step.ask.to),
        }
    raise ValueError(f"a {step.kind} step calls no tool")


def render_text(step: Step, role_text: Callable[[str], str]) -> str:
    """A step as the text CrewAI's agent loop parses (``Action:`` or ``Final Answer:``)."""
    thought = step.thought or "I follow the plan."
    if step.raw is not None:
        return step.raw
    if step.answer is not None:
        return f"Thought: {thought}\nFinal Answer: {step.answer}"
    name, args = step_call(step, role_text)
    return f"Thought: {thought}\nAction: {name}\nAction Input: {json.dumps(args)}"


@dataclass
class _Cursor:
    position: dict[str, int] = field(default_factory=dict)


class ScriptedLLM(BaseLLM):
    """Plays a ``Playbook``: the next step of the asking agent's role on each call."""

    llm_type: str = "scripted"
    playbook: Playbook
    #: role text (as in agents.yaml ``role:``) -> role key
    role_keys: dict[str, str]

    _cursor: _Cursor = PrivateAttr(default_factory=_Cursor)
    _calls: list[ScriptedCall] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _fatal: DarkFactoryError | None = PrivateAttr(default=None)

    def __init__(self, playbook: Playbook, role_keys: dict[str, str], **kwargs: Any) -> None:
        super().__init__(  # type: ignore[call-arg]  # pydantic fields of this subclass
            model=f"scripted:{playbook.path or 'playbook'}",
            provider="scripted",
            playbook=playbook,
            role_keys=role_keys,
            **kwargs,
        )

    # -- what CrewAI asks of a model ------------------------------------------------------
    def supports_function_calling(self) -> bool:
        return False

    def supports_stop_words(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 128_000

    def get_input_tokens_count(
        self, messages: Any, tools: Any = None, response_model: Any = None
    ) -> int:
        return estimate_tokens(messages_text(messages))

    @property
    def calls(self) -> list[ScriptedCall]:
        return list(self._calls)

    def positions(self) -> dict[str, int]:
        """How many steps each role has played (saved with the run, for resume)."""
        with self._lock:
            return dict(self._cursor.position)

    def restore(self, positions: dict[str, int]) -> None:
        """Continue a resumed run where its last finished step left the playbook."""
        with self._lock:
            self._cursor.position = dict(positions)

    def remaining(self) -> dict[str, int]:
        """Steps not yet played, per role."""
        return {
            role: len(steps) - self._cursor.position.get(role, 0)
            for role, steps in self.playbook.roles.items()
        }

    def _role_key(self, from_agent: Any) -> str:
        role = getattr(from_agent, "role", None)
        if role is None:
            raise PlaybookExhausted(
                "the scripted model was called without an agent; it can only answer agents"
            )
        key = self.role_keys.get(role) or self.role_keys.get(role.strip().casefold())
        if key is None:
            # CrewAI's built-in manager (no manager in agents.yaml) or a renamed role.
            key = role
        return key

    def _next_step(self, role: str) -> tuple[int, Step]:
        steps = self.playbook.roles.get(role, [])
        with self._lock:
            i = self._cursor.position.get(role, 0)
            if i >= len(steps):
                raise PlaybookExhausted(
                    f"the playbook {self.playbook.path or ''} has no step left for role "
                    f"{role!r} (it has {len(steps)}); the pipeline asked it once more. "
                    "Add a step for this call or check which phase asked."
                )
            self._cursor.position[role] = i + 1
        return i, steps[i]

    def _render(self, step: Step) -> str:
        return render_text(step, self.role_text)

    def role_text(self, key_or_role: str) -> str:
        """The role text CrewAI matches coworkers by, for a role key (or a role text)."""
        return role_text_of(self.role_keys, key_or_role)

    def call(
        self,
        messages: str | list[Any],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: Any | None = None,
        **kwargs: Any,
    ) -> str:
        # CrewAI turns a coworker's exception into a tool error for the manager; the first
        # playbook error is kept and raised again on every later call, and the pipeline
        # raises it after the crew returns, so a broken rehearsal fails instead of limping on.
        if self._fatal is not None:
            raise self._fatal
        try:
            with llm_call_context():
                return self._call(
                    messages, tools, callbacks, available_functions, from_task, from_agent
                )
        except (PlaybookExhausted, PlaybookMismatch) as exc:
            self._fatal = exc
            raise

    @property
    def fatal(self) -> DarkFactoryError | None:
        """The first playbook error of this run, if any."""
        return self._fatal

    def _call(
        self,
        messages: str | list[Any],
        tools: list[dict[str, Any]] | None,
        callbacks: list[Any] | None,
        available_functions: dict[str, Any] | None,
        from_task: Any | None,
        from_agent: Any | None,
    ) -> str:
        started = time.perf_counter()
        self._emit_call_started_event(
            messages=messages,
            tools=tools,
            callbacks=callbacks,
            available_functions=available_functions,
            from_task=from_task,
            from_agent=from_agent,
        )
        prompt = messages_text(messages)
        role = self._role_key(from_agent)
        index, step = self._next_step(role)
        for needle in step.expectations:
            if needle not in prompt:
                raise PlaybookMismatch(
                    f"playbook {self.playbook.path}: step {index + 1} of role {role!r} expects "
                    f"the prompt to contain {needle!r}, and it does not. "
                    f"The prompt ends with: {prompt[-300:]!r}"
                )
        if step.delay_s:
            time.sleep(step.delay_s)
        response = self._render(step)
        usage = {
            "prompt_tokens": estimate_tokens(prompt),
            "completion_tokens": estimate_tokens(response),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._track_token_usage_internal(usage)
        record = ScriptedCall(
            role=role,
            step=index + 1,
            kind=step.kind,
            prompt=prompt,
            response=response,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            latency_s=time.perf_counter() - started,
        )
        with self._lock:
            self._calls.append(record)
        self._emit_call_completed_event(
            response=response,
            call_type=LLMCallType.LLM_CALL,
            from_task=from_task,
            from_agent=from_agent,
            messages=messages,
            usage=usage,
            finish_reason=step.finish_reason,
        )
        return response
