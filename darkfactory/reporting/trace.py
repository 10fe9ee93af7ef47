"""``runs/<id>/trace.jsonl``: one JSON object per event, appended and flushed.

Our own pipeline events are written directly; LLM and tool calls come from CrewAI's event
bus. Token counts are our own accounting from each completed call's ``usage`` (CrewAI's
``usage_metrics`` double-counts shared LLM instances and the manager).

Secrets never reach the trace: values of environment variables whose names look like
keys or tokens are replaced by ``[redacted]`` wherever they appear.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DELEGATE_TOOL = "delegate_work_to_coworker"
ASK_TOOL = "ask_question_to_coworker"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
MAX_VALUE_CHARS = 2000


def _secrets() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and v and len(v) >= 6]


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, "[redacted]")
    return text


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"... [{len(value) - MAX_VALUE_CHARS} more chars]"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value


class Trace:
    """Append-only JSON-lines writer; every line is flushed so a killed run keeps its trace."""

    def sink(self, kind: str, data: dict[str, Any]) -> None:
        """The ``RunContext.on_event`` adapter: tools report ``(kind, data)``."""
        self.write(kind, **data)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._secrets = _secrets()
        self._fh = path.open("a", encoding="utf-8")
        self.phase: str | None = None
        #: Called with every record after it is written (live progress).
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def write(self, kind: str, /, **data: Any) -> None:
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            "phase": self.phase,
            **_cut(data),
        }
        line = redact(json.dumps(record, default=str), self._secrets)
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line + "\n")
            self._fh.flush()
        for observe in self.observers:
            observe(record)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


#: Every event kind the trace holds, with the fields each record of that kind always has
#: (besides ``ts``, ``kind`` and ``phase``). docs/report.md is generated from this table
#: and tests check real traces against it.
EVENT_FIELDS: dict[str, dict[str, str]] = {
    "run_start": {
        "run_id": "the run's id",
        "spec": "format, title, source",
        "sandbox": "backend",
        "models": "model per role",
        "prices": "the run's own model prices (factory.yaml prices:), USD per million tokens",
    },
    "run_resumed": {
        "after": "steps already finished",
        "stashed": "whether partial work was set aside",
    },
    "acceptance_changed": {
        "changed": "acceptance files whose hash differs from the frozen one",
        "missing": "frozen files that are gone",
        "added": "files that were not frozen",
    },
    "checkpoint": {
        "checkpoint": "spec_approval, output_review or deploy_approval",
        "mode": "auto or ask",
        "decision": "approved or rejected",
        "by": "auto, or who decided (terminal or darkfactory approve)",
        "reason": "the reviewer's reason or notes (sent to the crew as feedback)",
    },
    "awaiting_approval": {
        "checkpoint": "the checkpoint the run paused at",
        "approve": "the command that approves it",
        "reject": "the command that rejects it",
    },
    "deploy": {
        "argv": "deploy.command",
        "exit_code": "its exit code (null when killed)",
        "duration_s": "seconds",
        "output": "its last output lines, secrets redacted",
        "commit": "the delivered commit it ran on (a clean export)",
        "env": "names of the variables it got besides PATH, HOME, LANG",
    },
    "phase_start": {},
    "phase_end": {},
    "acceptance_frozen": {"files": "the acceptance test files, now read-only"},
    "holdout_sealed": {
        "share": "the holdout share (factory.yaml)",
        "seed": "sha256 of the spec's tests, which seeds the choice",
        "sealed": "the sealed tests (file::test), out of every agent's reach",
        "visible": "how many tests the agents see",
    },
    "acceptance_restored": {"reason": "why the workspace copy was put back"},
    "crew_start": {
        "task": "the tasks.yaml task the phase's crew runs",
        "crew": "the crew's name",
        "manager": "the manager's role",
        "agents": "the workers' roles",
    },
    "crew_end": {
        "task": "the task",
        "outcome": "ok (the kickoff returned), or the exception that ended it",
    },
    "llm_call": {"role": "the agent's role", "model": "model string", "outcome": "ok or error"},
    "llm_retry": {
        "role": "the agent's role",
        "model": "model string",
        "attempt": "retry number, 1-based",
        "max_retries": "llm.max_retries",
        "reason": "HTTP 429, HTTP 503, timed out, connection failed, malformed response, ...",
        "wait_s": "seconds waited before the retry (Retry-After or backoff)",
        "error": "the failed attempt's error (keys redacted)",
    },
    "prompt_cut": {
        "role": "the agent's role",
        "model": "model string",
        "ceiling": "llm.max_prompt_tokens or the model's context window, whichever is smaller",
        "tokens_before": "estimated prompt tokens (4 characters each) before the cut",
        "tokens_after": "estimated prompt tokens sent",
        "dropped": "earlier tool outputs replaced by a notice",
        "turns": "other earlier messages replaced by a notice",
        "shortened": "newest tool outputs shortened in the middle",
    },
    "prompt_refused": {
        "role": "the agent's role",
        "model": "model string",
        "ceiling": "the prompt's ceiling",
        "tokens": "estimated tokens left after every allowed cut (the call is not made)",
        "tokens_before": "estimated tokens before cutting",
    },
    "delegation": {
        "by": "the manager's role",
        "coworker": "the role delegated to",
        "mode": "delegate or ask",
        "task": "the task text",
    },
    "tool_call": {
        "role": "the agent's role",
        "tool": "tool name",
        "outcome": "ok, error or exception",
    },
    "file_op": {
        "tool": "file tool",
        "path": "workspace-relative path",
        "ok": "done or refused",
        "bytes": "bytes read or written",
    },
    "fence_unwrapped": {
        "tool": "write_file",
        "path": "workspace-relative path of the file written",
        "info": "the fence's info string (e.g. python; empty when it had none)",
    },
    "sandbox_exec": {
        "argv": "the command",
        "exit_code": "its exit code",
        "duration_s": "seconds",
        "killed": "the limit that fired, or null",
    },
    "test_run": {"paths": "what an agent ran", "total": "tests", "passed": "passed"},
    "test_outcome": {
        "suite": "acceptance, sealed (the holdout) or unit",
        "test": "file::test",
        "requirements": "requirement ids it proves",
        "outcome": "passed, failed, error or skipped",
        "duration_s": "seconds",
    },
    "verify": {
        "round": "fix round it ran after",
        "passed": "all tests passed",
        "acceptance": "counts",
        "unit": "counts",
    },
    "failure_classification": {
        "round": "fix round",
        "classes": "failure classes",
        "primary": "the deciding class",
        "route": "role key the fix goes to",
        "signature": "stuck-detection signature",
        "failures": "class, suite, test of each",
    },
    "phase_work": {
        "task": "the crew task the phase ran",
        "files": "workspace files it changed, added or removed (from git, not from its answer)",
        "tests_run": "test runs by its agents (run_tests, or pytest through run_command)",
        "answer": "the start of the crew's final answer, cleaned",
    },
    "protocol_error": {
        "role": "the agent's role",
        "error": "unknown_tool, invalid_json, bad_arguments or prose",
        "tool": "the tool it named (empty for prose)",
        "detail": "what was wrong (the JSON error, the schema's complaint), bounded",
        "streak": "consecutive protocol errors of this agent so far",
        "limit": "the streak that fails the phase (3)",
    },
    "protocol_failure": {
        "role": "the agent's role",
        "failure_class": "model_protocol",
        "errors": "the kinds of the errors in the streak",
    },
    "model_refusal": {
        "role": "the agent's role",
        "text": "what it said, cleaned and cut to 300 characters (empty if nothing)",
        "finish_reason": "the provider's refusal finish reason, or null",
    },
    "fix_round": {"round": "1-based", "route": "the role the fix is routed to"},
    "doc_example": {
        "file": "the Markdown file (README.md or docs/...)",
        "line": "line of the example's first code line",
        "type": "python (run as a script) or doctest",
        "outcome": "passed, failed or killed",
        "duration_s": "seconds",
    },
    "docs_check": {
        "round": "docs fix round it ran after",
        "passed": "the site built strictly and every example passed",
        "built": "mkdocs build --strict succeeded",
        "pages": "HTML pages built",
        "warnings": "mkdocs warnings",
        "errors": "mkdocs errors",
        "examples_run": "examples run",
        "examples_passed": "examples that passed",
        "problems": "one line per problem",
    },
    "docs_fix_round": {"round": "1-based"},
    "recheck": {"files": "files other than docs that the docs phases changed: tested again"},
    "ambiguity": {"question": "what a person must answer", "reason": "why the spec cannot"},
    "escalation": {"reason": "why a person must look"},
    "no_delegation": {
        "attempt": "1: the phase runs once more with a reminder; 2: the run is escalated",
        "answer": "the manager's answer (first 500 characters)",
    },
    "delegation_normalised": {
        "mode": "delegate or ask",
        "coworker": "the role it went to",
        "fixed": "what was mended: an object given as text, a loosely named coworker, ...",
    },
    "delegation_refused": {
        "mode": "delegate or ask",
        "reason": "unknown_coworker, ambiguous_coworker, missing_task, repeated or "
        "limit_reached (the phase's last delegation: the manager is told to answer)",
        "coworker": "the coworker as the manager named it",
        "attempt": "the manager's delegation number in the phase",
    },
    "delegation_stuck": {
        "attempts": "delegations the manager tried in the phase",
        "limit": "max_delegations_per_phase",
        "reason": "the reason the run is escalated with",
    },
    "budget": {
        "exhausted": "which budget",
        "llm_calls": "calls used",
        "tokens": "tokens used",
        "wall_s": "seconds used",
        "cost_usd": "US dollars spent (null: a price is unknown)",
        "limits": "the limits",
    },
    "security": {
        "what": "what hostile workspace content was found and undone, e.g. nested_git_removed",
        "paths": "the workspace-relative paths concerned",
    },
    "baseline": {
        "commit": "the base commit a repository's suite ran at",
        "counts": "passed, failed, error, skipped",
        "failing": "the tests that already failed there",
        "environment": "whether the repository's environment came from the cache, and its setup seconds",
    },
    "reproduction": {
        "ok": "whether the bug's reproduction failed at the base commit as it must",
        "tests": "the reproduction's test ids",
        "why": "why it does not hold (empty when it does)",
        "files": "the test files written",
    },
    "coverage": {
        "at": "when it was measured: base (the baseline run)",
        "covered": "lines that ran",
        "statements": "lines coverage.py counts as statements",
        "files": "files measured",
        "percent": "covered / statements",
        "error": "why nothing was measured (empty when something was)",
    },
    "repo_checks": {
        "ticket_kind": "tests, docs or migrate",
        "checks": "each check's name, whether it holds (ok) and what was measured (detail)",
    },
    "deliver": {
        "what": "patch (with head, the commit change.patch ends with), push (with the "
        "branch), pull_request (with url, created, target and why) or failed (with the "
        "error: a run that stopped early keeps its status)"
    },
    "run_end": {"status": "final status", "reason": "why"},
}


def check_record(record: dict[str, Any]) -> list[str]:
    """Problems with one trace record against ``EVENT_FIELDS`` (empty when it is valid)."""
    problems = [f"missing {k}" for k in ("ts", "kind", "phase") if k not in record]
    kind = record.get("kind")
    if kind not in EVENT_FIELDS:
        return [*problems, f"unknown kind {kind!r}"]
    problems += [f"{kind}: missing {f}" for f in EVENT_FIELDS[kind] if f not in record]
    return problems


def read_trace(path: Path) -> list[dict[str, Any]]:
    """All records of a trace; a torn last line (a kill mid-write) is skipped."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _args(raw: Any) -> dict[str, Any]:
    """A tool call's arguments as a dict (CrewAI passes a dict or its JSON text)."""
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {"input": str(raw)}
    return parsed if isinstance(parsed, dict) else {"input": parsed}


