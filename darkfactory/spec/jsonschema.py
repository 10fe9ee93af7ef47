"""A JSON Schema spec: the schema checked, its constraints turned into requirements and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from darkfactory.errors import SpecError
from darkfactory.spec._document import checker_limits
from darkfactory.spec._jsonschema import (
    INVALID_EXAMPLES_KEY,
    MODEL_FILE,
    _short_reason,
    _summary,
    _title_from_name,
    check_schema,
    walk,
)
from darkfactory.spec.model import Requirement, SourceRef, Spec
from darkfactory.yamlio import KeyPath, Locations


def parse_json_schema(data: Any, locs: Locations, *, file: Path) -> Spec:
    """A ``jsonschema`` Spec from a parsed JSON Schema (see the module docstring)."""
    from referencing.exceptions import Unresolvable

    from darkfactory.spec._jsonschema_cases import derive_cases
    from darkfactory.spec._jsonschema_tests import render_model_files

    schema = check_schema(data, locs, file=file)
    schema.constraints = list(walk(schema, data, (), (), (data,)))
    try:
        with checker_limits(file):
            cases = derive_cases(schema)
    except Unresolvable as exc:  # e.g. a $ref taken relative to a nested $id
        raise SpecError(
            f"invalid JSON Schema: jsonschema cannot resolve a $ref ({exc})",
            file=file,
            hint="keep every $ref a path inside this file ('#/$defs/name') and leave out "
            "nested $id keywords, which change what a $ref is relative to",
        ) from None
    requirements: list[Requirement] = []

    def add(text: str, path: KeyPath, reason: str | None = None) -> Requirement:
        req = Requirement(
            id=f"R{len(requirements) + 1}",
            text=text + (f" [untested: {_short_reason(reason)}]" if reason else ""),
            source=SourceRef(file=str(file), line=locs.line_of(path)),
            untested_reason=reason,
        )
        requirements.append(req)
        return req

    cases.valid_requirement = add(cases.valid_text, cases.valid_path, cases.valid_reason)
    for c in schema.constraints:
        c.requirement = add(c.text, c.schema_path, c.untested_reason)
    if cases.invalid:
        cases.invalid_requirement = add(
            f"validate rejects the schema's {len(cases.invalid)} documented invalid "
            f"example(s) ({INVALID_EXAMPLES_KEY})",
            (INVALID_EXAMPLES_KEY,),
        )
    title = str(data.get("title") or _title_from_name(file))
    return Spec(
        format="jsonschema",
        title=title,
        summary=_summary(data, title),
        requirements=requirements,
        acceptance_tests=render_model_files(schema, cases),
        contracts=[{"kind": "jsonschema", "title": title, "schema": data}],
        source=str(file),
        files_to_create=[MODEL_FILE],
    )
