"""An OpenAPI spec: the document checked, every operation turned into requirements and contract tests."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from darkfactory.spec._document import checker_limits
from darkfactory.spec._openapi import (
    SERVICE_FILE,
    _contract,
    _requirement,
    _summary,
    _untested,
    check_document,
    iter_operations,
    operation_text,
    response_text,
)
from darkfactory.spec.model import Requirement, Spec
from darkfactory.yamlio import Locations


def parse_openapi(data: Any, locs: Locations, *, file: Path) -> Spec:
    """A ``contract`` Spec from a parsed OpenAPI document (see the module docstring)."""
    from darkfactory.spec._openapi_cases import build_cases
    from darkfactory.spec._openapi_tests import render_contract_files

    doc = check_document(data, locs, file=file)
    operations = list(iter_operations(doc))
    if not operations:
        raise doc.fail(
            "the OpenAPI document has no operations",
            ("paths",),
            hint="describe at least one operation (e.g. paths: /items: get: ...)",
        )
    requirements: list[Requirement] = []
    for op in operations:
        op.requirement = _requirement(doc, len(requirements) + 1, operation_text(op), op.key_path)
        requirements.append(op.requirement)
        for resp in op.responses:
            text = response_text(op, resp, doc)
            resp.requirement = _requirement(doc, len(requirements) + 1, text, resp.path)
            requirements.append(resp.requirement)
    with checker_limits(file), warnings.catch_warnings():
        # openapi-core warns of security schemes it cannot check (oauth2); the example
        # requests are checked with security aside, so the warning says nothing here.
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        cases = build_cases(doc, operations)
    tested = {req_id for case in cases for req_id in case.requirement_ids}
    for op in operations:
        for resp in op.responses:
            assert resp.requirement is not None
            if resp.requirement.id not in tested:
                reason = cases.untested.get((op.label, resp.status)) or (
                    "no example request reaches this response: give a parameter or the "
                    "request body an example named like one of this response's examples, "
                    f"or named {resp.status!r}"
                )
                _untested(resp.requirement, reason)
        assert op.requirement is not None
        if op.requirement.id not in tested:
            _untested(op.requirement, "none of its responses can be tested without examples")
    info = data.get("info") or {}
    title = str(info.get("title") or file.stem)
    return Spec(
        format="contract",
        title=title,
        summary=_summary(doc, info, cases.base_path),
        requirements=requirements,
        acceptance_tests=render_contract_files(doc, operations, cases),
        contracts=[_contract(op) for op in operations],
        source=str(file),
        files_to_create=[SERVICE_FILE],
    )