class CrewEventBridge:
    """Writes CrewAI's LLM and tool events into a ``Trace`` while a run is active."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._started: dict[str, float] = {}
        self._handlers: list[tuple[type, Callable[..., Any]]] = []

    def __enter__(self) -> CrewEventBridge:
        from crewai.events import crewai_event_bus
        from crewai.events.types.llm_events import (
            LLMCallCompletedEvent,
            LLMCallFailedEvent,
            LLMCallStartedEvent,
        )
        from crewai.events.types.tool_usage_events import (
            ToolUsageErrorEvent,
            ToolUsageFinishedEvent,
        )

        pairs: list[tuple[type, Callable[..., Any]]] = [
            (LLMCallStartedEvent, self._llm_started),
            (LLMCallCompletedEvent, self._llm_completed),
            (LLMCallFailedEvent, self._llm_failed),
            (ToolUsageFinishedEvent, self._tool_finished),
            (ToolUsageErrorEvent, self._tool_error),
        ]
        for event_type, handler in pairs:
            crewai_event_bus.register_handler(event_type, handler)
        self._handlers = pairs
        return self

    def __exit__(self, *exc: object) -> None:
        from crewai.events import crewai_event_bus

        crewai_event_bus.flush()
        for event_type, handler in self._handlers:
            crewai_event_bus.off(event_type, handler)

    # Handlers -------------------------------------------------------------------------
    def _llm_started(self, source: Any, event: Any) -> None:
        self._started[event.call_id] = time.perf_counter()

    def _llm_completed(self, source: Any, event: Any) -> None:
        t0 = self._started.pop(event.call_id, None)
        usage = event.usage or {}
        self.trace.write(
            "llm_call",
            role=event.agent_role,
            model=event.model,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=round(time.perf_counter() - t0, 4) if t0 is not None else None,
            outcome="ok",
        )

    def _llm_failed(self, source: Any, event: Any) -> None:
        self._started.pop(event.call_id, None)
        self.trace.write(
            "llm_call", role=event.agent_role, model=event.model, outcome="error", error=event.error
        )

    def _tool_finished(self, source: Any, event: Any) -> None:
        args = _args(event.tool_args)
        output = str(event.output)
        if event.tool_name in (DELEGATE_TOOL, ASK_TOOL):
            self.trace.write(
                "delegation",
                by=event.agent_role,
                coworker=str(args.get("coworker", "")),
                mode="ask" if event.tool_name == ASK_TOOL else "delegate",
                task=str(args.get("task") or args.get("question") or ""),
            )
        self.trace.write(
            "tool_call",
            role=event.agent_role,
            tool=event.tool_name,
            args=args,
            duration_s=round((event.finished_at - event.started_at).total_seconds(), 4),
            outcome="error" if output.startswith("ERROR:") else "ok",
            output_chars=len(output),
        )

    def _tool_error(self, source: Any, event: Any) -> None:
        self.trace.write(
            "tool_call",
            role=event.agent_role,
            tool=event.tool_name,
            outcome="exception",
            error=str(event.error),
        )
