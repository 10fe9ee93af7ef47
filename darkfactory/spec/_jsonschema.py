"""A ``jsonschema`` spec: a JSON Schema (JSON or YAML) for a data model to implement.

**Detected** in a ``.json``/``.yaml``/``.yml`` file by a top-level ``$schema`` key, or by
top-level ``type`` and ``properties`` keys, or by a name ending in ``.schema.json`` (or
``.schema.yaml``); ``--format jsonschema`` forces it. The schema is checked against its
dialect's meta-schema (``$schema``; 2020-12 without one) with the ``jsonschema`` library;
an invalid schema, an unknown ``$schema`` or a ``$ref`` out of the file is a SpecError
naming the line and key.

**What the agents build** (the convention, repeated in the Spec's summary): a module
``model`` (``model.py`` in the project root) with a function ``validate(data) -> None``.
``data`` is what ``json.loads`` returns; ``validate`` returns None for data the schema
accepts and raises ``ValueError`` (or a subclass), saying what is wrong, for data it
rejects. ``format`` is an annotation, as JSON Schema 2020-12 says, not a check.

**Requirements**, each with the line of its keyword:

1. "validate accepts valid data": the schema's ``examples`` (each must be valid, else a
   SpecError), or without any, a minimal instance derived from the schema;
2. one per constraint, walking the schema from the top (``$ref`` and ``allOf`` followed,
   then ``properties`` in order, array ``items``, ``additionalProperties``): ``type``,
   each ``required`` property, ``enum``, ``const``, the numeric, string and array bounds,
   ``pattern``, ``uniqueItems``, ``additionalProperties: false``, ``anyOf``, ``oneOf``,
   ``not``; any other keyword gets a requirement that only ``x-invalid-examples`` tests;
3. "validate rejects the documented invalid data": the schema's ``x-invalid-examples``
   list (each must be invalid, else a SpecError).

**Tests** (``test_model.py``): the examples must be accepted; for each constraint, a valid
instance with one value changed to break exactly that constraint must be rejected (the
mechanics are in ``darkfactory.spec._jsonschema_cases``); the invalid examples must be
rejected. Every instance a test uses is checked with ``jsonschema`` when the spec is read,
so a generated test can never contradict the schema. A constraint no instance can be
derived for is reported untested, with the reason, never as passed.
"""

from __future__ import annotations

import json
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
from darkfactory.spec.model import Requirement
from darkfactory.yamlio import KeyPath, Locations

MODEL_FILE = "model.py"
INVALID_EXAMPLES_KEY = "x-invalid-examples"
#: Keywords a requirement and a derived test are made for, in the order they are listed.
DERIVED = (
    "type",
    "enum",
    "const",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "anyOf",
    "oneOf",
    "not",
)
#: Keywords that constrain data but get no derived test (only x-invalid-examples tests them).
UNDERIVED = (
    "minProperties",
    "maxProperties",
    "propertyNames",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "if",
    "contains",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
)
#: Steps from a value to a value inside it: ("prop", name), ("item",), ("extra",).
Step = tuple[str, ...]


@dataclass
class Constraint:
    """One requirement the schema makes of the data, where it applies and how to break it."""

    keyword: str
    value: Any
    node: dict[str, Any]  # the schema object the keyword is in
    steps: tuple[Step, ...]  # where in the data (from the top)
    schemas: tuple[dict[str, Any], ...]  # the schema of the top and of each step
    schema_path: KeyPath  # where the keyword is in the schema file
    text: str
    requirement: Requirement | None = None
    instance: Any = None  # the derived invalid instance
    untested_reason: str | None = None


@dataclass
class Schema:
    """A checked schema, its validator, and where its keys are."""

    data: dict[str, Any]
    locs: Locations
    file: Path
    validator: Any  # a jsonschema validator instance for ``data``
    constraints: list[Constraint] = field(default_factory=list)

    def fail(self, message: str, path: KeyPath, hint: str | None = None) -> SpecError:
        return fail(message, file=self.file, locs=self.locs, path=path, hint=hint)


