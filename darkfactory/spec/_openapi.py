"""A ``contract`` spec: an OpenAPI 3.0 / 3.1 document (YAML or JSON) describing a service.

**Detected** by a top-level ``openapi:`` key (a ``swagger:`` key is detected too, to say
that OpenAPI 2.0 is not supported). The document is checked with openapi-spec-validator
(which comes with openapi-core); every problem is a SpecError naming the file, the line and
the key. ``$ref`` must point inside the document.

**What the agents build** (the convention, repeated in the Spec's summary): a module
``service`` in the project root (``service.py``, or a package ``service/``) whose attribute
``app`` is a WSGI callable (PEP 3333). The standard library is enough (``wsgiref``), so
the sandbox needs nothing installed for the service itself. The app is mounted at the path
of the first ``servers`` URL (``SCRIPT_NAME``) and serves the paths as written under
``paths:`` (``PATH_INFO``); it answers with the documented media types.

**Requirements**, in document order: one per operation ("GET /todos/{id}: Get a todo"),
each followed by one per documented response ("GET /todos/{id} returns 404 with an Error
body (No such todo)").

**Tests**: ``darkfactory.spec._openapi_cases`` turns the document's examples into requests
(its docstring has the rules) and ``darkfactory.spec._openapi_tests`` writes them as
``test_contract.py``; each test sends one request to ``service.app`` in process and checks
the status code and that the response matches the document, with openapi-core. A response
no example request reaches is "not testable without examples": its requirement says so,
has no test, and is reported untested, never passed.

openapi-core is a dependency for this: it validates a response (status, media type,
headers, body against the schema, OpenAPI 3.0 and 3.1 dialects) as the OpenAPI
specification defines it, which hand-written checks would only approximate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkfactory.errors import SpecError
from darkfactory.spec._document import (
    check_local_refs,
    check_numbers,
    check_ref_cycles,
    fail,
    resolve_pointer,
)
from darkfactory.spec.model import Requirement, SourceRef
from darkfactory.yamlio import KeyPath, Locations

#: Operation keys of a path item, in the order requirements list them.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SUPPORTED_VERSION = re.compile(r"^3\.[01]\.\d+$")
SERVICE_FILE = "service.py"


@dataclass
class Response:
    """One documented response of an operation."""

    status: str  # the key: "200", "4XX" or "default"
    data: dict[str, Any]  # the response object, $ref resolved
    path: KeyPath  # where its key is
    requirement: Requirement | None = None


@dataclass
class Operation:
    """One operation, its parameters (path-level merged in) and responses, $refs resolved."""

    method: str
    path: str
    data: dict[str, Any]
    key_path: KeyPath
    parameters: list[tuple[dict[str, Any], KeyPath]]
    request_body: tuple[dict[str, Any], KeyPath] | None
    responses: list[Response] = field(default_factory=list)
    requirement: Requirement | None = None

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass
class Document:
    """A checked OpenAPI document and where its keys are."""

    data: dict[str, Any]
    locs: Locations
    file: Path

    def deref(self, value: Any, path: KeyPath) -> tuple[Any, KeyPath]:
        """``value`` with ``$ref`` followed (to the end of a chain), and its key path."""
        seen: set[str] = set()
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            if ref in seen:
                raise self.fail(f"$ref {ref!r} refers to itself", (*path, "$ref"))
            seen.add(ref)
            found = resolve_pointer(self.data, ref)
            if found is None:  # check_local_refs ran first; kept for safety
                raise self.fail(f"$ref {ref!r} points at nothing", (*path, "$ref"))
            value, path = found
        return value, path

    def fail(self, message: str, path: KeyPath, hint: str | None = None) -> SpecError:
        return fail(message, file=self.file, locs=self.locs, path=path, hint=hint)

    def line(self, path: KeyPath) -> int | None:
        return self.locs.line_of(path)


def check_document(data: Any, locs: Locations, *, file: Path) -> Document:
    """The document if it is a valid OpenAPI 3.0/3.1 document; else a SpecError with its line."""
    if not isinstance(data, dict):
        raise SpecError("an OpenAPI document is a mapping with an 'openapi' key", file=file)
    version = data.get("openapi")
    if version is None and "swagger" in data:
        raise fail(
            f"unsupported OpenAPI version {data['swagger']!r} (Swagger / OpenAPI 2.0)",
            file=file,
            locs=locs,
            path=("swagger",),
            hint="convert the document to OpenAPI 3.0 or 3.1 (e.g. with swagger2openapi)",
        )
    if not isinstance(version, str) or not SUPPORTED_VERSION.match(version):
        quoted = isinstance(version, int | float) and not isinstance(version, bool)
        raise fail(
            f"unsupported OpenAPI version {version!r}",
            file=file,
            locs=locs,
            path=("openapi",),
            hint="Dark Factory reads OpenAPI 3.0.x and 3.1.x documents"
            + ("; write the version in quotes, e.g. openapi: '3.1.0'" if quoted else ""),
        )
    check_numbers(data, file=file, locs=locs, what="OpenAPI document")
    check_local_refs(data, file=file, locs=locs, what="OpenAPI document")
    check_ref_cycles(data, file=file, locs=locs, what="OpenAPI document")
    _validate(data, locs, file=file, version=version)
    return Document(data=data, locs=locs, file=file)


def _validate(data: dict[str, Any], locs: Locations, *, file: Path, version: str) -> None:
    from jsonschema.exceptions import best_match, relevance
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator, validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
    from referencing.exceptions import Unresolvable

    cls = OpenAPIV31SpecValidator if version.startswith("3.1") else OpenAPIV30SpecValidator
    try:
        validate(data, cls=cls)
        return
    except Unresolvable as exc:
        raise SpecError(f"invalid OpenAPI document: cannot resolve {exc}", file=file) from None
    except OpenAPIValidationError as exc:
        # The deepest error under a oneOf/anyOf, as best_match's own descent picks it:
        # "'$ref' is a required property" (the Reference alternative) says nothing useful.
        error: Any = best_match([min(exc.context, key=relevance)]) if exc.context else exc
    path: KeyPath = tuple(error.absolute_path)
    if not path:
        path = _path_named_in(error.message, data)
    unexpected = re.search(r"'([^']+)' was unexpected", error.message)
    if unexpected and isinstance(error.instance, dict) and unexpected.group(1) in error.instance:
        path = (*path, unexpected.group(1))  # the line of the misspelt key itself
    raise fail(
        f"invalid OpenAPI document: {_message(error)}",
        file=file,
        locs=locs,
        path=path,
        hint=f"the OpenAPI {version[:3]} specification says what is allowed here",
    )


def _message(error: Any) -> str:
    """The validator's message, reworded where its wording names only schema internals."""
    excluded = error.validator_value if error.validator == "not" else None
    if isinstance(excluded, dict) and list(excluded) == ["required"]:
        keys = [str(k) for k in excluded["required"]]
        if len(keys) > 1:
            return f"use {' or '.join(map(repr, keys))}, not both"
    return str(error.message)


