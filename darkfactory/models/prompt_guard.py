"""The prompt ceiling: before each model call a prompt over ``llm.max_prompt_tokens`` (or the
model's context window) is cut in place, oldest tool outputs first, or the call is refused.

What is never cut: system messages and the first user message (the task). Messages are
never removed, only their text replaced, so roles keep alternating and every native tool
call keeps its answer. Tokens are estimated as the scripted model counts them (4
characters a token, ``scripted.estimate_tokens``), so no provider is asked to count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from darkfactory.errors import DarkFactoryError
from darkfactory.models.scripted import estimate_tokens, messages_text

OBSERVATION = "\nObservation:"
#: What stands in for an earlier tool output that was cut.
DROPPED_OUTPUT = (
    "[earlier tool output removed to keep the prompt under its token ceiling: "
    "call the tool again if you need it]"
)
DROPPED_TURN = "[earlier message removed to keep the prompt under its token ceiling]"
SHORTENED = "\n[... {n} characters cut to keep the prompt under its token ceiling ...]\n"


class PromptTooLarge(DarkFactoryError):
    """A prompt stays over its ceiling with everything that may be cut cut."""

    def __init__(self, *, role: str, model: str, tokens: int, ceiling: int) -> None:
        self.role = role
        self.model = model
        self.tokens = tokens
        self.ceiling = ceiling
        super().__init__(
            f"the prompt of role {role!r} ({model}) is ~{tokens} tokens even with every earlier "
            f"tool output cut, over its ceiling of {ceiling} (llm.max_prompt_tokens or the "
            "model's context window): raise llm.max_prompt_tokens, use a model with a larger "
            "context window, or shorten the spec"
        )


@dataclass(frozen=True)
class Cut:
    """What ``fit`` did to one prompt."""

    tokens_before: int
    tokens_after: int
    dropped: int  # earlier tool outputs replaced by DROPPED_OUTPUT
    turns: int  # other earlier messages replaced by DROPPED_TURN
    shortened: int  # newest tool outputs shortened in the middle


def _text(message: Any) -> str:
    return messages_text([message])


def _tokens(messages: list[Any]) -> int:
    return estimate_tokens(messages_text(messages))


def _set(message: Any, text: str) -> None:
    message["content"] = text


def _is_tool_output(message: Any) -> bool:
    role = message.get("role")
    return role == "tool" or (role == "assistant" and OBSERVATION in _text(message))


def _without_output(message: Any) -> str:
    """A tool-output message's text with the output itself replaced."""
    if message.get("role") == "tool":
        return DROPPED_OUTPUT
    head = _text(message).split(OBSERVATION, 1)[0]
    return f"{head}{OBSERVATION} {DROPPED_OUTPUT}"


def fit(messages: list[Any], ceiling: int) -> Cut | None:
    """Cut ``messages`` in place until their estimate is at most ``ceiling`` tokens.

    In order: earlier tool outputs (oldest first), then earlier messages' text (oldest
    first), then the middle of the newest turn's tool outputs. "Earlier" is before the
    model's last answer; the newest turn is that answer and what followed it. Returns
    None when nothing had to be cut; raises nothing (the caller compares the result).
    """
    before = _tokens(messages)
    if before <= ceiling:
        return None
    firsts = {i for i, m in enumerate(messages) if m.get("role") == "system"}
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first_user is not None:
        firsts.add(first_user)
    last_answer = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
    )
    earlier = [i for i in range(max(last_answer, 0)) if i not in firsts]
    newest = [i for i in range(max(last_answer, 0), len(messages)) if i not in firsts]
    dropped = turns = shortened = 0
    tokens = before
    for i in earlier:
        if tokens <= ceiling:
            break
        if _is_tool_output(messages[i]) and DROPPED_OUTPUT not in _text(messages[i]):
            _set(messages[i], _without_output(messages[i]))
            dropped += 1
            tokens = _tokens(messages)
    for i in earlier:
        if tokens <= ceiling:
            break
        text = _text(messages[i])
        if text and text != DROPPED_TURN:  # an action's text too (a whole file written)
            _set(messages[i], DROPPED_TURN)
            turns += 1
            tokens = _tokens(messages)
    for i in newest:
        if tokens <= ceiling:
            break
        if not _is_tool_output(messages[i]):
            continue
        text = _text(messages[i])
        excess = (tokens - ceiling) * 4 + len(SHORTENED) + 16
        if excess >= len(text):
            continue
        # Keep the start (what the output is) and the end (where a test log says how it went).
        keep = len(text) - excess
        head, tail = text[: keep // 2], text[len(text) - (keep - keep // 2) :]
        _set(messages[i], head + SHORTENED.format(n=excess) + tail)
        shortened += 1
        tokens = _tokens(messages)
    return Cut(before, tokens, dropped, turns, shortened)


@dataclass
class PromptGuard:
    """Keeps every prompt of a crew phase within its ceiling (CrewAI's before-call hook).

    ``max_prompt_tokens`` is factory.yaml's ``llm.max_prompt_tokens``; each call's ceiling
    is it or the model's context window, whichever is smaller. ``emit`` writes trace events
    (``RunContext.emit``). A refusal is remembered in ``refused`` and every later call of the
    phase is refused too: CrewAI hands a coworker's refusal to the manager as a tool error,
    so the caller raises ``refused`` after the crew returns.
    """

    max_prompt_tokens: int | None
    emit: Callable[..., None]
    refused: PromptTooLarge | None = None

    def ceiling(self, llm: Any) -> int:
        window = getattr(llm, "get_context_window_size", None)
        sizes = [int(window())] if callable(window) else []
        if self.max_prompt_tokens is not None:
            sizes.append(self.max_prompt_tokens)
        return min(sizes) if sizes else 0

    def check(self, messages: list[Any], llm: Any, role: str) -> None:
        """Cut ``messages`` to the ceiling (a ``prompt_cut`` event), or raise ``PromptTooLarge``."""
        if self.refused is not None:
            raise self.refused
        ceiling = self.ceiling(llm)
        if ceiling <= 0:
            return
        model = str(getattr(llm, "model", llm))
        cut = fit(messages, ceiling)
        if cut is None:
            return
        if cut.tokens_after > ceiling:
            self.refused = PromptTooLarge(
                role=role, model=model, tokens=cut.tokens_after, ceiling=ceiling
            )
            self.emit(
                "prompt_refused",
                role=role,
                model=model,
                ceiling=ceiling,
                tokens=cut.tokens_after,
                tokens_before=cut.tokens_before,
            )
            raise self.refused
        self.emit(
            "prompt_cut",
            role=role,
            model=model,
            ceiling=ceiling,
            tokens_before=cut.tokens_before,
            tokens_after=cut.tokens_after,
            dropped=cut.dropped,
            turns=cut.turns,
            shortened=cut.shortened,
        )

    @contextlib.contextmanager
    def enforced(self) -> Iterator[None]:
        """Install the before-call hook for the duration of a crew phase."""
        from crewai.hooks import register_before_llm_call_hook, unregister_before_llm_call_hook
        from crewai.hooks.dispatch import HookAborted

        def hook(context: Any) -> None:
            role = str(getattr(context.agent, "role", None) or "(no agent)")
            try:
                self.check(context.messages, context.llm, role)
            except PromptTooLarge as exc:
                raise HookAborted(str(exc), source="darkfactory.models.prompt_guard") from exc

        register_before_llm_call_hook(hook)
        try:
            yield
        finally:
            unregister_before_llm_call_hook(hook)
