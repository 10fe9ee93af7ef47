"""A URL shortener over HTTP (WSGI, standard library only)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    302: "Found",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
}
Reply = tuple[int, Any, list[tuple[str, str]]]


class Store:
    """Links by code, oldest first, and the counter for automatic codes."""

    def __init__(self) -> None:
        self.links: dict[str, dict[str, Any]] = {}
        self.counter = 0

    def next_code(self) -> str:
        """The next decimal code that no link has."""
        while True:
            self.counter += 1
            if str(self.counter) not in self.links:
                return str(self.counter)

    def add(self, url: str, code: str | None) -> dict[str, Any]:
        link = {"code": code or self.next_code(), "url": url, "visits": 0}
        self.links[link["code"]] = link
        return link


STORE = Store()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI entry point (mounted anywhere: it routes on PATH_INFO)."""
    status, body, headers = route(environ, STORE)
    if body is not None:
        headers = [*headers, ("Content-Type", "application/json")]
    start_response(f"{status} {REASONS[status]}", headers)
    return [] if body is None else [json.dumps(body).encode("utf-8")]


def route(environ: dict[str, Any], store: Store) -> Reply:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO") or "/"
    if path == "/links":
        if method == "GET":
            return 200, list(store.links.values()), []
        if method == "POST":
            return create(environ, store)
        return 405, {"error": f"{method} is not allowed on {path}"}, []
    match = re.fullmatch(r"/(r|links)/([^/]+)", path)
    if match is None:
        return 404, {"error": f"no such path {path}"}, []
    kind, code = match.groups()
    link = store.links.get(code)
    if link is None:
        return 404, {"error": f"no link {code}"}, []
    if kind == "r" and method == "GET":
        link["visits"] += 1
        return 302, None, [("Location", link["url"])]
    if kind == "links" and method == "GET":
        return 200, link, []
    if kind == "links" and method == "DELETE":
        del store.links[code]
        return 204, None, []
    return 405, {"error": f"{method} is not allowed on {path}"}, []


def create(environ: dict[str, Any], store: Store) -> Reply:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = json.loads(environ["wsgi.input"].read(length) or b"null")
    except (ValueError, json.JSONDecodeError):
        return 422, {"error": "the body must be JSON"}, []
    problem = _problem(data)
    if problem:
        return 422, {"error": problem}, []
    code = data.get("code")
    if code is not None and code in store.links:
        return 409, {"error": f"code {code} is taken"}, []
    return 201, store.add(data["url"], code), []


def _problem(data: Any) -> str | None:
    """Why ``data`` is not a valid new link (None: it is)."""
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(data) - {"url", "code"})
    if unknown:
        return f"unknown fields: {', '.join(unknown)}"
    url = data.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return "url must start with http:// or https://"
    code = data.get("code")
    if code is not None and not (isinstance(code, str) and CODE.fullmatch(code)):
        return "code must be 1 to 32 letters, digits, _ or -"
    return None
