"""The data the generated tests of a JSON Schema spec use, each instance checked with jsonschema.

- **Valid data**: the schema's ``examples`` (each must be valid). Without examples, a
  minimal instance derived from the schema (required properties only, the smallest values
  the bounds allow, the first ``enum`` value), if jsonschema finds it valid.
- **Broken data**, one instance per constraint: a valid instance (each example in turn,
  then the minimal one) with the value the constraint applies to replaced (or, for
  ``required``, removed; for ``additionalProperties: false``, a property added). A value
  missing on the way (an optional object or an empty list) is filled in with a minimal
  one. Candidate values are tried in a fixed order (a different JSON type; one past a
  bound; a string one character too short or too long; an enum value plus a suffix; ...).
  The first instance that jsonschema rejects *only* for that keyword at that place is
  taken; failing that, the first it rejects for that keyword with other errors at the
  same place only (``7`` for a string property that also has an ``enum``).
- **Documented invalid data**: the schema's ``x-invalid-examples`` (each must be invalid).
  Each one also proves every constraint it breaks; a constraint that neither a derived
  instance nor an invalid example breaks is reported untested, with the reason.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from darkfactory.spec._jsonschema import (
    INVALID_EXAMPLES_KEY,
    UNDERIVED,
    Constraint,
    Schema,
    Step,
    dotted,
)
from darkfactory.spec._jsonschema_minimal import (
    MAX_DERIVED_LENGTH,
    NO_VALUE,
    deref,
    minimal_instance,
    number,
)
from darkfactory.spec.model import Requirement
from darkfactory.yamlio import KeyPath

#: Values of every JSON type, tried to break ``type``, ``anyOf``, ``oneOf``, ``not``.
POOL: tuple[Any, ...] = ("text", 7, 1.5, True, None, [], {}, -1, 0, "")
EXTRA_PROPERTY = "unexpected_property"


@dataclass
class InvalidExample:
    value: Any
    line: int | None
    requirement_ids: list[str] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)


@dataclass
class ModelCases:
    valid: list[Any]
    valid_from_examples: bool
    valid_text: str
    valid_path: KeyPath
    valid_reason: str | None
    invalid: list[InvalidExample]
    valid_requirement: Requirement | None = None
    invalid_requirement: Requirement | None = None


def derive_cases(schema: Schema) -> ModelCases:
    data = schema.data
    examples = _checked_examples(schema)
    invalid = _checked_invalid_examples(schema)
    minimal = minimal_instance(schema, data)
    bases = list(examples)
    if minimal is not NO_VALUE and not schema.validator.is_valid(minimal):
        minimal = NO_VALUE
    if minimal is not NO_VALUE:
        bases.append(minimal)
    if examples:
        valid, text = (
            examples,
            f"validate accepts valid data: the schema's {len(examples)} example(s)",
        )
        reason = None
    elif minimal is not NO_VALUE:
        valid = [minimal]
        text = "validate accepts valid data (a minimal instance derived from the schema)"
        reason = None
    else:
        valid, text = [], "validate accepts the data the schema accepts"
        reason = "the schema has no examples and no valid instance could be derived: add examples"
    for c in schema.constraints:
        c.instance = NO_VALUE
        fallback = NO_VALUE
        for base in bases:
            clean, found = _broken(schema, c, base)
            if clean is not NO_VALUE:
                c.instance = clean
                break
            if fallback is NO_VALUE:
                fallback = found
        else:
            c.instance = fallback
    for ex in invalid:
        errors = list(schema.validator.iter_errors(ex.value))
        ex.constraints = [c for c in schema.constraints if any(_error_is_for(e, c) for e in errors)]
    for c in schema.constraints:
        if c.instance is NO_VALUE and not any(c is x for ex in invalid for x in ex.constraints):
            c.untested_reason = (
                f"no data breaking {c.keyword} at {dotted(c.steps) or 'the top'} could be "
                f"derived from the schema; list such data in {INVALID_EXAMPLES_KEY}"
                if bases
                else "the schema has no examples and no valid instance could be derived: "
                "add examples"
            )
    return ModelCases(
        valid=valid,
        valid_from_examples=bool(examples),
        valid_text=text,
        valid_path=("examples",) if examples else (),
        valid_reason=reason,
        invalid=invalid,
    )


def _checked_examples(schema: Schema) -> list[Any]:
    from jsonschema.exceptions import best_match

    examples = schema.data.get("examples")
    if examples is None:
        return []
    if not isinstance(examples, list):
        raise schema.fail("examples must be a list of valid instances", ("examples",))
    for i, example in enumerate(examples):
        error = best_match(schema.validator.iter_errors(example))
        if error is not None:
            raise schema.fail(
                f"example {i + 1} is not valid against the schema: {error.message}{_at(error)}",
                ("examples", i),
                hint="fix the example or the schema: the generated tests trust both",
            )
    return examples


def _checked_invalid_examples(schema: Schema) -> list[InvalidExample]:
    values = schema.data.get(INVALID_EXAMPLES_KEY)
    if values is None:
        return []
    if not isinstance(values, list):
        raise schema.fail(
            f"{INVALID_EXAMPLES_KEY} must be a list of instances the schema rejects",
            (INVALID_EXAMPLES_KEY,),
        )
    out = []
    for i, value in enumerate(values):
        if schema.validator.is_valid(value):
            raise schema.fail(
                f"invalid example {i + 1} is valid against the schema",
                (INVALID_EXAMPLES_KEY, i),
                hint="an entry of x-invalid-examples must break the schema; fix the entry or "
                "the schema",
            )
        out.append(InvalidExample(value, schema.locs.line_of((INVALID_EXAMPLES_KEY, i))))
    return out


def _at(error: Any) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    return f" (at {path})" if path else ""


# -- broken instances ------------------------------------------------------------------


def _broken(schema: Schema, c: Constraint, base: Any) -> tuple[Any, Any]:
    """Instances from ``base`` that break ``c``: (only ``c``, ``c`` and more at the same place).

    Either may be NO_VALUE (see the module docstring).
    """
    fallback = NO_VALUE
    for instance, where in _mutants(schema, c, base):
        errors = list(schema.validator.iter_errors(instance))
        mine = [e for e in errors if _error_is_for(e, c, where)]
        if not mine:
            continue
        if len(mine) == len(errors):
            return instance, fallback
        if fallback is NO_VALUE and all(
            tuple(e.absolute_path)[: len(where)] == where for e in errors
        ):
            fallback = instance
    return NO_VALUE, fallback


def _error_is_for(error: Any, c: Constraint, where: tuple[Any, ...] | None = None) -> bool:
    """Whether a jsonschema error is one ``c`` makes (at ``where``, or any matching place)."""
    if error.validator not in _keywords(c) and not _under_keyword(error, c.keyword):
        return False
    if c.keyword == "required" and (
        not isinstance(error.instance, dict) or c.value in error.instance
    ):
        return False
    path = tuple(error.absolute_path)
    return path == where if where is not None else _path_matches(path, c.steps)


def _under_keyword(error: Any, keyword: str) -> bool:
    """Whether the error comes from inside ``keyword`` (``propertyNames`` -> ``maxLength``)."""
    if keyword not in UNDERIVED:
        return False
    parts = list(error.relative_schema_path)
    containers = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
    return any(
        part == keyword and (i == 0 or parts[i - 1] not in containers)
        for i, part in enumerate(parts)
    )


def _keywords(c: Constraint) -> set[str]:
    """The validator names jsonschema reports for ``c`` (draft 4 bounds use two keywords)."""
    pairs = {"minimum": "exclusiveMinimum", "maximum": "exclusiveMaximum"}
    for bound, exclusive in pairs.items():
        if c.keyword == bound and c.node.get(exclusive) is True:
            return {bound, exclusive}
        if c.keyword == exclusive and isinstance(c.value, bool):
            return {bound, exclusive}
    return {c.keyword}


def _path_matches(path: tuple[Any, ...], steps: tuple[Step, ...]) -> bool:
    if len(path) != len(steps):
        return False
    for part, step in zip(path, steps, strict=True):
        if step[0] == "prop" and part != step[1]:
            return False
        if step[0] == "item" and not isinstance(part, int):
            return False
    return True


def _mutants(schema: Schema, c: Constraint, base: Any) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """(instance, data path of the changed value) candidates that may break ``c``."""
    located = _locate(schema, c, base)
    if located is None:
        return
    root, holder, key, where = located
    current = holder[key]
    if c.keyword == "required":
        if isinstance(current, dict) and c.value in current:
            del current[c.value]
            yield root[0], where
        return
    if c.keyword == "additionalProperties":
        if isinstance(current, dict):
            current[_unused_key(current)] = "x"
            yield root[0], where
        return
    for value in _candidates(c, current):
        holder[key] = value
        yield copy.deepcopy(root[0]), where
        holder[key] = current


def _locate(
    schema: Schema, c: Constraint, base: Any
) -> tuple[list[Any], Any, Any, tuple[Any, ...]] | None:
    """A copy of ``base`` with the value at ``c.steps`` present: (box, holder, key, data path)."""
    box = [copy.deepcopy(base)]
    holder: Any = box
    key: Any = 0
    where: list[Any] = []
    for i, step in enumerate(c.steps):
        value = holder[key]
        sub_schema = c.schemas[i + 1] if i + 1 < len(c.schemas) else {}
        if step[0] == "prop":
            if not isinstance(value, dict):
                return None
            next_key: Any = step[1]
        elif step[0] == "item":
            if not isinstance(value, list):
                return None
            next_key = 0
        else:
            if not isinstance(value, dict):
                return None
            known = set(_properties(schema, c.schemas[i]))
            next_key = next((k for k in value if k not in known), EXTRA_PROPERTY)
        if (isinstance(value, dict) and next_key not in value) or (
            isinstance(value, list) and not value
        ):
            filler = minimal_instance(schema, sub_schema)
            if filler is NO_VALUE:
                return None
            if isinstance(value, list):
                value.append(filler)
            else:
                value[next_key] = filler
        holder, key = value, next_key
        where.append(next_key)
    return box, holder, key, tuple(where)


def _properties(schema: Schema, node: Any) -> dict[str, Any]:
    node = deref(schema, node)
    props = dict(node.get("properties") or {}) if isinstance(node, dict) else {}
    for sub in node.get("allOf") or [] if isinstance(node, dict) else []:
        props.update(_properties(schema, sub))
    return props


def _unused_key(obj: dict[str, Any]) -> str:
    name, n = EXTRA_PROPERTY, 2
    while name in obj:
        name, n = f"{EXTRA_PROPERTY}_{n}", n + 1
    return name


def _candidates(c: Constraint, current: Any) -> list[Any]:
    v = c.value
    node = c.node
    integer = _allows_only_integers(node)
    maker: dict[str, Callable[[], list[Any]]] = {
        "type": lambda: list(POOL),
        "anyOf": lambda: [*POOL, {"": None}],
        "oneOf": lambda: [*POOL, {"": None}],
        "not": lambda: [*POOL, current] if current is not None else list(POOL),
        "enum": lambda: _not_in(list(v), current),
        "const": lambda: _not_in([v], current),
        "minimum": lambda: _below(v, integer, inclusive=node.get("exclusiveMinimum") is True),
        "exclusiveMinimum": lambda: _below(
            node.get("minimum") if isinstance(v, bool) else v, integer, inclusive=True
        ),
        "maximum": lambda: _above(v, integer, inclusive=node.get("exclusiveMaximum") is True),
        "exclusiveMaximum": lambda: _above(
            node.get("maximum") if isinstance(v, bool) else v, integer, inclusive=True
        ),
        "multipleOf": lambda: _not_multiple(v, integer),
        "minLength": lambda: _strings(v - 1, current) if isinstance(v, int) and v > 0 else [],
        "maxLength": lambda: _strings(v + 1, current) if isinstance(v, int) else [],
        "pattern": lambda: _non_matching(current),
        "minItems": lambda: _lists(v - 1, current) if isinstance(v, int) and v > 0 else [],
        "maxItems": lambda: _lists(v + 1, current) if isinstance(v, int) else [],
        "uniqueItems": lambda: _with_duplicate(current),
    }
    make = maker.get(c.keyword)
    found = make() if make is not None else []
    # One past a bound of 1e308 is infinity, which is not JSON (and crashes jsonschema).
    return [x for x in found if not (isinstance(x, float) and not math.isfinite(x))]


def _allows_only_integers(node: dict[str, Any]) -> bool:
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return "integer" in kinds and "number" not in kinds


def _below(bound: Any, integer: bool, *, inclusive: bool) -> list[Any]:
    if not isinstance(bound, int | float) or isinstance(bound, bool):
        return []
    if inclusive:
        return [
            number(bound, integer)
            if not integer or float(bound).is_integer()
            else math.floor(bound)
        ]
    return [number(math.ceil(bound) - 1, True), number(bound - 0.5, integer)]


def _above(bound: Any, integer: bool, *, inclusive: bool) -> list[Any]:
    if not isinstance(bound, int | float) or isinstance(bound, bool):
        return []
    if inclusive:
        return [
            number(bound, integer) if not integer or float(bound).is_integer() else math.ceil(bound)
        ]
    return [number(math.floor(bound) + 1, True), number(bound + 0.5, integer)]


def _not_multiple(k: Any, integer: bool) -> list[Any]:
    if not isinstance(k, int | float) or isinstance(k, bool) or k <= 0:
        return []
    out = [k + 1, 2 * k + 1, k * 1.5, k / 2, 1]
    return [number(x, False) for x in out if not integer or float(x).is_integer()]


def _not_in(values: list[Any], current: Any) -> list[Any]:
    out: list[Any] = []
    strings = [x for x in values if isinstance(x, str)]
    numbers = [x for x in values if isinstance(x, int | float) and not isinstance(x, bool)]
    if isinstance(current, str) or strings:
        seed = current if isinstance(current, str) else strings[0]
        out += [f"{seed}-other", "other", f"not {seed}", ""]
    if numbers:
        out += [max(numbers) + 1, min(numbers) - 1]
    out += [x for x in POOL if x not in values]
    return [x for x in out if x not in values]


def _strings(length: int, current: Any) -> list[str]:
    if length < 0 or length > MAX_DERIVED_LENGTH:
        return []
    out = []
    if isinstance(current, str) and current:
        out.append(
            current[:length]
            if len(current) >= length
            else current + current[-1] * (length - len(current))
        )
    out += [ch * length for ch in ("a", "x", "1", "A", "-")]
    return out


def _non_matching(current: Any) -> list[str]:
    out = ["", "!", " ", "0", "a", "A", "-", "not matching", "a" * 300]
    if isinstance(current, str):
        out = [f"{current}!", f"!{current}", f"{current} ", current[:-1], *out]
    return out


def _lists(length: int, current: Any) -> list[list[Any]]:
    if length < 0 or length > MAX_DERIVED_LENGTH or not isinstance(current, list) or not current:
        return []
    if len(current) >= length:
        return [current[:length]]
    grown = list(current)
    while len(grown) < length:
        grown.append(copy.deepcopy(current[len(grown) % len(current)]))
    return [grown]


def _with_duplicate(current: Any) -> list[list[Any]]:
    if not isinstance(current, list) or not current:
        return []
    return [[*current, copy.deepcopy(current[0])]]
