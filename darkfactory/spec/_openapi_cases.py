"""Example requests for a contract spec: which request each documented response gets.

The rules (named examples pair a request with a response, as Microcks does):

1. **Named examples.** A name given to an example of a parameter or of the request body
   (``examples: {missing: {value: 999}}``) makes one request: each parameter and the body
   take their example of that name, else their single ``example`` (or their schema's
   ``example``, or the first of its ``examples``); an optional parameter without one is
   left out. The request expects the response whose status is the name (``"404"``), else
   the response whose examples have that name, else the operation's first success (2xx)
   response. A name that only a response uses makes a request too, from the single
   examples alone (useful for an operation without parameters).
2. **The unnamed request**, from the single examples alone, expects the first success
   response, unless a named request already does.
3. A request that cannot be made (a required parameter or body without an example, a body
   type other than JSON, form or text) is left out, and so is a request equal to one
   already made that expects another status. A response that no request expects is "not
   testable without examples"; its requirement says why.
4. **Checked when the spec is read**, with openapi-core: a request that expects a success
   (2xx/3xx) must be valid per the document, and each JSON response example must match
   its response's schema. A generated test can then never contradict the document.
5. **Order**: the tests send the requests to one app, so state carries over. Operations
   run by method, POST, PUT, PATCH, GET, HEAD, OPTIONS, TRACE, DELETE (document order for
   the same method): what a request creates exists for the reads, and deletes come last.
   Within an operation, success responses come first, then by status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from darkfactory.errors import SpecError
from darkfactory.spec._openapi import Document, Operation, Response, is_json, pick_media_type
from darkfactory.spec.harness.openapi_contract import NO_BODY, Contract, explain
from darkfactory.yamlio import KeyPath

RUN_ORDER = ("post", "put", "patch", "get", "head", "options", "trace", "delete")
#: Where a parameter's value goes, by its ``in``.
PARAMETER_PART = {"path": "path_params", "query": "query", "header": "headers", "cookie": "cookies"}


class _Missing:
    pass


MISSING = _Missing()


@dataclass
class Case:
    """One request of the generated tests and the response it expects."""

    op: Operation
    name: str | None  # the example name, None for the unnamed request
    status: str  # the response key it expects
    parts: dict[str, Any]  # keyword arguments of ``check``: path_params, query, ..., body
    line: int | None  # where its example is (the operation's line for the unnamed request)
    named_on_request: bool
    requirement_ids: list[str] = field(default_factory=list)

    @property
    def request_key(self) -> str:
        return json.dumps(
            {k: v for k, v in self.parts.items() if v is not NO_BODY}, sort_keys=True, default=str
        )


class Cases(list[Case]):
    """The cases in run order, the base path the app is mounted at, and why responses lack one."""

    def __init__(self, base_path: str) -> None:
        super().__init__()
        self.base_path = base_path
        #: (operation label, response status) -> why no request expects that response.
        self.untested: dict[tuple[str, str], str] = {}


def build_cases(doc: Document, operations: list[Operation]) -> Cases:
    """The requests the generated tests send (the rules are in the module docstring)."""
    contract = Contract(doc.data)
    cases = Cases(contract.base_path)
    order = {m: i for i, m in enumerate(RUN_ORDER)}
    ordered = sorted(enumerate(operations), key=lambda p: (order[p[1].method], p[0]))
    for _, op in ordered:
        op_cases = _operation_cases(doc, op, cases.untested)
        for case in op_cases:
            resp = next(r for r in op.responses if r.status == case.status)
            assert op.requirement is not None and resp.requirement is not None
            case.requirement_ids = [op.requirement.id, resp.requirement.id]
            if _is_success(case.status):
                _check_request(doc, contract, case)
        _check_response_examples(doc, contract, op, op_cases)
        cases.extend(sorted(op_cases, key=lambda c: (not _is_success(c.status), c.status)))
    return cases


def _operation_cases(
    doc: Document, op: Operation, untested: dict[tuple[str, str], str]
) -> list[Case]:
    statuses = {r.status for r in op.responses}
    success = first_success(op)
    request_names = _request_example_names(op)
    response_names: list[str] = []
    for resp in op.responses:
        response_names += [n for n in response_example_names(resp) if n not in response_names]
    candidates: list[Case] = []
    for name in [*request_names, *(n for n in response_names if n not in request_names)]:
        status = _expected_status(doc, op, name, statuses, success)
        if status is None:
            continue
        made = _request(doc, op, name)
        if isinstance(made, str):
            untested.setdefault((op.label, status), f"example {name!r}: {made}")
            continue
        parts, line = made
        candidates.append(Case(op, name, status, parts, line, name in request_names))
    if success is not None and not any(c.status == success for c in candidates):
        made = _request(doc, op, None)
        if isinstance(made, str):
            untested.setdefault((op.label, success), made)
        else:
            candidates.append(Case(op, None, success, made[0], doc.line(op.key_path), True))
    # Requests named on the request side (and the unnamed one) win over response-only names.
    candidates.sort(key=lambda c: (not c.named_on_request, not _is_success(c.status)))
    kept: dict[str, Case] = {}
    for case in candidates:
        other = kept.get(case.request_key)
        if other is None:
            kept[case.request_key] = case
        elif other.status != case.status:
            untested.setdefault(
                (op.label, case.status),
                f"example {case.name!r} has no request example of its own: the request it "
                f"makes is the one example {other.name or '(unnamed)'!r} makes, which expects "
                f"{other.status}; name a parameter or body example {case.name!r} too",
            )
    return list(kept.values())


def first_success(op: Operation) -> str | None:
    """The lowest 2xx response key (``"2XX"`` if that is the only one), or None."""
    exact = sorted(r.status for r in op.responses if r.status.isdigit() and r.status[0] == "2")
    if exact:
        return exact[0]
    return next((r.status for r in op.responses if r.status.upper() == "2XX"), None)


def _expected_status(
    doc: Document, op: Operation, name: str, statuses: set[str], success: str | None
) -> str | None:
    if name in statuses:
        return name
    claims = [r for r in op.responses if name in response_example_names(r)]
    if len(claims) > 1:
        raise doc.fail(
            f"the example name {name!r} is used by the {claims[0].status} and the "
            f"{claims[1].status} responses of {op.label}",
            (*claims[1].path, "content"),
            hint="an example name pairs one request with one response: rename one of them",
        )
    return claims[0].status if claims else success


def _request_example_names(op: Operation) -> list[str]:
    names: list[str] = []
    holders = [param for param, _ in op.parameters]
    if op.request_body is not None:
        content = op.request_body[0].get("content") or {}
        if content:
            holders.append(content.get(pick_media_type(content)) or {})
    for holder in holders:
        examples = holder.get("examples")
        if isinstance(examples, dict):
            names += [str(n) for n in examples if str(n) not in names]
    return names


def response_example_names(resp: Response) -> list[str]:
    names: list[str] = []
    for media in (resp.data.get("content") or {}).values():
        examples = media.get("examples") if isinstance(media, dict) else None
        if isinstance(examples, dict):
            names += [str(n) for n in examples if str(n) not in names]
    return names


def _request(
    doc: Document, op: Operation, name: str | None
) -> tuple[dict[str, Any], int | None] | str:
    """The ``check`` arguments of the request named ``name``, and its example's line; or why not."""
    parts: dict[str, Any] = {part: {} for part in PARAMETER_PART.values()}
    line = None if name is not None else doc.line(op.key_path)
    for param, where in op.parameters:
        found = example_of(doc, param, where, name)
        if isinstance(found, _Missing) and isinstance(param.get("content"), dict):
            media = pick_media_type(param["content"]) if param["content"] else None
            if media is not None:
                holder = param["content"][media]
                found = example_of(doc, holder, (*where, "content", media), name)
        if isinstance(found, _Missing):
            if param.get("required") or param["in"] == "path":
                return f"no example for the required {param['in']} parameter {param['name']!r}"
            continue
        value, value_path, named = found
        parts[PARAMETER_PART[param["in"]]][param["name"]] = value
        if named and line is None:
            line = doc.line(value_path)
    if op.request_body is not None:
        body, where = op.request_body
        content = body.get("content") or {}
        if content:
            media = pick_media_type(content)
            found = example_of(doc, content[media] or {}, (*where, "content", media), name)
            if isinstance(found, _Missing):
                if body.get("required"):
                    return "no example for the required request body"
            else:
                if not (
                    is_json(media)
                    or media.startswith("text/")
                    or media.startswith("application/x-www-form-urlencoded")
                ):
                    return f"request bodies of type {media} are not generated (JSON, form or text)"
                value, value_path, named = found
                parts["body"], parts["media_type"] = value, media
                if named and line is None:
                    line = doc.line(value_path)
    empty = [k for k in PARAMETER_PART.values() if parts[k] == {}]
    parts = {k: v for k, v in parts.items() if k not in empty}  # a body of {} stays
    return parts, line if line is not None else doc.line(op.key_path)


