"""``darkfactory watch RUN_ID``: follow a run from any terminal until it ends, from its trace.

Live on a terminal (rich: phase, role, tool calls, tests, cost), plain lines elsewhere; exits
with the run's exit code. Everything shown from the trace is cleaned of control characters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkfactory.cli._common import Subparsers, add_runs_dir_option, runs_dir
from darkfactory.errors import STATUS_EXIT, ExitCode
from darkfactory.reporting.trace import ASK_TOOL, DELEGATE_TOOL

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

    from darkfactory.reporting.progress import Progress

#: Seconds between two looks at the trace.
POLL_S = 0.25
#: Seconds a run may take to start (its directory made, no ``run_start`` yet, no process
#: holding its lock: a repository's baseline) while nothing in its trace changes.
START_WAIT_S = 300.0
#: Seconds to wait, once ``run_end`` is written, for the run's process to let go of it.
END_WAIT_S = 30.0
#: Tool calls the live view lists.
TOOL_ROWS = 6
#: Control characters (C0, DEL, C1) and the invisible ones that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NOT_RUNNING = "no process is working on it"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "watch",
        help="follow a run from any terminal until it ends: phase, role, tool calls, tests, cost",
    )
    p.add_argument("run_id", help="the run's id, the start of it, or the run's directory")
    add_runs_dir_option(p)
    p.add_argument(
        "--from-start",
        action="store_true",
        help="print every event since the run started (default: those from now on)",
    )
    p.add_argument("--plain", action="store_true", help="plain lines, also on a terminal")
    return p


def run(args: argparse.Namespace) -> int:
    from darkfactory.workspace import rundir  # the spec models (pydantic): not for --help

    run_dir = rundir.resolve_run(runs_dir(args), args.run_id)
    live = sys.stdout.isatty() and not args.plain
    console = None
    if live:
        from rich.console import Console

        console = Console()
    return Watch(run_dir, console=console, from_start=args.from_start).follow()


def clean(value: Any, limit: int = 120) -> str:
    """``value`` as one line of text a terminal shows as it is: no control characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = _UNSAFE.sub(lambda m: " " if m.group() in "\t\n\r" else "?", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TraceTail:
    """The records appended to a ``trace.jsonl`` since the last look; a line is taken only
    once it is complete (a writer may be in the middle of it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:  # not written yet
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [r for r in map(_record, lines) if r is not None]

    def rest(self) -> list[dict[str, Any]]:
        """The last line, if it has no newline: complete JSON or a torn write (skipped)."""
        record, self._partial = _record(self._partial), b""
        return [record] if record is not None else []


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("kind"), str) else None


def _args(args: Any) -> str:
    """What a tool was called with, in a few words: the path, the command or the first keys."""
    if not isinstance(args, dict):
        return clean(args, 60)
    for key in ("path", "argv", "command", "paths", "coworker"):
        if key in args:
            return f"{key}={clean(args[key], 60)}"
    return clean(" ".join(f"{k}={clean(v, 30)}" for k, v in list(args.items())[:2]), 60)


def _clock(record: dict[str, Any]) -> str:
    ts = _time(record)
    return ts.strftime("%H:%M:%S") if ts else "--:--:--"


def _time(record: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record.get("ts")))
    except ValueError:
        return None


def _get(record: dict[str, Any], *keys: str) -> Any:
    """``record[k1][k2]...``, or None where a level is missing or not a mapping."""
    value: Any = record
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _counts(value: Any) -> str:
    c = value if isinstance(value, dict) else {}
    return f"{clean(c.get('passed', 0), 8)}/{clean(c.get('total', 0), 8)}"


def event_line(r: dict[str, Any]) -> str | None:
    """The line an event is worth on its own, or None (it only changes the view)."""
    kind, role = r["kind"], clean(r.get("role"), 40)
    if kind == "run_start":
        return f"run started: {clean(_get(r, 'spec', 'title'))} (sandbox {clean(r.get('sandbox'))})"
    if kind == "run_resumed":
        return f"run resumed after {clean(r.get('after'), 80)}"
    if kind == "phase_start":
        return f"phase {clean(r.get('phase'), 30)}"
    if kind == "delegation":
        return f"{clean(r.get('by'), 40)} -> {clean(r.get('coworker'), 40)}: {clean(r.get('task'))}"
    if kind == "tool_call" and r.get("tool") not in (DELEGATE_TOOL, ASK_TOOL):
        args = f" {_args(r['args'])}" if r.get("args") else ""
        return f"{role}: {clean(r.get('tool'), 40)}{args} ({clean(r.get('outcome'), 20)})"
    if kind == "llm_call" and r.get("outcome") == "error":
        return f"{role}: model call failed: {clean(r.get('error'), 160)}"
    if kind == "llm_retry":
        return (
            f"{role}: model call retried ({clean(r.get('attempt'))}/"
            f"{clean(r.get('max_retries'))}): {clean(r.get('reason'), 60)}"
        )
    if kind == "test_run":
        return f"tests run by an agent ({clean(r.get('paths'), 60)}): {_counts(r)} passed"
    if kind == "verify":
        outcome = "passed" if r.get("passed") is True else "failed"
        return (
            f"verify round {clean(r.get('round'))}: acceptance {_counts(r.get('acceptance'))}, "
            f"unit {_counts(r.get('unit'))}: {outcome}"
        )
    if kind == "fix_round":
        return f"fix round {clean(r.get('round'))} -> {clean(r.get('route'), 40)}"
    if kind == "docs_check":
        return "docs check: " + ("passed" if r.get("passed") is True else "failed")
    if kind == "checkpoint":
        return (
            f"{clean(r.get('checkpoint'), 30)}: {clean(r.get('decision'), 20)} "
            f"by {clean(r.get('by'), 60)}"
        )
    if kind == "awaiting_approval":
        return f"waiting at {clean(r.get('checkpoint'), 30)}: {clean(r.get('approve'))}"
    if kind == "budget":
        return f"budget {clean(r.get('exhausted'), 30)} exhausted"
    if kind == "escalation":
        return f"escalated: {clean(r.get('reason'), 200)}"
    if kind == "run_end":
        return f"run ended: {clean(r.get('status'), 30)}"
    return None


class RunView:
    """What a run has done so far, folded from its trace records (``observe``)."""

    def __init__(self, run_id: str, tally: Progress) -> None:
        self.run_id = run_id
        #: The run's own progress line's counters: phase, role, acceptance, tokens, cost.
        self.tally = tally
        self.title = "?"
        self.calls = 0
        self.retries = 0
        self.unit = "-"
        self.rounds = 0
        self.agent_tests = "-"
        self.tools: deque[dict[str, Any]] = deque(maxlen=TOOL_ROWS)
        self.started: datetime | None = None
        self.last: datetime | None = None
        #: The ``run_end`` record of the run's last attempt (None while it goes on).
        self.end: dict[str, Any] | None = None
        self.began = False

    def observe(self, record: dict[str, Any]) -> str | None:
        """Take one record in; the line it is worth (None: it only changes the view)."""
        kind = record["kind"]
        # The run's own counters; a record whose fields are not what the run writes
        # (a damaged trace) counts for nothing rather than ending the watch.
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            self.tally.observe(record)
        self.last = _time(record) or self.last
        if kind in ("run_start", "run_resumed"):
            self.began, self.end = True, None
            self.started = self.started or self.last
            spec = record.get("spec")
            if isinstance(spec, dict):
                self.title = clean(spec.get("title"), 80)
        elif kind == "llm_call":
            self.calls += 1
        elif kind == "llm_retry":
            self.retries += 1
        elif kind == "tool_call":
            self.tools.append(record)
        elif kind == "verify":
            self.unit = _counts(record.get("unit"))
            self.rounds += 1
        elif kind == "test_run":
            self.agent_tests = f"{_counts(record)} ({clean(record.get('phase'), 20)})"
        elif kind == "run_end":
            self.end = record
        line = event_line(record)
        return f"{_clock(record)}  {line}" if line else None

    # -- what it shows --------------------------------------------------------------------
    def status(self, busy: bool) -> str:
        if self.end is not None:
            return clean(self.end.get("status"), 30)
        if busy:
            return "running"
        return "interrupted" if self.began else "starting"

    def verified(self) -> str:
        """The last verify round's counts ('' before the first)."""
        if self.rounds == 0:
            return ""
        return f"acceptance {clean(self.tally.tests, 20)}, unit {self.unit}"

    def cost(self) -> str:
        usd = self.tally.cost
        return "unknown" if usd is None else f"${usd:.4f}"

    def elapsed(self, busy: bool) -> str:
        if self.started is None:
            return "-"
        end = self.last if self.end is not None or not busy else None
        until = end or datetime.now(self.started.tzinfo)
        return f"{max(0.0, (until - self.started).total_seconds()):.0f}s"

    def panel(self, busy: bool) -> RenderableType:
        """The live view: one panel, every text in it plain (no markup read from the run)."""
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("phase", Text(clean(self.tally.phase, 30)))
        grid.add_row("role", Text(clean(self.tally.role, 60)))
        grid.add_row(
            "tests",
            Text(
                (self.verified() or "no verify round yet")
                + f"; an agent's last run: {self.agent_tests}"
            ),
        )
        grid.add_row(
            "model",
            Text(
                f"{self.calls} calls"
                + (f" ({self.retries} retried)" if self.retries else "")
                + f", {self.tally.tokens} tokens, cost {self.cost()}"
            ),
        )
        grid.add_row("elapsed", Text(self.elapsed(busy)))
        tools = Table(show_edge=False, box=None, padding=(0, 1), header_style="bold")
        for column in ("time", "role", "tool", "called with"):
            tools.add_column(column, overflow="ellipsis", no_wrap=True)
        tools.add_column("outcome", no_wrap=True, min_width=9)
        for r in self.tools:
            tools.add_row(
                Text(_clock(r)),
                Text(clean(r.get("role"), 30)),
                Text(clean(r.get("tool"), 30)),
                Text(_args(r.get("args"))),
                Text(clean(r.get("outcome"), 12)),
            )
        title = Text(f"{self.run_id}  ")
        title.append(self.status(busy), style="bold")
        body = Table.grid()
        body.add_row(Text(self.title, style="italic"))
        body.add_row(grid)
        body.add_row(Text("last tool calls", style="bold"))
        body.add_row(tools if self.tools else Text("-"))
        return Panel(body, title=title, title_align="left")

    def summary(self, busy: bool) -> list[str]:
        """How the run ended (or stands): status, why, counts, and the exit code it maps to."""
        status = self.status(busy)
        reason = clean(self.end.get("reason"), 400) if self.end is not None else ""
        if status == "interrupted":
            reason = f"it stopped before its end and {_NOT_RUNNING} (killed or crashed); "
            reason += f"continue with: darkfactory resume {self.run_id}"
        code = int(STATUS_EXIT.get(status, ExitCode.FAILED))
        lines = [
            f"{status}: {self.title} - {self.verified() or 'tests not run'}, "
            f"LLM calls {self.calls}, tokens {self.tally.tokens}, cost {self.cost()}"
        ]
        if reason:
            lines.append(f"  why: {reason}")
        lines.append(f"  exit code {code} (docs/exit-codes.md)")
        return lines


class Watch:
    """Follows one run directory's trace until the run ends; ``follow`` returns its exit code."""

    def __init__(self, run_dir: Path, *, console: Console | None, from_start: bool) -> None:
        from darkfactory.reporting.progress import Progress
        from darkfactory.workspace import rundir

        self.run_dir = run_dir
        self.console = console
        self.from_start = from_start
        self.tail = TraceTail(run_dir / rundir.TRACE_FILE)
        self.view = RunView(run_dir.name, Progress(quiet=True))
        self._busy: Callable[[Path], bool] = rundir.run_busy_seen

    def follow(self) -> int:
        busy = self._busy(self.run_dir)
        # What happened before: it sets the view; its lines only with --from-start.
        for record in self.tail.read():
            line = self.view.observe(record)
            if line and self.from_start:
                self._print(line)
        if not busy and (self.view.end is not None or self.view.began):
            return self._finish(busy=False, followed=False)  # ended or stopped: nothing to follow
        if not self.view.began:
            print(f"{self.run_dir.name}: waiting for the run to start", file=sys.stderr, flush=True)
        live = self._live()
        try:
            busy = self._follow(live)
        except KeyboardInterrupt:
            if live is not None:
                live.stop()
            print(
                f"stopped watching {self.run_dir.name}; the run goes on "
                f"(darkfactory watch {self.run_dir.name})",
                file=sys.stderr,
            )
            return 130
        if live is not None:
            live.stop()
        return self._finish(busy=busy, followed=True)

    def _follow(self, live: Any) -> bool:
        quiet_since = time.monotonic()
        ended_at: float | None = None
        while True:
            busy = self._busy(self.run_dir)
            records = self.tail.read()
            for record in records:
                line = self.view.observe(record)
                if line:
                    self._print(line, live)
            if records:
                quiet_since = time.monotonic()
            if live is not None:
                live.update(self.view.panel(busy))
            if self.view.end is not None:
                ended_at = ended_at or time.monotonic()
                # The run's process writes the report after run_end, then lets go.
                if not busy or time.monotonic() - ended_at > END_WAIT_S:
                    return busy
            elif not busy and self.view.began:
                return busy  # its process is gone without a run_end: killed
            elif not busy and not self.run_dir.is_dir():
                return busy  # removed: the run could not be prepared
            elif not busy and time.monotonic() - quiet_since > START_WAIT_S:
                return busy
            time.sleep(POLL_S)

    def _finish(self, *, busy: bool, followed: bool) -> int:
        """Take the trace's last records in, then say how the run ended."""
        for record in self.tail.read() + self.tail.rest():
            line = self.view.observe(record)
            if line and (followed or self.from_start):
                self._print(line)
        if not self.view.began and not busy:
            why = (
                "its directory is gone: it stopped while being prepared"
                if not self.run_dir.is_dir()
                else f"it has not started and {_NOT_RUNNING}"
            )
            print(f"{self.run_dir.name}: {why}", file=sys.stderr)
            return int(ExitCode.FAILED)
        if self.console is not None:
            self.console.print(self.view.panel(busy))
        for line in self.view.summary(busy):
            print(line, flush=True)
        return int(STATUS_EXIT.get(self.view.status(busy), ExitCode.FAILED))

    def _live(self) -> Any:
        if self.console is None:
            return None
        from rich.live import Live

        live = Live(
            self.view.panel(True), console=self.console, refresh_per_second=4, transient=True
        )
        live.start()
        return live

    def _print(self, line: str, live: Any = None) -> None:
        if live is not None:
            live.console.print(_text(line))
        elif self.console is not None:
            self.console.print(_text(line))
        else:
            print(line, flush=True)


def _text(line: str) -> Text:
    from rich.text import Text

    return Text(line)
