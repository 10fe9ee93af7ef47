"""A provider's model behind a guard: bounded retries, a clear end, and recording.

``GuardedLLM`` wraps the ``crewai.LLM`` of a real provider (hosted or local). The provider's
own client gets ``timeout`` (so a hung provider cannot hang a run) and ``max_retries=0``:
the retries are ours, so that each one is seen. A call that fails with a transient fault
(HTTP 408/409/425/429/5xx, a timeout, a dropped or cut-off connection, a malformed body,
an empty answer) is retried after a backoff (``Retry-After`` wins), at most
``RetryPolicy.max_retries`` times; before each retry ``on_retry`` is told (the run writes an
``llm_retry`` trace event and counts the retry against its budget, which may stop it).
When the retries run out the call raises ``ProviderUnreachable``; a fault that a retry
cannot fix (HTTP 400/401/403/404...) raises ``ProviderRefused`` at once. Either is then
raised again by every later call of this model, so a provider that is down ends the run
in one pass instead of once per agent and per CrewAI retry.

Anything that is not a provider fault (a budget hook's denial, a context window that
overflowed, a bug) passes through unchanged. CrewAI's own rate-limit retry
(``crewai.llms.retry``) is kept out: it would multiply ours and hide the retries.

The guard also records every exchange when the run records (``--record``), whatever the
provider. Error texts and every prompt sent are redacted: no key from the environment
appears in them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crewai.llms.base_llm import BaseLLM, call_stop_override, call_stream_override
from crewai.llms.retry import run_with_rate_limit_retry
from pydantic import PrivateAttr

from darkfactory.errors import DarkFactoryError
from darkfactory.models.faults import Fault, classify
from darkfactory.models.secrets import LOCAL_KEY_PLACEHOLDER, redact_messages, secret_values

if TYPE_CHECKING:
    from darkfactory.models.cassette import Recorder

_APPROXIMATE = "Using an approximate input token count"


class _OnceEach(logging.Filter):
    """Lets CrewAI's "approximate input token count" warning through once per model.

    (CrewAI logs it before every call to an OpenAI-compatible server, local ones included.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(_APPROXIMATE):
            return True
        model = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        if model in self._seen:
            return False
        self._seen.add(model)
        return True


logging.getLogger("crewai.llms.base_llm").addFilter(_OnceEach())


class ProviderError(DarkFactoryError):
    """The model provider could not answer a call of this run."""

    #: When to continue the run (``darkfactory resume``).
    when = "once the provider works again"

    def __init__(self, message: str, *, model: str, role: str, reason: str) -> None:
        self.model = model
        self.role = role
        self.reason = reason
        super().__init__(message)


class ProviderUnreachable(ProviderError):
    """Transient faults went on past the last retry."""

    when = "once the provider answers again"


class ProviderRefused(ProviderError):
    """The provider refused the request in a way no retry can fix (a bad key, a bad model)."""

    when = "once the key, model or server is fixed"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is tried again."""

    max_retries: int = 3
    backoff_s: float = 2.0
    max_wait_s: float = 60.0
    #: For a provider whose client takes no timeout (CrewAI's Gemini and Bedrock clients):
    #: seconds after which a call that has not answered is given up as timed out (and
    #: retried). Its thread is left to finish on its own; its answer is thrown away.
    watchdog_s: float | None = None

    def wait(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (1-based): ``Retry-After`` or a backoff."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_wait_s)
        return float(min(self.backoff_s * 2 ** (retry - 1), self.max_wait_s))


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to be made (what ``on_retry`` gets)."""

    role: str
    model: str
    attempt: int
    max_retries: int
    reason: str
    detail: str
    wait_s: float


def _is_empty(result: Any) -> bool:
    if result is None:
        return True
    return isinstance(result, str) and not result.strip()


class WatchdogTimeout(TimeoutError):
    """A call gave no answer within ``RetryPolicy.watchdog_s`` (a transient fault)."""


def _within(seconds: float, fn: Callable[[], tuple[bool, Any, Exception | None]]) -> Any:
    """``fn()`` in a daemon thread (same context variables), or a timeout after ``seconds``."""
    ctx = contextvars.copy_context()
    box: list[tuple[bool, Any, Exception | None]] = []
    worker = threading.Thread(
        target=lambda: box.append(ctx.run(fn)), name="darkfactory-llm-call", daemon=True
    )
    worker.start()
    worker.join(seconds)
    if box:
        return box[0]
    return False, None, WatchdogTimeout(f"no answer within {seconds:g} s")


class GuardedLLM(BaseLLM):
    """A provider's ``BaseLLM`` with our retries, timeout, fatal memory and recording."""

    llm_type: str = "guarded"

    _inner: BaseLLM = PrivateAttr()
    _policy: RetryPolicy | None = PrivateAttr(default=None)
    _on_retry: Callable[[RetryEvent], None] | None = PrivateAttr(default=None)
    _recorder: Recorder | None = PrivateAttr(default=None)
    _fatal: ProviderError | None = PrivateAttr(default=None)
    _sleep: Callable[[float], None] = PrivateAttr(default=time.sleep)

    def __init__(
        self,
        inner: BaseLLM,
        *,
        model: str,
        policy: RetryPolicy | None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(
            model=model,
            provider=inner.provider,
            stop=list(inner.stop),
            # What CrewAI (and a reader) sees of the provider: where it is, and with which key.
            base_url=inner.base_url,
            api_key=inner.api_key,
        )
        self._inner = inner
        self._policy = policy
        self._recorder = recorder

    # -- configuration by the run ---------------------------------------------------------
    @property
    def inner(self) -> BaseLLM:
        return self._inner

    @property
    def policy(self) -> RetryPolicy | None:
        return self._policy

    def observe(self, on_retry: Callable[[RetryEvent], None] | None) -> None:
        """Call ``on_retry`` before every retry (it may raise to stop the run)."""
        self._on_retry = on_retry

    @property
    def fatal(self) -> ProviderError | None:
        """The error that ended this model's use in the run, if any."""
        return self._fatal

    # -- what CrewAI asks of a model: the provider's answers ------------------------------
    def supports_function_calling(self) -> bool:
        supports = getattr(self._inner, "supports_function_calling", None)
        return bool(supports()) if callable(supports) else False

    def supports_stop_words(self) -> bool:
        return bool(self._inner.supports_stop_words())

    def get_context_window_size(self) -> int:
        return int(self._inner.get_context_window_size())

    def supports_multimodal(self) -> bool:
        return bool(self._inner.supports_multimodal())

    def get_input_tokens_count(
        self, messages: Any, tools: Any = None, response_model: Any = None
    ) -> int:
        return int(self._inner.get_input_tokens_count(messages, tools, response_model))

    def get_token_usage_summary(self) -> Any:
        return self._inner.get_token_usage_summary()

    # -- calls ----------------------------------------------------------------------------
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
        if self._fatal is not None:
            raise self._fatal
        # No host secret reaches a provider, whatever text carried it into a prompt.
        messages = redact_messages(messages, secret_values(self._key_values()))
        role = str(getattr(from_agent, "role", None) or "(no agent)")
        retries = 0
        while True:
            before = self._usage()
            ok, result, error = self._attempt(
                messages,
                tools=tools,
                callbacks=callbacks,
                available_functions=available_functions,
                from_task=from_task,
                from_agent=from_agent,
                response_model=response_model,
            )
            if ok and not (self._policy is not None and _is_empty(result)):
                if self._recorder is not None:
                    self._recorder.record(
                        role=role,
                        model=self.model,
                        messages=messages,
                        tools=tools,
                        result=result,
                        usage=self._usage_since(before),
                    )
                return result
            if self._policy is None:  # recording only: errors are not ours to judge
                assert error is not None
                raise error
            if ok:
                fault = Fault(
                    True,
                    "empty answer",
                    "the model answered with neither text nor a tool call",
                    bad_answer=True,
                )
            else:
                assert error is not None
                found = classify(error, secrets=self._key_values())
                if found is None:
                    raise error
                fault = found
            if not fault.transient:
                raise self._give_up(
                    ProviderRefused(
                        f"model provider refused the request ({fault.reason}): {fault.detail}",
                        model=self.model,
                        role=role,
                        reason=fault.reason,
                    )
                )
            if retries >= self._policy.max_retries:
                what = "gave no usable answer" if fault.bad_answer else "unreachable"
                after = (
                    f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
                )
                raise self._give_up(
                    ProviderUnreachable(
                        f"model provider {what}{after}: {fault.reason} ({fault.detail})",
                        model=self.model,
                        role=role,
                        reason=fault.reason,
                    )
                )
            retries += 1
            wait = self._policy.wait(retries, fault.retry_after)
            if self._on_retry is not None:
                self._on_retry(
                    RetryEvent(
                        role=role,
                        model=self.model,
                        attempt=retries,
                        max_retries=self._policy.max_retries,
                        reason=fault.reason,
                        detail=fault.detail,
                        wait_s=round(wait, 3),
                    )
                )
            self._sleep(wait)

    # Our retries replace CrewAI's rate-limit retry: leave this ``call`` unwrapped.
    call._crewai_rate_limit_wrapped = True  # type: ignore[attr-defined]

    async def acall(
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
        return await asyncio.to_thread(
            self.call,
            messages,
            tools,
            callbacks,
            available_functions,
            from_task,
            from_agent,
            response_model,
        )

    acall._crewai_rate_limit_wrapped = True  # type: ignore[attr-defined]

    def _attempt(
        self, messages: str | list[Any], **kwargs: Any
    ) -> tuple[bool, Any, Exception | None]:
        """One call of the provider: (ok, result, error); never raises."""
        inner = self._inner
        stop = self.stop_sequences
        stream = self._effective_stream()

        def once() -> tuple[bool, Any, Exception | None]:
            try:
                with call_stop_override(inner, list(stop) if stop else None):
                    if stream is not None:
                        with call_stream_override(inner, stream):
                            return True, inner.call(messages, **kwargs), None
                    return True, inner.call(messages, **kwargs), None
            except Exception as exc:
                return False, None, exc

        # Inside this scope CrewAI's rate-limit retry of ``inner.call`` stands aside (it
        # only retries the outermost call); ``once`` never raises, so it retries nothing.
        watchdog = self._policy.watchdog_s if self._policy is not None else None
        if watchdog is None:
            return run_with_rate_limit_retry(once)
        return _within(watchdog, lambda: run_with_rate_limit_retry(once))

    def _give_up(self, error: ProviderError) -> ProviderError:
        self._fatal = error
        return error

    def _key_values(self) -> list[str]:
        key = getattr(self._inner, "api_key", None)
        return [key] if isinstance(key, str) and key and key != LOCAL_KEY_PLACEHOLDER else []

    def _usage(self) -> dict[str, int]:
        summary = self._inner.get_token_usage_summary()
        return {
            "prompt_tokens": int(summary.prompt_tokens),
            "completion_tokens": int(summary.completion_tokens),
        }

    def _usage_since(self, before: dict[str, int]) -> dict[str, int]:
        now = self._usage()
        return {k: now[k] - before[k] for k in now}
