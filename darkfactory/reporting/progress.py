"""Live progress on the terminal, fed by the trace.

On a terminal: one live status line (rich) with the phase, the role at work, tests passing
so far, tokens and cost so far, and elapsed time, plus a plain line per phase. Not on a
terminal: only the plain lines. ``--quiet`` and ``--json`` print nothing here.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from darkfactory.models.prices import cost


class Progress:
    """Receives every trace record (``observe``) and plain messages (``__call__``)."""

    def __init__(self, *, quiet: bool = False, live: bool | None = None) -> None:
        self.quiet = quiet
        self.live_enabled = (not quiet) and (sys.stderr.isatty() if live is None else live)
        self.started = time.monotonic()
        self.phase = "-"
        self.role = "-"
        self.tests = "-"
        self.tokens = 0
        self.cost: float | None = 0.0
        self.prices: dict[str, Any] = {}
        self._live: Any = None

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        if self._live is not None:
            self._live.console.print(f"darkfactory: {message}")
        else:
            print(f"darkfactory: {message}", file=sys.stderr, flush=True)

    def start(self) -> None:
        if self.live_enabled and self._live is None:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._line(), console=Console(stderr=True), refresh_per_second=4, transient=True
            )
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def observe(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "run_start":
            self.prices = record.get("prices") or {}
        elif kind == "phase_start":
            self.phase = record.get("phase") or "-"
            self.role = "-"
        elif kind == "llm_call":
            self.role = record.get("role") or "-"
            prompt = int(record.get("prompt_tokens") or 0)
            completion = int(record.get("completion_tokens") or 0)
            self.tokens += prompt + completion
            usd = cost(record.get("model"), prompt, completion, self.prices)
            self.cost = None if usd is None or self.cost is None else self.cost + usd
        elif kind == "verify":
            acc = record.get("acceptance") or {}
            self.tests = f"{acc.get('passed', 0)}/{acc.get('total', 0)}"
        if self._live is not None:
            self._live.update(self._line())

    def _line(self) -> str:
        usd = "unknown" if self.cost is None else f"${self.cost:.4f}"
        elapsed = time.monotonic() - self.started
        return (
            f"[bold]{self.phase}[/bold]  role: {self.role}  acceptance: {self.tests}  "
            f"tokens: {self.tokens}  cost: {usd}  {elapsed:.0f}s"
        )
