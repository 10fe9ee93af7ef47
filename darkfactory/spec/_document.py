"""JSON or YAML documents (OpenAPI, JSON Schema) as JSON data, with the line of every key.

``parse_document`` returns the data as JSON would have it (mapping keys are strings, YAML
dates become ISO strings) and a ``Locations`` map from key paths to 1-based lines, so an
error deep inside a schema still names its line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from darkfactory.errors import InputError, SpecError
from darkfactory.spec.limits import non_finite, too_deep
from darkfactory.yamlio import (
    MAX_DEPTH,
    KeyPath,
    Locations,
    check_characters,
    parse_yaml,
    yaml_locations,
)

JSON_SUFFIXES = (".json",)


def parse_document(text: str, *, file: Path) -> tuple[Any, Locations]:
    """Parse a ``.json`` file as JSON, anything else as YAML; syntax errors are SpecErrors.

    Nesting deeper than ``yamlio.MAX_DEPTH`` is a SpecError too (the checks that follow
    recurse), and so are YAML aliases that expand past ``yamlio.MAX_VALUES``.
    """
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
        except RecursionError:
            raise _json_too_deep(text, file) from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise SpecError(
                f"invalid JSON: {exc}", file=file, hint="write the value as a string"
            ) from None
        if too_deep(data) is not None:
            raise _json_too_deep(text, file)
        locs = json_locations(text, file)
        check_characters(data, file=file, locs=locs, error=SpecError)
        return data, locs
    data, locs = load_yaml_text(text, file=file)
    return as_json(data), locs


def load_yaml_text(text: str, *, file: Path) -> tuple[Any, Locations]:
    """``yamlio.parse_yaml`` for a spec: every problem it finds is a SpecError.

    That is where the YAML limits are (nesting, alias expansion, characters YAML refuses,
    values PyYAML cannot build, lone surrogates): config files and playbooks share them.
    """
    return parse_yaml(text, file=file, error=SpecError)


def _json_too_deep(text: str, file: Path) -> SpecError:
    """A SpecError at the line and column where the JSON nests more than MAX_DEPTH deep."""
    depth, line, column, in_string, escaped = 0, 1, 0, False, False
    for ch in text:
        column += 1
        if ch == "\n":
            line, column = line + 1, 0
        elif in_string:
            in_string = ch != '"' or escaped
            escaped = ch == "\\" and not escaped
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                break
        elif ch in "]}":
            depth -= 1
    return SpecError(
        f"nested too deeply (column {column}): more than {MAX_DEPTH} levels of objects and arrays",
        file=file,
        line=line,
        hint="a spec this deep is not written by hand; flatten it or use $ref",
    )


def json_locations(text: str, file: Path) -> Locations:
    """Where each key of a JSON text is (JSON is YAML; JSON forbids raw tabs in strings)."""
    try:
        return yaml_locations(text.replace("\t", "  "), file=file)
    except InputError:  # a JSON text PyYAML cannot read: errors name no line
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


def anchor_names(value: Any) -> set[str]:
    """The JSON Schema anchor names defined anywhere in ``value``."""
    names: set[str] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("$anchor", "$dynamicAnchor"):
                if isinstance(node.get(key), str):
                    names.add(node[key])
            for key in ("$id", "id"):
                if isinstance(node.get(key), str) and node[key].startswith("#"):
                    names.add(node[key][1:])
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return names


def check_local_refs(
    document: Any, *, file: Path, locs: Locations, what: str, anchors: bool = False
) -> None:
    """Every ``$ref`` must point inside the document, at something that exists.

    ``anchors``: a ``#name`` reference (a JSON Schema anchor) must name an anchor the
    document defines (``$anchor``, ``$dynamicAnchor``, or an ``$id``/``id`` of ``#name``).
    """
    defined = anchor_names(document) if anchors else set()
    for ref, path in iter_refs(document):
        if anchors and ref.startswith("#") and not ref.startswith("#/") and ref != "#":
            if ref[1:] not in defined:
                raise fail(
                    f"$ref {ref!r} names an anchor the {what} does not define",
                    file=file,
                    locs=locs,
                    path=(*path, "$ref"),
                    hint=f'define it with "$anchor": "{ref[1:]}" in the schema it points at, '
                    "or use a path such as '#/$defs/name'",
                )
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


#: Keywords whose schemas apply to the same value as the schema holding them (a ``$ref``
#: cycle through only these never reaches a smaller part of the data, so never ends).
IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
IN_PLACE_SCHEMAS = ("not", "if", "then", "else")


def check_ref_cycles(document: Any, *, file: Path, locs: Locations, what: str) -> None:
    """A ``$ref`` that leads back to itself without going into the data is a SpecError.

    ``{"$ref": "#"}`` at the top of a schema, or ``A: {allOf: [{$ref: B}]}`` with
    ``B: {$ref: A}``: validating any value against it would recurse without end. A
    reference reached through ``properties`` or ``items`` is fine (the data gets smaller).
    Run after ``check_local_refs``.
    """
    done: set[KeyPath] = set()
    for _, start in iter_refs(document):
        if start in done:
            continue
        # Depth-first over in-place edges, without recursion; the path is the open chain.
        open_paths: list[KeyPath] = [start]
        on_chain: set[KeyPath] = {start}
        todo: list[list[tuple[KeyPath, bool]]] = [_in_place(document, start)]
        while todo:
            if not todo[-1]:
                todo.pop()
                finished = open_paths.pop()
                on_chain.discard(finished)
                done.add(finished)
                continue
            target, via_ref = todo[-1].pop()
            if target in on_chain:
                holder = open_paths[-1]
                ref = _node_at(document, holder).get("$ref") if via_ref else None
                raise fail(
                    f"$ref {ref!r} leads back to where it is without going into the data, "
                    f"so checking a value against the {what} would never end"
                    if ref is not None
                    else f"the {what} refers to itself without going into the data, "
                    "so checking a value against it would never end",
                    file=file,
                    locs=locs,
                    path=(*holder, "$ref") if via_ref else holder,
                    hint="a schema may refer to itself only inside properties, items or "
                    "additionalProperties (e.g. a tree's children)",
                )
            if target in done:
                continue
            open_paths.append(target)
            on_chain.add(target)
            todo.append(_in_place(document, target))


def _node_at(document: Any, path: KeyPath) -> Any:
    node = document
    for part in path:
        node = node[part]
    return node


def _in_place(document: Any, path: KeyPath) -> list[tuple[KeyPath, bool]]:
    """The schemas applied to the same value as the one at ``path``: (key path, via $ref)."""
    node = _node_at(document, path)
    if not isinstance(node, dict):
        return []
    out: list[tuple[KeyPath, bool]] = []
    ref = node.get("$ref")
    if isinstance(ref, str):
        found = resolve_pointer(document, ref)
        if found is not None:
            out.append((found[1], True))
    for key in IN_PLACE_LISTS:
        if isinstance(node.get(key), list):
            out += [((*path, key, i), False) for i in range(len(node[key]))]
    for key in IN_PLACE_SCHEMAS:
        if isinstance(node.get(key), dict):
            out.append(((*path, key), False))
    if isinstance(node.get("dependentSchemas"), dict):
        out += [((*path, "dependentSchemas", name), False) for name in node["dependentSchemas"]]
    return out


def check_numbers(document: Any, *, file: Path, locs: Locations, what: str) -> None:
    """NaN and infinite numbers are SpecErrors: JSON has neither."""
    path = non_finite(document)
    if path is not None:
        raise fail(
            f"NaN and infinite numbers are not JSON numbers, so the {what} cannot hold one",
            file=file,
            locs=locs,
            path=path,
            hint="write a finite number (or leave out the bound)",
        )


@contextmanager
def checker_limits(file: Path) -> Iterator[None]:
    """Numbers too large for the checking libraries (jsonschema, openapi-core) are SpecErrors.

    ``multipleOf: 0.1`` against a 400-digit integer makes jsonschema convert it to a float,
    which overflows.
    """
    try:
        yield
    except OverflowError as exc:
        raise SpecError(
            f"a number too large to check: {exc}",
            file=file,
            hint="keep numbers in examples and bounds within what a 64-bit float holds "
            "(about 1.8e308)",
        ) from None