def _path_named_in(message: str, data: dict[str, Any]) -> KeyPath:
    """For errors without a location (e.g. an undeclared path parameter): the path they name."""
    for name in data.get("paths") or {}:
        if f"'{name}'" in message:
            return ("paths", name)
    return ()


def iter_operations(doc: Document) -> list[Operation]:
    operations = []
    for path, raw_item in (doc.data.get("paths") or {}).items():
        item, item_path = doc.deref(raw_item, ("paths", path))
        if not isinstance(item, dict):
            continue
        shared = _parameters(doc, item.get("parameters"), (*item_path, "parameters"))
        for method in METHODS:
            op_data = item.get(method)
            if not isinstance(op_data, dict):
                continue
            key_path: KeyPath = ("paths", path, method)
            own = _parameters(doc, op_data.get("parameters"), (*key_path, "parameters"))
            names = {(p["name"], p["in"]) for p, _ in own}
            params = [p for p in shared if (p[0]["name"], p[0]["in"]) not in names] + own
            body = None
            if "requestBody" in op_data:
                body = doc.deref(op_data["requestBody"], (*key_path, "requestBody"))
            op = Operation(method, path, op_data, key_path, params, body)
            for status, raw in (op_data.get("responses") or {}).items():
                resp, _ = doc.deref(raw, (*key_path, "responses", status))
                op.responses.append(Response(status, resp, (*key_path, "responses", status)))
            operations.append(op)
    return operations


def _parameters(doc: Document, value: Any, path: KeyPath) -> list[tuple[dict[str, Any], KeyPath]]:
    out = []
    for i, raw in enumerate(value or []):
        param, where = doc.deref(raw, (*path, i))
        if isinstance(param, dict) and "name" in param and "in" in param:
            out.append((param, where))
    return out


def operation_text(op: Operation) -> str:
    what = op.data.get("summary") or _first_line(op.data.get("description")) or ""
    if not what and op.data.get("operationId"):
        what = f"operation {op.data['operationId']}"
    return f"{op.label}: {what}" if what else f"The service answers {op.label}"


