"""Cassettes: a run's model exchanges, recorded, and read back for a replay.

``darkfactory run SPEC --record cassette.jsonl`` writes every model exchange of the run
(``Recorder``): the request (messages and tools, normalised) and the answer.
``--model replay:cassette.jsonl`` answers each call of a later run from it (``Cassette``,
played by ``darkfactory.models.replay.ReplayLLM``). A replay is strict: each role's k-th
request must equal the recorded k-th request of that role, or the replay stops
(``ReplayDivergence``) naming the role, the call and the first difference, rather than
hand an agent an answer to a question it did not ask.

A cassette is JSON lines: a header (``kind: cassette``: version, what recorded it, each
role's model and what it supports), then one ``kind: exchange`` line per answered call
(``role``, ``call`` (1-based, per role), ``model``, ``request``, ``response``, ``usage``).
Failed attempts are not exchanges. Keys are redacted from it like from the trace.

Normalised requests: values that differ from run to run are replaced before requests are
compared or stored: the run directory (``<RUN_DIR>``) and run id (``<RUN_ID>``), clock
times, durations with decimals (pytest's ``in 0.31s``) and memory addresses. A run value
in a recorded answer is put back as the replaying run's own.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from darkfactory import __version__
from darkfactory.errors import DarkFactoryError, InputError
from darkfactory.models.secrets import redact_secrets

CASSETTE_VERSION = 1
MAX_DIFF_LINES = 24
MAX_DIFF_LINE_CHARS = 160

#: Patterns of values that differ between two runs of the same pipeline.
_VOLATILE: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<TIME>",
    ),
    (re.compile(r"(?<![\w.])\d+\.\d+s\b"), "<SECONDS>s"),
    (re.compile(r"(\"duration_s\"\s*:\s*)\d+(?:\.\d+)?"), r"\1<SECONDS>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x<ADDRESS>"),
]


class ReplayDivergence(DarkFactoryError):
    """The replayed run asked the model something the recording does not hold."""


class CassetteError(InputError):
    """A cassette file is missing or malformed."""


@dataclass
class Normaliser:
    """Replaces one run's own values (and volatile ones) so two runs' requests compare."""

    #: placeholder -> this run's value
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_run(cls, run_dir: Path, run_id: str) -> Normaliser:
        values = {"<RUN_DIR>": str(run_dir)}
        real = os.path.realpath(run_dir)
        if real != str(run_dir):
            values["<RUN_DIR_REAL>"] = real
        values["<RUN_ID>"] = run_id
        return cls(values)

    def _pairs(self) -> list[tuple[str, str]]:
        return sorted(
            ((p, v) for p, v in self.values.items() if v), key=lambda pv: len(pv[1]), reverse=True
        )

    def exact(self, text: str) -> str:
        """``text`` with this run's values replaced by their placeholders (reversible)."""
        for placeholder, value in self._pairs():
            text = text.replace(value, placeholder)
        return text

    def text(self, text: str) -> str:
        """``exact`` and the volatile values too (for comparing requests)."""
        text = self.exact(text)
        for pattern, replacement in _VOLATILE:
            text = pattern.sub(replacement, text)
        return text

    def restore(self, text: str) -> str:
        """Placeholders back to this run's values."""
        for placeholder, value in self._pairs():
            text = text.replace(placeholder, value)
        return text

    def apply(self, value: Any, fn: Any) -> Any:
        if isinstance(value, str):
            return fn(value)
        if isinstance(value, list):
            return [self.apply(v, fn) for v in value]
        if isinstance(value, dict):
            return {k: self.apply(v, fn) for k, v in value.items()}
        return value


# -- what is compared and stored ---------------------------------------------------------
def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _tool_call(call: Any) -> dict[str, Any]:
    from crewai.utilities.agent_utils import extract_tool_call_info

    info = extract_tool_call_info(call)
    if info is None:
        return {"id": None, "name": "?", "arguments": _jsonable(call)}
    call_id, name, args = info
    if isinstance(args, str):
        with contextlib.suppress(ValueError, RecursionError):
            args = json.loads(args)
    return {"id": str(call_id), "name": name, "arguments": _jsonable(args)}


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": "user", "content": str(getattr(message, "content", message))}
    out: dict[str, Any] = {
        "role": message.get("role"),
        "content": _jsonable(message.get("content")),
    }
    if message.get("tool_calls"):
        out["tool_calls"] = [_tool_call(c) for c in message["tool_calls"]]
    for key in ("tool_call_id", "name"):
        if message.get(key) is not None:
            out[key] = str(message[key])
    return out


