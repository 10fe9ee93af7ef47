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

import yaml

from darkfactory.errors import InputError, SpecError
from darkfactory.spec.limits import (
    MAX_DEPTH,
    check_yaml_shape,
    lone_surrogate,
    non_finite,
    too_deep,
)
from darkfactory.yamlio import KeyPath, Locations, parse_yaml

JSON_SUFFIXES = (".json",)


def parse_document(text: str, *, file: Path) -> tuple[Any, Locations]:
    """Parse a ``.json`` file as JSON, anything else as YAML; syntax errors are SpecErrors.

    Nesting deeper than ``limits.MAX_DEPTH`` is a SpecError too (the checks that follow
    recurse), and so are YAML aliases that expand past ``limits.MAX_VALUES``.
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
        _check_strings(data, file=file, locs=locs)
        return data, locs
    data, locs = load_yaml_text(text, file=file)
    return as_json(data), locs


def load_yaml_text(text: str, *, file: Path) -> tuple[Any, Locations]:
    """``yamlio.parse_yaml`` for a spec: its errors, and every value error, are SpecErrors.

    The text is first checked against ``limits`` (nesting, alias expansion, characters
    YAML refuses), so the recursive parts of PyYAML and of the checks after it are safe.
    """
    check_yaml_shape(text, file=file)
    try:
        data, locs = parse_yaml(text, file=file, error=SpecError)
    except ValueError as exc:  # a date such as 2024-13-01, an integer too long to convert
        node = _bad_scalar(text)
        where, line = "", None
        if node is not None:
            value = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            where = f" {value!r} (column {node.start_mark.column + 1})"
            line = node.start_mark.line + 1
        raise SpecError(
            f"invalid YAML value{where}: {exc}",
            file=file,
            line=line,
            hint="a value YAML reads as a date or a number must be a valid one; "
            "put it in quotes to make it text",
        ) from None
    if lone_surrogate(data) is not None:  # PyYAML reads "\\ud83d\\ude00" as two halves
        data = _join_surrogate_pairs(data)
        _check_strings(data, file=file, locs=locs)
    return data, locs


def _bad_scalar(text: str) -> yaml.ScalarNode | None:
    """The first scalar of YAML ``text`` that PyYAML cannot turn into a value, if any."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node)
            except ValueError:
                return node
        elif isinstance(node, yaml.SequenceNode):
            stack += reversed(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack += [n for pair in reversed(node.value) for n in reversed(pair)]
    return None


def _join_surrogate_pairs(value: Any) -> Any:
    """``value`` with every string's UTF-16 surrogate pairs joined into one character."""
    if isinstance(value, str):
        try:
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:  # a lone half: _check_strings names it
            return value
    if isinstance(value, dict):
        return {_join_surrogate_pairs(k): _join_surrogate_pairs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_surrogate_pairs(v) for v in value]
    return value


def _check_strings(data: Any, *, file: Path, locs: Locations) -> None:
    path = lone_surrogate(data)
    if path is not None:
        raise fail(
            "a lone surrogate: a \\ud800-\\udfff escape without its other half, which "
            "is not a character",
            file=file,
            locs=locs,
            path=path,
            hint="write the character itself, or escape the whole pair "
            "(\\ud83d\\ude00 for U+1F600)",
        )


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
        return parse_yaml(text.replace("\t", "  "), file=file)[1]
    except (InputError, ValueError):  # a JSON text PyYAML cannot read: errors name no line
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