def example_of(
    doc: Document, holder: dict[str, Any], where: KeyPath, name: str | None
) -> tuple[Any, KeyPath, bool] | _Missing:
    """The example named ``name`` of a parameter or media type, else its single example.

    Returns (value, where it is, whether it was the named one), or MISSING.
    """
    examples = holder.get("examples")
    if name is not None and isinstance(examples, dict) and name in examples:
        example, ex_path = doc.deref(examples[name], (*where, "examples", name))
        if not isinstance(example, dict) or "value" not in example:
            raise doc.fail(
                f"example {name!r} has no value",
                ex_path,
                hint="give it value: (externalValue is not supported)",
            )
        return example["value"], (*ex_path, "value"), True
    if "example" in holder:
        return holder["example"], (*where, "example"), False
    if isinstance(holder.get("schema"), dict):
        schema, schema_path = doc.deref(holder["schema"], (*where, "schema"))
        if isinstance(schema, dict):
            if "example" in schema:
                return schema["example"], (*schema_path, "example"), False
            listed = schema.get("examples")
            if isinstance(listed, list) and listed:
                return listed[0], (*schema_path, "examples", 0), False
    return MISSING


def _check_request(doc: Document, contract: Contract, case: Case) -> None:
    args = contract.request_args(case.op.method, case.op.path, **case.parts)
    problems = contract.request_problems(args)
    if problems:
        which = f"example {case.name!r}" if case.name else "the example request"
        raise SpecError(
            f"{which} of {case.op.label} expects a {case.status} response but is not a valid "
            f"request: {problems[0]}",
            file=doc.file,
            line=case.line,
            hint="fix the example, or name it after the error response it should get (e.g. '400')",
        )


