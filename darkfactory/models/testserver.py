"""An OpenAI-compatible chat server that plays a playbook: a test and rehearsal tool, not AI.

It lets the factory be exercised through CrewAI's real OpenAI provider and a real HTTP
connection, offline: ``POST /v1/chat/completions`` answers from a playbook
(``darkfactory.models.playbook``), the next step of the asking role each time. The role is
read from the system message CrewAI sends (``You are {role}. ...``). A step is answered
the way the request asks for it: as a native function call (OpenAI ``tool_calls``) when the
request offers ``tools``, else in the text format CrewAI's agent loop parses. Responses
carry ``usage`` (4 characters a token), streamed or not.

Faults can be injected per request (``inject``): a stall past the client's timeout, HTTP
429 with ``Retry-After``, 500 or 503, a malformed body, a body cut off mid-way, an empty
answer, or a connection closed without a response. A faulted request never consumes a
playbook step, so a retried request gets the answer the failed one would have.

It listens on 127.0.0.1 only, on a port the system picks. A request without a role (no
``You are ...`` system message, e.g. ``darkfactory doctor``'s check) gets a call of the
first offered tool, or ``pong``. ``GET /v1/models`` lists ``models`` (``playbook``); a chat
request for another model gets HTTP 404 ``model_not_found``, as OpenAI answers it. With
``api_key`` set, any request without that bearer key gets HTTP 401 whose message repeats
the key it was sent (as careless servers do), which the tests use to show that keys never
reach a trace, report or log.

Rehearse against it by hand::

    python -m darkfactory.models.testserver examples/playbooks/wordcount.yaml --port 8765
    BASE_URL=http://127.0.0.1:8765/v1 darkfactory run examples/specs/wordcount.yaml \\
        --model openai/playbook
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkfactory.models.playbook import Playbook, Step, load_playbook
from darkfactory.models.scripted import (
    estimate_tokens,
    messages_text,
    render_text,
    role_text_of,
    step_call,
)

if TYPE_CHECKING:
    from darkfactory.config import Config

FAULT_KINDS = ("timeout", "429", "500", "503", "malformed", "truncated", "empty", "disconnect")


@dataclass
class Fault:
    """What the server does to the next request(s) instead of answering."""

    kind: str
    #: How many requests get it; None: every request from now on (a provider that is down).
    times: int | None = 1
    #: Only requests of this role key (None: any request).
    role: str | None = None
    #: ``Retry-After`` seconds sent with 429 and 503 (None: no header).
    retry_after: float | None = None
    #: ``timeout``: seconds the server stalls before it hangs up without answering.
    delay_s: float = 5.0


@dataclass
class Served:
    """One request the server got, and what it did with it."""

    n: int
    role: str | None
    step: int | None
    fault: str | None
    status: int
    tools: list[str]
    stream: bool
    model: str
    #: ``tool_calls``, ``text`` or None (no answer), and the usage the answer reported.
    answer: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class _State:
    position: dict[str, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    calls: int = 0
    lists: int = 0


class PlaybookServer:
    """The server; ``with PlaybookServer(book, role_keys) as server: server.base_url``."""

    def __init__(
        self,
        playbook: Playbook,
        role_keys: dict[str, str],
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("playbook",),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.playbook = playbook
        #: The model names ``GET /v1/models`` lists; a chat request for another gets 404.
        self.models = models
        #: role text (agents.yaml ``role:``) -> role key
        self.role_keys = role_keys
        self.api_key = api_key
        self._lock = threading.Lock()
        self._state = _State()
        self._stopping = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @classmethod
    def for_config(
        cls,
        playbook: str | Path,
        config: Config,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("playbook",),
    ) -> PlaybookServer:
        """A server for ``playbook``, whose roles are those of ``config``'s agents.yaml."""
        book = load_playbook(playbook, roles=set(config.agents))
        roles = {a.role: key for key, a in config.agents.items()}
        return cls(book, roles, api_key=api_key, models=models)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> PlaybookServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="playbook-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; stalled requests are hung up on. The port is closed."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PlaybookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to set ``BASE_URL`` (or ``OPENAI_BASE_URL``) to."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- faults and what happened ---------------------------------------------------------
    def inject(
        self,
        kind: str,
        *,
        times: int | None = 1,
        role: str | None = None,
        retry_after: float | None = None,
        delay_s: float = 5.0,
    ) -> None:
        """Apply fault ``kind`` (one of ``FAULT_KINDS``) to the next ``times`` requests."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._state.faults.append(Fault(kind, times, role, retry_after, delay_s))

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()

    @property
    def served(self) -> list[Served]:
        with self._lock:
            return list(self._state.served)

    @property
    def errors(self) -> list[str]:
        """Requests the playbook could not answer (no step left, an expectation not met)."""
        with self._lock:
            return list(self._state.errors)

    def seek(self, positions: dict[str, int]) -> None:
        """Set how many steps of each named role have been played (e.g. for a resumed run:
        a model answers whatever it is asked, a playbook only in order)."""
        with self._lock:
            self._state.position.update(positions)

    def remaining(self) -> dict[str, int]:
        """Steps not yet played, per role."""
        with self._lock:
            return {
                role: len(steps) - self._state.position.get(role, 0)
                for role, steps in self.playbook.roles.items()
            }

    # -- answering (called on the server's threads) ---------------------------------------
    def role_of(self, messages: list[dict[str, Any]]) -> tuple[str | None, str | None]:
        """(role key, role text) from the system message; (None, None) without one."""
        system = next(
            (str(m.get("content") or "") for m in messages if m.get("role") == "system"), ""
        )
        if not system.startswith("You are "):
            return None, None
        rest = system.removeprefix("You are ")
        matches = [t for t in self.role_keys if rest.startswith(t)]
        if not matches:
            return None, rest.split(".", 1)[0]
        text = max(matches, key=len)
        return self.role_keys[text], text

    def _fault_for(self, role: str | None) -> Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.role is not None and fault.role != role:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._state.faults.remove(fault)
                return fault
        return None

    def _next_step(self, role: str) -> tuple[int, Step] | None:
        steps = self.playbook.roles.get(role, [])
        with self._lock:
            i = self._state.position.get(role, 0)
            if i >= len(steps):
                return None
            self._state.position[role] = i + 1
        return i, steps[i]

    def _log(self, entry: Served) -> None:
        with self._lock:
            self._state.served.append(entry)

    def _error(self, text: str) -> str:
        with self._lock:
            self._state.errors.append(text)
        return text

    @property
    def model_lists(self) -> int:
        """How many times ``GET /v1/models`` was asked."""
        with self._lock:
            return self._state.lists

    def _listed(self) -> None:
        with self._lock:
            self._state.lists += 1

    def _count(self) -> int:
        with self._lock:
            self._state.calls += 1
            return self._state.calls


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: PlaybookServer


def _tool_names(body: dict[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        names.append(str(fn.get("name", "")))
    return names


def _fold(name: str) -> str:
    return name.replace("_", "").replace(" ", "").casefold()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- plumbing -------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = (
            "rate_limit_error"
            if status == 429
            else "server_error"
            if status >= 500
            else "invalid_request_error"
        )
        self._send_json(
            status, {"error": {"message": message, "type": kind, "code": None}}, headers
        )

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- requests -------------------------------------------------------------------------
    def _authorised(self) -> bool:
        """Whether the request has the server's key (every request; 401 when not)."""
        owner = self.server.owner
        if owner.api_key is None:
            return True
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given == owner.api_key:
            return True
        # Deliberately careless, like some servers: the key is repeated back.
        self._error_json(401, f"Incorrect API key provided: {given}")
        return False

    def do_GET(self) -> None:
        owner = self.server.owner
        if not self.path.rstrip("/").endswith("/models"):
            self._error_json(404, f"no such path: {self.path}")
            return
        owner._listed()
        if not self._authorised():
            return
        models = [{"id": m, "object": "model", "owned_by": "playbook"} for m in owner.models]
        self._send_json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error_json(404, f"no such path: {self.path}")
            return
        if not self._authorised():
            return
        try:
            body = json.loads(raw)
            messages = list(body["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            self._error_json(400, f"not a chat completion request: {exc}")
            return
        if str(body.get("model", "")) not in owner.models:  # as OpenAI answers it
            self._send_json(
                404,
                {
                    "error": {
                        "message": f"The model `{body.get('model')}` does not exist or you "
                        "do not have access to it.",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
            return
        role, role_text = owner.role_of(messages)
        n = owner._count()
        stream = bool(body.get("stream"))
        tools = _tool_names(body)
        model = str(body.get("model", ""))

        def log(
            step: int | None, fault: str | None, status: int, reply: dict[str, Any] | None = None
        ) -> None:
            entry = Served(n, role, step, fault, status, tools, stream, model)
            if reply is not None:
                usage = self._completion(body, reply)["usage"]
                entry.answer = "tool_calls" if reply.get("tool_calls") else "text"
                entry.prompt_tokens = usage["prompt_tokens"]
                entry.completion_tokens = usage["completion_tokens"]
            owner._log(entry)

        fault = owner._fault_for(role)
        if fault is not None:
            # Logged first: a stall may outlast the client's (and the test's) wait.
            status = {"timeout": 0, "disconnect": 0}.get(fault.kind) or (
                int(fault.kind) if fault.kind.isdigit() else 200
            )
            log(None, fault.kind, status)
            self._apply_fault(fault, body, stream)
            return
        if role is None:
            if role_text is not None:
                message = owner._error(
                    f"request {n}: unknown role {role_text!r} (roles: "
                    f"{', '.join(sorted(owner.role_keys))})"
                )
                log(None, None, 400)
                self._error_json(400, message)
                return
            reply = self._health_reply(body)
            log(None, None, 200, reply)
            self._answer(body, reply, stream)
            return
        found = owner._next_step(role)
        if found is None:
            steps = len(owner.playbook.roles.get(role, []))
            message = owner._error(
                f"the playbook {owner.playbook.path or ''} has no step left for role {role!r} "
                f"(it has {steps}); request {n} asked once more"
            )
            log(None, None, 400)
            self._error_json(400, message)
            return
        index, step = found
        text = messages_text(messages)
        for needle in step.expectations:
            if needle not in text:
                message = owner._error(
                    f"playbook {owner.playbook.path}: step {index + 1} of role {role!r} expects "
                    f"the request to contain {needle!r}, and it does not"
                )
                log(index + 1, None, 400)
                self._error_json(400, message)
                return
        if step.delay_s:
            owner._stopping.wait(step.delay_s)
        reply = self._render(step, body, n)
        log(index + 1, None, 200, reply)
        self._answer(body, reply, stream)

    # -- answers --------------------------------------------------------------------------
    def _render(self, step: Step, body: dict[str, Any], n: int) -> dict[str, Any]:
        """The assistant message for ``step``: native tool calls when tools are offered."""
        owner = self.server.owner

        def role_text(key: str) -> str:
            return role_text_of(owner.role_keys, key)

        offered = _tool_names(body)
        if not offered or step.kind in ("answer", "raw"):
            if offered and step.answer is not None:
                return {"role": "assistant", "content": step.answer}
            return {"role": "assistant", "content": render_text(step, role_text)}
        name, args = step_call(step, role_text)
        name = next((o for o in offered if _fold(o) == _fold(name)), name)
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ],
        }

    def _health_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        offered = _tool_names(body)
        if not offered:
            return {"role": "assistant", "content": "pong"}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_health",
                    "type": "function",
                    "function": {"name": offered[0], "arguments": "{}"},
                }
            ],
        }

    def _completion(self, body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        prompt = json.dumps(body.get("messages")) + json.dumps(body.get("tools") or [])
        usage = {
            "prompt_tokens": estimate_tokens(prompt),
            "completion_tokens": estimate_tokens(json.dumps(message)),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "playbook")),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": usage,
        }

    def _answer(
        self, body: dict[str, Any], message: dict[str, Any], stream: bool, *, cut: bool = False
    ) -> None:
        completion = self._completion(body, message)
        if not stream:
            data = json.dumps(completion).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if cut:  # the headers promise the whole body; half of it comes
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._hang_up()
                return
            self.wfile.write(data)
            self.wfile.flush()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = list(self._stream_chunks(completion, body))
        for i, chunk in enumerate(chunks):
            if cut and i == 1:  # a chunk or two, then the connection drops
                self._hang_up()
                return
            self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _stream_chunks(self, completion: dict[str, Any], body: dict[str, Any]) -> Any:
        base = {k: completion[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk"
        choice = completion["choices"][0]
        message = choice["message"]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        content = message.get("content") or ""
        for i in range(0, len(content), 64):
            yield chunk({"content": content[i : i + 64]})
        for i, call in enumerate(message.get("tool_calls") or []):
            yield chunk({"tool_calls": [{"index": i, **call}]})
        yield chunk({}, choice["finish_reason"])
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": completion["usage"]}

    # -- faults ---------------------------------------------------------------------------
    def _apply_fault(self, fault: Fault, body: dict[str, Any], stream: bool) -> None:
        """Do ``fault`` to this request."""
        owner = self.server.owner
        kind = fault.kind
        if kind == "timeout":
            owner._stopping.wait(fault.delay_s)
            self._hang_up()
            return
        if kind == "disconnect":
            self._hang_up()
            return
        if kind in ("429", "500", "503"):
            status = int(kind)
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            text = {
                429: "Rate limit reached for requests (injected fault)",
                500: "The server had an error while processing your request (injected fault)",
                503: "The engine is currently overloaded (injected fault)",
            }[status]
            self._error_json(status, text, headers)
            return
        if kind == "malformed":
            data = b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": '
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return
        if kind == "empty":
            self._answer(body, {"role": "assistant", "content": ""}, stream)
            return
        if kind == "truncated":
            self._answer(body, {"role": "assistant", "content": "x" * 400}, stream, cut=True)
            return
        raise AssertionError(kind)


def main(argv: list[str] | None = None) -> int:
    """``python -m darkfactory.models.testserver PLAYBOOK``: serve until interrupted."""
    from darkfactory.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m darkfactory.models.testserver",
        description="Serve a playbook as an OpenAI-compatible chat API on 127.0.0.1 "
        "(a rehearsal tool, not AI).",
    )
    parser.add_argument("playbook", type=Path)
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--config", type=Path, default=None, help="config directory")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    server = PlaybookServer(
        load_playbook(args.playbook, roles=set(config.agents)),
        {a.role: key for key, a in config.agents.items()},
        port=args.port,
    )
    with server:
        print(f"serving {args.playbook} at {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