def _tool(tool: Any) -> dict[str, Any]:
    from crewai.llms.providers.utils.common import extract_tool_info

    try:
        name, description, parameters = extract_tool_info(tool)
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"name": "?", "spec": _jsonable(tool)}
    return {"name": name, "description": description, "parameters": _jsonable(parameters)}


def request_of(messages: str | list[Any], tools: list[Any] | None) -> dict[str, Any]:
    """A call's request as plain JSON: messages (role, content, tool calls) and tools."""
    listed = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
    return {"messages": [_message(m) for m in listed], "tools": [_tool(t) for t in tools or []]}


def response_of(result: Any) -> dict[str, Any]:
    """A call's answer as plain JSON: ``content``, ``tool_calls`` or ``structured``."""
    from crewai.utilities.agent_utils import is_tool_call_list

    if isinstance(result, str):
        return {"content": result}
    if isinstance(result, list) and result and is_tool_call_list(result):
        calls = [_tool_call(c) for c in result]
        return {
            "tool_calls": [
                {
                    **c,
                    "arguments": c["arguments"]
                    if isinstance(c["arguments"], str)
                    else json.dumps(c["arguments"]),
                }
                for c in calls
            ]
        }
    if isinstance(result, BaseModel):
        return {"structured": result.model_dump(mode="json")}
    return {"content": str(result)}


def result_of(response: dict[str, Any], response_model: Any = None) -> Any:
    """What the model's ``call`` returns for a recorded ``response``."""
    if "tool_calls" in response:
        return [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in response["tool_calls"]
        ]
    if "structured" in response:
        if isinstance(response_model, type) and issubclass(response_model, BaseModel):
            return response_model.model_validate(response["structured"])
        return json.dumps(response["structured"])
    return str(response.get("content", ""))


def _lines(request: dict[str, Any]) -> list[str]:
    """A request as readable lines, for a diff."""
    out: list[str] = []
    for i, m in enumerate(request.get("messages", []), 1):
        out.append(f"message {i} ({m.get('role')}):")
        content = m.get("content")
        if isinstance(content, str):
            out += ["  " + line for line in content.splitlines()]
        elif content is not None:
            out.append("  " + json.dumps(content, sort_keys=True))
        for call in m.get("tool_calls") or []:
            out.append(f"  calls {call.get('name')}({json.dumps(call.get('arguments'))})")
        if m.get("tool_call_id"):
            out.append(f"  (the result of {m['tool_call_id']})")
    for tool in request.get("tools", []):
        out.append(f"tool {tool.get('name')}: {tool.get('description', '')}")
        out.append(f"  parameters {json.dumps(tool.get('parameters'), sort_keys=True)}")
    return out


def short_diff(recorded: dict[str, Any], current: dict[str, Any]) -> str:
    """The first lines of a unified diff between two requests."""
    diff = [
        line if len(line) <= MAX_DIFF_LINE_CHARS else line[:MAX_DIFF_LINE_CHARS] + "..."
        for line in difflib.unified_diff(
            _lines(recorded), _lines(current), "recorded", "this run", n=1, lineterm=""
        )
    ]
    if len(diff) > MAX_DIFF_LINES:
        diff = [*diff[:MAX_DIFF_LINES], f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)"]
    return "\n".join(diff)