def _check_response_examples(
    doc: Document, contract: Contract, op: Operation, cases: list[Case]
) -> None:
    """Every JSON example of every response of ``op`` must match its response's schema."""
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
    from openapi_core.validation.response.exceptions import HeaderValidationError
    from werkzeug.wrappers import Response as WerkzeugResponse

    parts = cases[0].parts if cases else _placeholder_parts(op)
    request = contract.openapi_request(contract.request_args(op.method, op.path, **parts))
    for resp in op.responses:
        status = _status_code(op, resp)
        for media, media_obj in (resp.data.get("content") or {}).items():
            if not is_json(media) or not isinstance(media_obj, dict):
                continue
            where_media: KeyPath = (*resp.path, "content", media)
            for value, where, label in _all_examples(doc, media_obj, where_media):
                response = WerkzeugResponse(json.dumps(value), status=status, content_type=media)
                errors = [
                    e
                    for e in contract.openapi.iter_response_errors(
                        request, WerkzeugOpenAPIResponse(response)
                    )
                    if not isinstance(e, HeaderValidationError)
                ]
                if errors:
                    raise doc.fail(
                        f"{label} of the {resp.status} response of {op.label} does not match "
                        f"its schema: {explain(errors[0])}",
                        where,
                        hint="fix the example or the schema: the generated tests trust both",
                    )


def _all_examples(
    doc: Document, media: dict[str, Any], where: KeyPath
) -> list[tuple[Any, KeyPath, str]]:
    found = []
    if "example" in media:
        found.append((media["example"], (*where, "example"), "the example"))
    examples = media.get("examples")
    if isinstance(examples, dict):
        for name, raw in examples.items():
            example, ex_path = doc.deref(raw, (*where, "examples", name))
            if isinstance(example, dict) and "value" in example:
                found.append((example["value"], (*ex_path, "value"), f"example {name!r}"))
    return found


def _status_code(op: Operation, resp: Response) -> int:
    """A status code that selects ``resp`` (for a range or default: one nothing else claims)."""
    if resp.status.isdigit():
        return int(resp.status)
    taken = {r.status for r in op.responses}
    first = int(resp.status[0]) * 100 if resp.status[0].isdigit() else 500
    for code in range(first, first + 100):
        if str(code) not in taken and f"{str(code)[0]}XX" not in taken - {resp.status}:
            return code
    return first


def _placeholder_parts(op: Operation) -> dict[str, Any]:
    return {
        "path_params": {p["name"]: "1" for p, _ in op.parameters if p["in"] == "path"},
    }


def _is_success(status: str) -> bool:
    return status[:1] in ("2", "3")
