"""The replay model: answers a run's calls from a cassette, with no provider.

``--model replay:CASSETTE.jsonl`` plays back a run recorded with ``--record``
(``darkfactory.models.cassette``): no key, no network, no cost. Each role gets its own
``ReplayLLM`` (sharing the cassette) that answers the way the recorded model did: native
tool calls or text, as the cassette's header says. A request that differs from the
recorded one stops the replay with ``ReplayDivergence``.
"""

from __future__ import annotations

from typing import Any

from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import BaseLLM, llm_call_context
from pydantic import PrivateAttr

from darkfactory.models.cassette import Cassette, ReplayDivergence, result_of
from darkfactory.models.scripted import estimate_tokens, messages_text


class ReplayLLM(BaseLLM):
    """Answers a role's calls from a ``Cassette`` (one instance per role, sharing it)."""

    llm_type: str = "replay"

    _cassette: Cassette = PrivateAttr()
    _caps: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, cassette: Cassette, role: str) -> None:
        super().__init__(model=f"replay:{cassette.path}", provider="replay")
        self._cassette = cassette
        self._caps = cassette.capabilities(role)

    @property
    def cassette(self) -> Cassette:
        return self._cassette

    @property
    def fatal(self) -> ReplayDivergence | None:
        return self._cassette.fatal

    def supports_function_calling(self) -> bool:
        return bool(self._caps.get("function_calling", False))

    def supports_stop_words(self) -> bool:
        return bool(self._caps.get("stop_words", False))

    def get_context_window_size(self) -> int:
        return int(self._caps.get("context_window") or 128_000)

    def get_input_tokens_count(
        self, messages: Any, tools: Any = None, response_model: Any = None
    ) -> int:
        return estimate_tokens(messages_text(messages))

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
    ) -> Any:
        role = str(getattr(from_agent, "role", None) or "(no agent)")
        with llm_call_context():
            self._emit_call_started_event(
                messages=messages,
                tools=tools,
                callbacks=callbacks,
                available_functions=available_functions,
                from_task=from_task,
                from_agent=from_agent,
            )
            try:
                exchange = self._cassette.play(role, messages, tools)
            except ReplayDivergence as exc:
                self._emit_call_failed_event(
                    error=str(exc).split("\n", 1)[0], from_task=from_task, from_agent=from_agent
                )
                raise
            usage = {k: int(v) for k, v in (exchange.get("usage") or {}).items()}
            usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get(
                "completion_tokens", 0
            )
            self._track_token_usage_internal(usage)
            result = result_of(exchange["response"], response_model)
            self._emit_call_completed_event(
                response=result,
                call_type=LLMCallType.TOOL_CALL
                if "tool_calls" in exchange["response"]
                else LLMCallType.LLM_CALL,
                from_task=from_task,
                from_agent=from_agent,
                messages=messages,
                usage=usage,
            )
            return result

    # A replay has nothing to retry.
    call._crewai_rate_limit_wrapped = True  # type: ignore[attr-defined]
