"""Minimal instances of a JSON Schema: the smallest data a schema seems to accept.

Used as the valid data of a schema without ``examples``, and to fill in a value a broken
instance needs on the way (an optional object, an empty list). Nothing here is trusted: the
caller checks every instance with jsonschema.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from darkfactory.spec._document import resolve_pointer
from darkfactory.spec._jsonschema import Schema

MAX_DEPTH = 12
#: The longest string or list derived (a ``minLength`` of a million gives no instance:
#: the generated tests would be megabytes, and deriving them would take as long).
MAX_DERIVED_LENGTH = 10_000


class _NoValue:
    """No value (``None`` is JSON null)."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()


def number(x: float, integer: bool) -> Any:
    if integer or (isinstance(x, float) and x.is_integer() and abs(x) < 2**53):
        return int(x)
    return x


def minimal_instance(schema: Schema, node: Any, depth: int = 0) -> Any:
    """The smallest instance ``node`` seems to accept (not checked here), or NO_VALUE."""
    if depth > MAX_DEPTH:
        return NO_VALUE
    if node is True or node == {}:
        return {} if depth == 0 else "a"
    node = deref(schema, node)
    if not isinstance(node, dict):
        return NO_VALUE
    merged = _merged(schema, node)
    if "const" in merged:
        return merged["const"]
    if isinstance(merged.get("enum"), list) and merged["enum"]:
        return merged["enum"][0]
    if isinstance(merged.get("examples"), list) and merged["examples"] and depth:
        return merged["examples"][0]
    if "default" in merged and depth:
        return merged["default"]
    for key in ("anyOf", "oneOf"):
        if isinstance(merged.get(key), list) and merged[key]:
            return minimal_instance(schema, merged[key][0], depth + 1)
    kinds = merged.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    kind = next((k for k in kinds if k != "null"), kinds[0] if kinds else None)
    if kind is None:
        kind = (
            "object"
            if "properties" in merged or "required" in merged
            else ("array" if "items" in merged else "string")
        )
    if kind == "object":
        props = merged.get("properties") or {}
        out = {}
        for name in merged.get("required") or []:
            value = minimal_instance(schema, props.get(name, True), depth + 1)
            if value is NO_VALUE:
                return NO_VALUE
            out[name] = value
        return out
    if kind == "array":
        count = merged.get("minItems") or 0
        if not isinstance(count, int) or count > MAX_DERIVED_LENGTH:
            return NO_VALUE
        if count <= 0:
            return []
        item = minimal_instance(schema, merged.get("items", True), depth + 1)
        return NO_VALUE if item is NO_VALUE else [copy.deepcopy(item) for _ in range(count)]
    if kind == "string":
        return _minimal_string(merged)
    if kind in ("integer", "number"):
        return _smallest_number(merged, kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return NO_VALUE


_FORMAT_SAMPLES = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}


#: Strings tried, in order, for a string property with a pattern.
_STRING_SAMPLES = (
    "a",
    "A",
    "0",
    "aa",
    "AA",
    "00",
    "ab",
    "AB",
    "a1",
    "A1",
    "abc",
    "ABC",
    "a_b",
    "a-b",
)


def _minimal_string(node: dict[str, Any]) -> Any:
    raw_low, raw_high = node.get("minLength"), node.get("maxLength")
    low: int = raw_low if isinstance(raw_low, int) else 0
    high: int | None = raw_high if isinstance(raw_high, int) else None
    if low > MAX_DERIVED_LENGTH:
        return NO_VALUE
    sample = _FORMAT_SAMPLES.get(str(node.get("format")))
    candidates = [sample] if sample else []
    candidates += [s * max(1, -(-max(low, 1) // len(s))) for s in _STRING_SAMPLES]
    pattern = node.get("pattern")
    for candidate in candidates:
        if len(candidate) < low or (high is not None and len(candidate) > high):
            continue
        if isinstance(pattern, str):
            try:
                if re.search(pattern, candidate) is None:
                    continue
            except re.error:
                return NO_VALUE
        return candidate
    return NO_VALUE


def _smallest_number(node: dict[str, Any], integer: bool) -> Any:
    low: float | None = None
    for key in ("minimum", "exclusiveMinimum"):
        bound = node.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            exclusive = key == "exclusiveMinimum" or node.get("exclusiveMinimum") is True
            candidate = bound + (1 if integer else 0.5) if exclusive else bound
            low = candidate if low is None else max(low, candidate)
    value: float = 0 if low is None else low
    multiple = node.get("multipleOf")
    if isinstance(multiple, int | float) and not isinstance(multiple, bool) and multiple > 0:
        steps = value / multiple
        if not math.isfinite(steps):  # e.g. minimum 1e6, multipleOf 1e-320
            return NO_VALUE
        value = math.ceil(steps) * multiple
    if not math.isfinite(value):
        return NO_VALUE
    return number(math.ceil(value) if integer else value, integer)


def _merged(schema: Schema, node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` target and ``allOf`` parts folded in (later keys win)."""
    merged: dict[str, Any] = {}
    for sub in node.get("allOf") or []:
        sub = deref(schema, sub)
        if isinstance(sub, dict):
            part = _merged(schema, sub)
            props = {**(merged.get("properties") or {}), **(part.get("properties") or {})}
            required = [*(merged.get("required") or []), *(part.get("required") or [])]
            merged.update(part)
            merged["properties"], merged["required"] = props, list(dict.fromkeys(required))
    own = {k: v for k, v in node.items() if k not in ("allOf", "$ref")}
    if "properties" in own and "properties" in merged:
        own["properties"] = {**merged["properties"], **own["properties"]}
    if "required" in own and "required" in merged:
        own["required"] = list(dict.fromkeys([*merged["required"], *own["required"]]))
    merged.update(own)
    return merged


def deref(schema: Schema, node: Any, limit: int = 32) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and limit:
        found = resolve_pointer(schema.data, node["$ref"])
        if found is None:
            return node
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**found[0], **siblings} if isinstance(found[0], dict) and siblings else found[0]
        limit -= 1
    return node
