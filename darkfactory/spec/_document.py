"""JSON or YAML documents (OpenAPI, JSON Schema) as JSON data, with the line of every key.

``parse_document`` returns the data as JSON would have it (mapping keys are strings, YAML
dates become ISO strings) and a ``Locations`` map from key paths to 1-based lines, so an
error deep inside a schema still names its line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from darkfactory.errors import InputError, SpecError
from darkfactory.yamlio import KeyPath, Locations, parse_yaml

JSON_SUFFIXES = (".json",)


def parse_document(text: str, *, file: Path) -> tuple[Any, Locations]:
    """Parse a ``.json`` file as JSON, anything else as YAML; syntax errors are SpecErrors."""
    if file.suffix.lower() in JSON_SUFFIXES:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"invalid JSON (column {exc.colno}): {exc.msg}",
                file=file,
                line=exc.lineno,
                hint="fix the JSON syntax at that line (a missing comma or quote, or a trailing comma)",
            ) from None
        return data, json_locations(text, file)
    data, locs = parse_yaml(text, file=file, error=SpecError)
    return as_json(data), locs


def json_locations(text: str, file: Path) -> Locations:
    """Where each key of a JSON text is (JSON is YAML; JSON forbids raw tabs in strings)."""
    try:
        return parse_yaml(text.replace("\t", "  "), file=file)[1]
    except InputError:  # a JSON text PyYAML cannot read: errors will name no line
        return Locations()


def as_json(value: Any) -> Any:
    """YAML data as JSON data: string keys, ISO dates."""
    if isinstance(value, dict):
        return {_key(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def key_text(path: Sequence[str | int]) -> str | None:
    """A key path as ``paths./todos.get.responses.200`` (None for the top level)."""
    return ".".join(str(p) for p in path) or None


def fail(
    message: str, *, file: Path, locs: Locations, path: KeyPath = (), hint: str | None = None
) -> SpecError:
    """A SpecError at the line of ``path`` (or its nearest ancestor with one)."""
    return SpecError(message, file=file, line=locs.line_of(path), key=key_text(path), hint=hint)


def resolve_pointer(document: Any, ref: str) -> tuple[Any, KeyPath] | None:
    """The value a local ``$ref`` (``#/components/schemas/Todo``) points at, and its key path."""
    if not ref.startswith("#"):
        return None
    node = document
    path: list[str | int] = []
    pointer = ref[1:]
    if pointer and not pointer.startswith("/"):
        return None
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            path.append(int(part))
        else:
            return None
    return node, tuple(path)


def iter_refs(value: Any, path: KeyPath = ()) -> list[tuple[str, KeyPath]]:
    """Every ``$ref`` string in ``value`` with the key path of the mapping that holds it."""
    found: list[tuple[str, KeyPath]] = []
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            found.append((ref, path))
        for k, v in value.items():
            found += iter_refs(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += iter_refs(v, (*path, i))
    return found


def check_local_refs(
    document: Any, *, file: Path, locs: Locations, what: str, anchors: bool = False
) -> None:
    """Every ``$ref`` must point inside the document, at something that exists.

    ``anchors``: a ``#name`` reference (a JSON Schema anchor) is left to the validator.
    """
    for ref, path in iter_refs(document):
        if anchors and ref.startswith("#") and not ref.startswith("#/") and ref != "#":
            continue
        if not ref.startswith("#"):
            raise fail(
                f"$ref {ref!r} points outside the {what}; only references inside it "
                "(starting with '#/') are supported",
                file=file,
                locs=locs,
                path=(*path, "$ref"),
                hint="copy the referenced definition into this file (under components/ or $defs)",
            )
        if resolve_pointer(document, ref) is None:
            raise fail(
                f"$ref {ref!r} points at nothing in the {what}",
                file=file,
                locs=locs,
                path=(*path, "$ref"),
                hint="check the spelling of the path after '#/'",
            )