# -- recording ---------------------------------------------------------------------------
class Recorder:
    """Writes a cassette: the header when the run starts, then one line per exchange."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._seq = 0
        self._normaliser = Normaliser()
        self._started = False
        try:  # opened now, so a path that cannot be written stops the run before it starts
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: Any = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise CassetteError(
                f"cannot write the cassette: {exc.strerror or exc}", file=self.path
            ) from None

    def start(
        self, *, roles: dict[str, dict[str, Any]], normaliser: Normaliser, run_id: str
    ) -> None:
        self._normaliser = normaliser
        self._started = True
        self._write(
            {
                "kind": "cassette",
                "version": CASSETTE_VERSION,
                "darkfactory": __version__,
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "run_id": run_id,
                "roles": roles,
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        line = redact_secrets(json.dumps(record, ensure_ascii=False))
        self._fh.write(line + "\n")
        self._fh.flush()

    def record(
        self,
        *,
        role: str,
        model: str,
        messages: str | list[Any],
        tools: list[Any] | None,
        result: Any,
        usage: dict[str, int],
    ) -> None:
        norm = self._normaliser
        request = norm.apply(request_of(messages, tools), norm.text)
        response = norm.apply(response_of(result), norm.exact)
        with self._lock:
            if not self._started or self._fh is None:
                raise RuntimeError("the recorder was not started (ModelPlan.bind_run)")
            self._seq += 1
            self._calls[role] = self._calls.get(role, 0) + 1
            self._write(
                {
                    "kind": "exchange",
                    "seq": self._seq,
                    "role": role,
                    "call": self._calls[role],
                    "model": model,
                    "request": request,
                    "response": response,
                    "usage": usage,
                }
            )

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


# -- replaying ---------------------------------------------------------------------------
@dataclass
class _Exchange:
    line: int
    record: dict[str, Any]


class Cassette:
    """A recorded run, played back one call at a time per role (shared by its roles)."""

    def __init__(self, path: Path, header: dict[str, Any], exchanges: list[_Exchange]) -> None:
        self.path = path
        self.header = header
        self.by_role: dict[str, list[_Exchange]] = {}
        for ex in exchanges:
            self.by_role.setdefault(str(ex.record["role"]), []).append(ex)
        self.normaliser = Normaliser()
        self.fatal: ReplayDivergence | None = None
        self._played: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        p = Path(path)
        hint = "record one with: darkfactory run SPEC --record CASSETTE.jsonl"
        if not p.is_file():
            raise CassetteError("cassette not found", file=p, hint=hint)
        header: dict[str, Any] | None = None
        exchanges: list[_Exchange] = []
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CassetteError(f"not UTF-8 text: {exc}", file=p, hint=hint) from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
                what = exc if isinstance(exc, ValueError) else "nested too deeply"
                raise CassetteError(f"not a JSON line: {what}", file=p, line=n, hint=hint) from None
            kind = record.get("kind") if isinstance(record, dict) else None
            if header is None:
                if kind != "cassette":
                    raise CassetteError(
                        "the first line is not a cassette header", file=p, line=n, hint=hint
                    )
                if record.get("version") != CASSETTE_VERSION:
                    raise CassetteError(
                        f"cassette version {record.get('version')!r} is not {CASSETTE_VERSION}",
                        file=p,
                        line=n,
                        hint="record it again with this version of darkfactory",
                    )
                header = record
            elif kind == "exchange" and {"role", "request", "response"} <= set(record):
                exchanges.append(_Exchange(n, record))
            else:
                raise CassetteError("not an exchange line", file=p, line=n, hint=hint)
        if header is None:
            raise CassetteError("the cassette is empty", file=p, hint=hint)
        return cls(p, header, exchanges)

    def capabilities(self, role: str) -> dict[str, Any]:
        roles: dict[str, dict[str, Any]] = self.header.get("roles") or {}
        return roles.get(role, {})

    def play(self, role: str, messages: str | list[Any], tools: list[Any] | None) -> dict[str, Any]:
        """The recorded exchange for this role's next call; ``ReplayDivergence`` if none fits."""
        if self.fatal is not None:
            raise self.fatal
        norm = self.normaliser
        current = norm.apply(request_of(messages, tools), norm.text)
        with self._lock:
            call = self._played.get(role, 0) + 1
            self._played[role] = call
            recorded = self.by_role.get(role, [])
            if call > len(recorded):
                self.fatal = ReplayDivergence(
                    f"replay diverged at call {call} of role {role!r}: the recording "
                    f"({self.path}) has only {len(recorded)} call(s) for this role. The "
                    "pipeline asks the model more than when it was recorded; record again "
                    "to accept the change."
                )
                raise self.fatal
            ex = recorded[call - 1]
            if ex.record["request"] != current:
                self.fatal = ReplayDivergence(
                    f"replay diverged at call {call} of role {role!r} (cassette {self.path}, "
                    f"line {ex.line}): the request differs from the recorded one, so the "
                    "recorded answer does not fit. A prompt, task, tool or setting changed "
                    "since the recording; record again to accept the change. First "
                    f"difference:\n{short_diff(ex.record['request'], current)}"
                )
                raise self.fatal
        return {
            **ex.record,
            "response": norm.apply(ex.record["response"], norm.restore),
        }