def check_schema(data: Any, locs: Locations, *, file: Path) -> Schema:
    """The schema and its validator, if it is a valid JSON Schema; else a SpecError."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import Draft202012Validator, validator_for

    if not isinstance(data, dict):
        raise SpecError(
            "a JSON Schema spec is a mapping (a schema object) at the top level",
            file=file,
            line=1,
            hint='start with {"$schema": "https://json-schema.org/draft/2020-12/schema", '
            '"type": "object", ...}',
        )
    check_numbers(data, file=file, locs=locs, what="schema")
    unknown = object()
    if "$schema" in data and not isinstance(data["$schema"], str):
        raise fail(
            f"$schema must be the URI of a JSON Schema dialect, got {data['$schema']!r}",
            file=file,
            locs=locs,
            path=("$schema",),
            hint="e.g. https://json-schema.org/draft/2020-12/schema",
        )
    cls = validator_for(data, default=unknown) if "$schema" in data else Draft202012Validator
    if cls is unknown:
        raise fail(
            f"unknown JSON Schema dialect {data.get('$schema')!r}",
            file=file,
            locs=locs,
            path=("$schema",),
            hint="use a dialect the jsonschema library knows, e.g. "
            "https://json-schema.org/draft/2020-12/schema or http://json-schema.org/draft-07/schema#",
        )
    try:
        cls.check_schema(data)
    except SchemaError as exc:
        path: KeyPath = tuple(exc.absolute_path)
        raise fail(
            f"invalid JSON Schema: {exc.message}",
            file=file,
            locs=locs,
            path=path,
            hint="the schema must be valid against its dialect's meta-schema ($schema)",
        ) from None
    check_local_refs(data, file=file, locs=locs, what="schema", anchors=True)
    check_ref_cycles(data, file=file, locs=locs, what="schema")
    return Schema(data=data, locs=locs, file=file, validator=cls(data))


def walk(
    schema: Schema,
    node: Any,
    path: KeyPath,
    steps: tuple[Step, ...],
    schemas: tuple[dict[str, Any], ...],
    refs: tuple[str, ...] = (),
) -> list[Constraint]:
    """The constraints of ``node`` (at ``path`` in the file) for the data at ``steps``."""
    if not isinstance(node, dict):
        return []
    out: list[Constraint] = []

    def add(keyword: str, text: str) -> None:
        out.append(Constraint(keyword, node[keyword], node, steps, schemas, (*path, keyword), text))

    label = _label(steps)
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in refs:
        found = resolve_pointer(schema.data, ref)
        if found is not None:
            out += walk(schema, found[0], found[1], steps, schemas, (*refs, ref))
    for i, sub in enumerate(node.get("allOf") or []):
        out += walk(schema, sub, (*path, "allOf", i), steps, schemas, refs)
    for keyword in DERIVED:
        if keyword in node and not (keyword == "uniqueItems" and node[keyword] is not True):
            add(keyword, _text(keyword, node, label))
    raw_properties = node.get("properties")
    properties: dict[str, Any] = raw_properties if isinstance(raw_properties, dict) else {}
    required = [r for r in node.get("required") or [] if isinstance(r, str)]
    for name, sub in properties.items():
        child = (*steps, ("prop", name))
        if name in required:
            out.append(
                Constraint(
                    "required",
                    name,
                    node,
                    steps,
                    schemas,
                    (*path, "required", required.index(name)),
                    _required_text(steps, name),
                )
            )
        sub_schema = sub if isinstance(sub, dict) else {}
        out += walk(schema, sub, (*path, "properties", name), child, (*schemas, sub_schema), refs)
    for i, name in enumerate(required):
        if name not in properties:
            out.append(
                Constraint(
                    "required",
                    name,
                    node,
                    steps,
                    schemas,
                    (*path, "required", i),
                    _required_text(steps, name),
                )
            )
    items = node.get("items")
    if isinstance(items, dict):
        out += walk(schema, items, (*path, "items"), (*steps, ("item",)), (*schemas, items), refs)
    extra = node.get("additionalProperties")
    if extra is False:
        names = ", ".join(f"`{n}`" for n in properties) or "none"
        add("additionalProperties", f"{label} has no properties other than {names}")
    elif isinstance(extra, dict):
        out += walk(
            schema,
            extra,
            (*path, "additionalProperties"),
            (*steps, ("extra",)),
            (*schemas, extra),
            refs,
        )
    for keyword in UNDERIVED:
        if keyword in node:
            add(keyword, f"{label} satisfies {keyword}: {_short_json(node[keyword])}")
    return out


def _text(keyword: str, node: dict[str, Any], label: str) -> str:
    value = node[keyword]
    if keyword == "type":
        kinds = value if isinstance(value, list) else [value]
        text = f"{label} is " + " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
        if isinstance(node.get("format"), str):
            text += f" ({node['format']} format)"
        return text
    if keyword == "enum":
        return f"{label} is one of " + ", ".join(json.dumps(v) for v in value)
    if keyword == "const":
        return f"{label} is always {json.dumps(value)}"
    if keyword in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
        bound = node.get("minimum" if keyword == "exclusiveMinimum" else "maximum")
        return f"{label} is not equal to its bound {bound} ({keyword})"
    if keyword == "minimum" and node.get("exclusiveMinimum") is True:
        return f"{label} is greater than {value}"
    if keyword == "maximum" and node.get("exclusiveMaximum") is True:
        return f"{label} is less than {value}"
    plural = "" if value == 1 else "s"
    if keyword in ("anyOf", "oneOf"):
        count = len(value) if isinstance(value, list) else 0
        which = "at least one" if keyword == "anyOf" else "exactly one"
        return f"{label} matches {which} of the {count} alternatives of {keyword}"
    words = {
        "minimum": f"is at least {value}",
        "exclusiveMinimum": f"is greater than {value}",
        "maximum": f"is at most {value}",
        "exclusiveMaximum": f"is less than {value}",
        "multipleOf": f"is a multiple of {value}",
        "minLength": f"has at least {value} character{plural}",
        "maxLength": f"has at most {value} character{plural}",
        "pattern": f"matches the regular expression {value}",
        "minItems": f"has at least {value} item{plural}",
        "maxItems": f"has at most {value} item{plural}",
        "uniqueItems": "has no duplicate items",
        "not": "does not match the schema under not",
    }
    return f"{label} {words[keyword]}"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
    "object": "an object",
    "array": "an array",
}


def _label(steps: tuple[Step, ...]) -> str:
    if not steps:
        return "The data"
    if steps[-1] == ("item",):
        return f"Every item of {_label(steps[:-1]) if len(steps) > 1 else 'the data'}"
    if steps[-1] == ("extra",):
        inner = _label(steps[:-1]) if len(steps) > 1 else "the data"
        return f"Every other property of {inner}"
    return f"`{dotted(steps)}`"


def dotted(steps: tuple[Step, ...]) -> str:
    """``address.city``, ``tags[]``, ``meta.*`` for the steps to a value."""
    text = ""
    for step in steps:
        if step[0] == "prop":
            text += ("." if text else "") + step[1]
        elif step[0] == "item":
            text += "[]"
        else:
            text += ".*"
    return text


def _required_text(steps: tuple[Step, ...], name: str) -> str:
    if not steps:
        return f"`{name}` is required"
    return f"`{dotted((*steps, ('prop', name)))}` is required in `{dotted(steps)}`"


def _short_reason(reason: str) -> str:
    if "no examples" in reason:
        return "the schema has no examples"
    return f"no breaking data derived; add some to {INVALID_EXAMPLES_KEY}"


def _short_json(value: Any, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary(data: dict[str, Any], title: str) -> str:
    about = str(data.get("description") or "").strip()
    convention = (
        f"Implement the data model {title!r} that the JSON Schema acceptance/schema.json "
        f"describes: a module `model` ({MODEL_FILE} in the project root) with a function "
        "`validate(data) -> None`, where data is what json.loads returns. validate returns "
        "None for data the schema accepts and raises ValueError (or a subclass), with a "
        "message that says what is wrong, for data the schema rejects. The acceptance tests "
        "(acceptance/test_model.py) check the schema's examples are accepted and data that "
        "breaks each constraint is rejected. `format` is an annotation, not a check."
    )
    return f"{about}\n\n{convention}" if about else convention


def _title_from_name(file: Path) -> str:
    stem = re.sub(r"\.schema$", "", file.stem, flags=re.IGNORECASE)
    words = " ".join(re.split(r"[\s_.\-]+", stem)).strip()
    return words[:1].upper() + words[1:] if words else "Data model"
