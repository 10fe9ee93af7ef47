"""Contract checks for acceptance tests generated from an OpenAPI document.

Dark Factory copies this file, unchanged, next to ``test_contract.py`` and ``openapi.json``
in the acceptance directory. Each generated test calls ``check(...)``, which

1. sends one request to the WSGI callable ``app`` of the module ``service`` (the project's
   ``service.py`` or ``service/`` package), in process, with werkzeug's test client: no
   server, no network, and the app's state carries over from one request to the next;
2. fails unless the status code is the one the test expects;
3. fails unless the response (status, media type, headers, body) matches the document,
   checked by openapi-core; the failure says "does not match the OpenAPI document" and
   lists every problem openapi-core found.

The app is mounted at the path of the document's first ``servers`` URL (``/`` without
one): it sees that prefix as ``SCRIPT_NAME`` and the path as written under ``paths:`` as
``PATH_INFO``. The other parts of server URLs (scheme, host) are ignored.

Only the standard library, werkzeug and openapi-core (both installed with Dark Factory) are
imported, so this runs in the sandbox with the interpreter Dark Factory runs on.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

DOCUMENT = Path(__file__).with_name("openapi.json")
SERVICE_MODULE = "service"
APP_ATTRIBUTE = "app"
HOST = "http://localhost"
MAX_BODY_SHOWN = 600


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


#: ``body=NO_BODY``: the request has no body (``None`` is the JSON body ``null``).
NO_BODY: Any = _NoBody()


class Contract:
    """An OpenAPI document, and how requests are built and responses validated against it."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = _mounted(document)
        self.base_path = self.document["servers"][0]["url"].rstrip("/")
        self._openapi: Any = None

    @classmethod
    def from_file(cls, path: Path = DOCUMENT) -> Contract:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @property
    def openapi(self) -> Any:
        if self._openapi is None:
            from openapi_core import Config, OpenAPI

            # The document was validated when the spec was read; not again for each test.
            self._openapi = OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))
        return self._openapi

    def request_args(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        cookies: Mapping[str, Any] | None = None,
        body: Any = NO_BODY,
        media_type: str | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for werkzeug's ``Client.open`` / ``EnvironBuilder``."""
        params = dict(path_params or {})

        def fill(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in params:
                raise ValueError(f"no value for the path parameter {name!r} of {path}")
            return quote(_text(params[name]), safe="")

        header_list = [(k, _text(v)) for k, v in (headers or {}).items()]
        if cookies:
            header_list.append(
                ("Cookie", "; ".join(f"{k}={quote(_text(v))}" for k, v in cookies.items()))
            )
        args: dict[str, Any] = {
            "path": re.sub(r"\{([^}]+)\}", fill, path),
            "base_url": HOST + self.base_path,
            "method": method.upper(),
            "query_string": [
                (k, _text(item))
                for k, v in (query or {}).items()
                for item in (v if isinstance(v, list) else [v])
            ],
            "headers": header_list,
        }
        if body is not NO_BODY:
            media = media_type or "application/json"
            if _is_json(media):
                args["data"] = json.dumps(body)
            elif media == "application/x-www-form-urlencoded" and isinstance(body, Mapping):
                args["data"] = {k: _text(v) for k, v in body.items()}
            else:
                args["data"] = body if isinstance(body, str | bytes) else _text(body)
            args["content_type"] = media
        return args

    def request_problems(self, args: Mapping[str, Any]) -> list[str]:
        """What is wrong with the request ``args`` describe, per the document (security aside)."""
        from openapi_core.validation.request.exceptions import SecurityValidationError

        errors = self.openapi.iter_request_errors(self.openapi_request(args))
        return [explain(e) for e in errors if not isinstance(e, SecurityValidationError)]

    def response_problems(self, args: Mapping[str, Any], response: Any) -> list[str]:
        """What is wrong with a werkzeug ``response`` to the request ``args``, per the document."""
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse

        errors = self.openapi.iter_response_errors(
            self.openapi_request(args), WerkzeugOpenAPIResponse(response)
        )
        return [explain(e) for e in errors]

    @staticmethod
    def openapi_request(args: Mapping[str, Any]) -> Any:
        """The request ``args`` describe, for openapi-core (built afresh: the app has read its
        own copy's body)."""
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
        from werkzeug.test import EnvironBuilder
        from werkzeug.wrappers import Request

        builder = EnvironBuilder(**args)
        try:
            request = Request(builder.get_environ())
            request.get_data()  # read the body now, while the builder's stream is open
        finally:
            builder.close()
        return WerkzeugOpenAPIRequest(request)

    def check(self, app: Any, method: str, path: str, *, expect: str, **parts: Any) -> Any:
        """Send the request to ``app``; fail unless the status and the response are as documented."""
        from werkzeug.test import Client

        args = self.request_args(method, path, **parts)
        response = Client(app).open(**args)
        where = f"{args['method']} {self.base_path}{args['path']}"
        if args["query_string"]:
            where += "?" + "&".join(f"{k}={v}" for k, v in args["query_string"])
        body = response.get_data(as_text=True)
        if not status_matches(response.status_code, expect):
            raise AssertionError(
                f"{where}: expected status {_expected(expect)}, got {response.status_code}\n"
                f"response body: {_short(body)}"
            )
        problems = self.response_problems(args, response)
        if problems:
            raise AssertionError(
                f"{where}: the {response.status_code} response does not match the OpenAPI "
                "document:\n  - " + "\n  - ".join(problems) + f"\nresponse body: {_short(body)}"
            )
        return response


_default: dict[str, Any] = {}


def check(method: str, path: str, *, expect: str, **parts: Any) -> Any:
    """``Contract.check`` with ``openapi.json`` beside this file and ``service.app``."""
    if "contract" not in _default:
        _default["contract"] = Contract.from_file()
    return _default["contract"].check(service_app(), method, path, expect=expect, **parts)


def service_app() -> Any:
    """The WSGI callable ``app`` of the module ``service``, imported once per test session."""
    if "app" not in _default:
        try:
            module = importlib.import_module(SERVICE_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name != SERVICE_MODULE:
                raise
            raise AssertionError(
                f"there is no module {SERVICE_MODULE!r}: write {SERVICE_MODULE}.py in the project "
                f"root with a WSGI callable named {APP_ATTRIBUTE!r}"
            ) from None
        app = getattr(module, APP_ATTRIBUTE, None)
        if not callable(app):
            raise AssertionError(
                f"{module.__file__}: no WSGI callable named {APP_ATTRIBUTE!r} "
                f"(def {APP_ATTRIBUTE}(environ, start_response): ...)"
            )
        _default["app"] = app
    return _default["app"]


def status_matches(status: int, expect: str) -> bool:
    """``expect`` is a response key of the document: ``"404"``, ``"4XX"`` or ``"default"``."""
    if expect == "default":
        return True
    if len(expect) == 3 and expect[1:].upper() == "XX":
        return str(status)[0] == expect[0]
    return str(status) == expect


def explain(error: BaseException) -> str:
    """An openapi-core error as one line: its kind, then the schema errors and where they are."""
    chain = [error]
    while (cause := chain[-1].__cause__) is not None and cause not in chain:
        chain.append(cause)
    kind = type(error).__name__
    schema_errors = [e for c in chain for e in (getattr(c, "schema_errors", None) or ())]
    if schema_errors:
        details = []
        for e in schema_errors:
            where = "/".join(str(p) for p in getattr(e, "absolute_path", ()))
            details.append(f"{getattr(e, 'message', e)} (at {where or 'the top level'})")
        return f"{kind}: " + "; ".join(details)
    texts: list[str] = []
    for c in chain:
        text = str(c).removeprefix(f"{type(c).__name__}: ")
        if text and not any(text in t for t in texts):
            texts.append(text)
    return f"{kind}: " + ": ".join(texts) if texts else kind


def _mounted(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document with one server: the path of its first server URL (``/`` without one)."""
    doc = copy.deepcopy(dict(document))
    servers = doc.get("servers") or [{"url": "/"}]
    first = servers[0]
    url = first.get("url", "/")
    for name, variable in (first.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str(variable.get("default", "")))
    base = urlsplit(url).path.rstrip("/")
    doc["servers"] = [{"url": base or "/"}]
    for item in (doc.get("paths") or {}).values():
        if isinstance(item, dict):
            item.pop("servers", None)
            for operation in item.values():
                if isinstance(operation, dict):
                    operation.pop("servers", None)
    return doc


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _is_json(media_type: str) -> bool:
    media = media_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _expected(expect: str) -> str:
    if expect == "default":
        return "any"
    return expect if expect.isdigit() else f"{expect[0]}xx"


def _short(text: str) -> str:
    text = text.strip() or "(empty)"
    return text if len(text) <= MAX_BODY_SHOWN else text[:MAX_BODY_SHOWN] + " [...]"