def response_text(op: Operation, resp: Response, doc: Document) -> str:
    if resp.status == "default":
        status = "any other status (default response)"
    elif resp.status.upper().endswith("XX"):
        status = f"a {resp.status[0]}xx status"
    else:
        status = resp.status
    text = f"{op.label} returns {status} with {body_phrase(resp.data)}"
    description = _first_line(resp.data.get("description"))
    return f"{text} ({description.rstrip('.')})" if description else text


def body_phrase(response: dict[str, Any]) -> str:
    content = response.get("content") or {}
    if not content:
        return "no body"
    media = pick_media_type(content)
    schema = (content.get(media) or {}).get("schema")
    if not is_json(media) or not isinstance(schema, dict):
        return f"a {media} body"
    return _schema_phrase(schema)


def _schema_phrase(schema: dict[str, Any]) -> str:
    """How a body reads in a requirement: "an Error body", "a JSON array of Todo"."""
    if isinstance(schema.get("$ref"), str):
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"{_article(name)} {name} body"
    kind = schema.get("type")
    items = schema.get("items")
    if kind == "array" and isinstance(items, dict) and isinstance(items.get("$ref"), str):
        return f"a JSON array of {items['$ref'].rsplit('/', 1)[-1]}"
    if isinstance(schema.get("title"), str):
        return f"{_article(schema['title'])} {schema['title']} body"
    if isinstance(kind, str):
        return "an object body" if kind == "object" else f"a JSON {kind}"
    return "a JSON body"


def pick_media_type(content: dict[str, Any]) -> str:
    """The media type the tests use: JSON first, then form, then text, then the first one."""
    media_types = list(content)
    for wanted in (
        lambda m: m.split(";")[0].strip() == "application/json",
        is_json,
        lambda m: m.startswith("application/x-www-form-urlencoded"),
        lambda m: m.startswith("text/"),
    ):
        for m in media_types:
            if wanted(m):
                return m
    return media_types[0]


def is_json(media_type: str) -> bool:
    media = media_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _requirement(doc: Document, n: int, text: str, path: KeyPath) -> Requirement:
    return Requirement(
        id=f"R{n}", text=text, source=SourceRef(file=str(doc.file), line=doc.line(path))
    )


def _untested(req: Requirement, reason: str) -> None:
    req.untested_reason = reason
    req.text += " [untested: not testable without examples]"


def _contract(op: Operation) -> dict[str, object]:
    assert op.requirement is not None
    return {
        "method": op.method.upper(),
        "path": op.path,
        "operation_id": op.data.get("operationId"),
        "summary": op.data.get("summary") or _first_line(op.data.get("description")),
        "requirement": op.requirement.id,
        "parameters": [
            {"name": p["name"], "in": p["in"], "required": bool(p.get("required"))}
            for p, _ in op.parameters
        ],
        "request_body": sorted(op.request_body[0].get("content") or {}) if op.request_body else [],
        "responses": [
            {
                "status": r.status,
                "requirement": r.requirement.id if r.requirement else None,
                "description": r.data.get("description", ""),
                "media_types": sorted(r.data.get("content") or {}),
            }
            for r in op.responses
        ],
        "line": op.requirement.source.line if op.requirement.source else None,
    }


def _summary(doc: Document, info: dict[str, Any], base_path: str) -> str:
    about = str(info.get("description") or "").strip()
    version = info.get("version")
    convention = (
        f"Build the HTTP service that the OpenAPI document acceptance/openapi.json describes"
        f"{f' (version {version})' if version else ''}: a module `service` ({SERVICE_FILE} in "
        "the project root) exposing a WSGI callable `app(environ, start_response)` (PEP 3333; "
        "the standard library's wsgiref is enough, no web framework is needed). "
        f"The acceptance tests (acceptance/test_contract.py) mount `app` at {base_path or '/'} "
        "and call it in process, in the file's order, with state carried over from one request "
        "to the next; each test checks the status code and that the response (media type, "
        "headers, body) matches the document, using openapi-core. Answer with the documented "
        "media types (Content-Type: application/json for JSON bodies)."
    )
    return f"{about}\n\n{convention}" if about else convention


def _first_line(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


#: A vowel letter that sounds like a consonant: "a User", "a Unit", "a European", "a OneOf".
_YOU_SOUND = re.compile(r"^(?:u[bcdfgklmnprstvz][aeiou]|uni|eu|one)", re.IGNORECASE)


def _article(word: str) -> str:
    if _YOU_SOUND.match(word):
        return "a"
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"
