"""Budgets: a run stops cleanly before it spends more than it may.

Checked before every model call through CrewAI's ``before_llm_call`` hook, so retries and
unparseable answers count. A hook that denies raises ``HookAborted``; CrewAI turns it into
a tool error when a coworker was asking, so the meter also remembers the first breach and
the pipeline raises ``BudgetExhausted`` after the crew returns. Tokens are read from the
models' own usage counters (updated as each call returns), not from asynchronous events.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from darkfactory.errors import DarkFactoryError, ExitCode


class BudgetExhausted(DarkFactoryError):
    """A run reached one of its budgets."""

    exit_code = ExitCode.BUDGET_EXHAUSTED

    def __init__(self, which: str, used: float, limit: float) -> None:
        self.which = which
        self.used = used
        self.limit = limit
        super().__init__(f"budget {which} reached: used {used:g} of {limit:g}")


@dataclass
class BudgetMeter:
    """Counts a run's model calls, tokens and time against its limits."""

    max_llm_calls: int | None = None
    max_tokens: int | None = None
    max_wall_s: float | None = None
    max_cost_usd: float | None = None
    #: Totals carried over from before a resume.
    calls_before: int = 0
    tokens_before: int = 0
    seconds_before: float = 0.0
    cost_before: float | None = 0.0
    #: Reads the tokens used so far in this process (set by the run).
    token_source: Callable[[], int] = field(default=lambda: 0)
    #: Reads the US dollars spent so far in this process (None: a price is unknown).
    cost_source: Callable[[], float | None] = field(default=lambda: 0.0)
    calls: int = 0
    exhausted: BudgetExhausted | None = None
    _started: float = field(default_factory=time.monotonic)

    @property
    def total_calls(self) -> int:
        return self.calls_before + self.calls

    @property
    def total_tokens(self) -> int:
        return self.tokens_before + self.token_source()

    @property
    def total_seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self._started

    @property
    def total_cost(self) -> float | None:
        now = self.cost_source()
        if now is None or self.cost_before is None:
            return None
        return self.cost_before + now

    def state(self) -> dict[str, Any]:
        usd = self.total_cost
        return {
            "llm_calls": self.total_calls,
            "tokens": self.total_tokens,
            "wall_s": round(self.total_seconds, 2),
            "cost_usd": None if usd is None else round(usd, 6),
            "limits": {
                "max_llm_calls": self.max_llm_calls,
                "max_tokens": self.max_tokens,
                "max_wall_s": self.max_wall_s,
                "max_cost_usd": self.max_cost_usd,
            },
        }

    def check(self) -> None:
        """Raise ``BudgetExhausted`` if the next call would go past a limit; else count it."""
        if self.exhausted is not None:
            raise self.exhausted
        breach = None
        if self.max_llm_calls is not None and self.total_calls + 1 > self.max_llm_calls:
            breach = BudgetExhausted("max_llm_calls", self.total_calls, self.max_llm_calls)
        elif self.max_tokens is not None and self.total_tokens >= self.max_tokens:
            breach = BudgetExhausted("max_tokens", self.total_tokens, self.max_tokens)
        elif self.max_wall_s is not None and self.total_seconds >= self.max_wall_s:
            breach = BudgetExhausted("max_wall_s", round(self.total_seconds, 1), self.max_wall_s)
        elif self.max_cost_usd is not None:
            usd = self.total_cost
            # A run with a cost limit only starts when every model's price is known
            # (ModelPlan.check_prices); unknown here would mean a bug, so stop rather than spend.
            if usd is None or usd >= self.max_cost_usd:
                breach = BudgetExhausted("max_cost_usd", round(usd or 0.0, 6), self.max_cost_usd)
        if breach is not None:
            self.exhausted = breach
            raise breach
        self.calls += 1

    @contextlib.contextmanager
    def enforced(self) -> Iterator[None]:
        """Install the before-call hook for the duration of a crew phase."""
        from crewai.hooks import register_before_llm_call_hook, unregister_before_llm_call_hook
        from crewai.hooks.dispatch import HookAborted

        def hook(context: Any) -> None:
            try:
                self.check()
            except BudgetExhausted as exc:
                raise HookAborted(str(exc), source="darkfactory.models.budget") from exc

        register_before_llm_call_hook(hook)
        try:
            yield
        finally:
            unregister_before_llm_call_hook(hook)
