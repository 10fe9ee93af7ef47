"""A real public OpenAPI document of moderate size: the Swagger Petstore (OpenAPI 3.0).

tests/data/petstore.yaml has 13 paths, 19 operations, path, query and header parameters,
``$ref``s to components (schemas, parameters, request bodies) and security schemes. The
tests show that intake makes one requirement per operation and per response, each at its
line; that the generated acceptance tests are valid Python linked to those requirements;
and that they pass against a reference WSGI implementation (tests/data/petstore_service.py)
and fail, with openapi-core's reason, against copies with one response broken.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from darkfactory.spec import Spec, load_spec, requirement_links
from darkfactory.spec._openapi import METHODS

DATA = Path(__file__).resolve().parent / "data"
PETSTORE = DATA / "petstore.yaml"
SERVICE = DATA / "petstore_service.py"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(PETSTORE)


def document() -> dict[str, Any]:
    return yaml.safe_load(PETSTORE.read_text(encoding="utf-8"))


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    ]


def run_generated(spec: Spec, root: Path, service: str) -> subprocess.CompletedProcess[str]:
    """pytest on the spec's acceptance files in ``root/acceptance``, ``service.py`` beside."""
    root.mkdir(parents=True)
    (root / "service.py").write_text(service, encoding="utf-8")
    for test in spec.acceptance_tests:
        target = root / "acceptance" / test.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(test.content, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance", "-p", "no:cacheprovider", "-q", "-rf"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_one_requirement_per_operation_and_per_response_in_document_order(spec: Spec) -> None:
    doc = document()
    ops = operations(doc)
    assert len(doc["paths"]) == 13 and len(ops) == 19
    expected: list[str] = []
    for method, path, op in ops:
        expected.append(f"{method.upper()} {path}: {op['summary']}")
        expected += [f"{method.upper()} {path} returns " for _ in op["responses"]]
    texts = [r.text for r in spec.requirements]
    assert len(texts) == len(expected) == 83
    assert all(t.startswith(e) for t, e in zip(texts, expected, strict=True))
    assert [r.id for r in spec.requirements] == [f"R{n}" for n in range(1, 84)]
    assert spec.format == "contract"
    assert spec.title == "Swagger Petstore - OpenAPI 3.0"
    assert spec.files_to_create == ["service.py"]
    assert "mount `app` at /api/v3" in spec.summary

    by_id = {r.id: r.text for r in spec.requirements}
    assert by_id["R20"] == "GET /pet/{petId}: Find pet by ID."
    assert by_id["R21"] == "GET /pet/{petId} returns 200 with a Pet body (successful operation)"
    assert by_id["R13"] == (
        "GET /pet/findByStatus returns 200 with a JSON array of Pet (successful operation)"
    )
    assert by_id["R57"] == "POST /user returns 200 with a User body (successful operation)"
    assert [c["path"] for c in spec.contracts][:4] == [
        "/pet",
        "/pet",
        "/pet/findByStatus",
        "/pet/findByTags",
    ]
    # $ref'd parameters are resolved: the contract of getPetById has its path parameter
    get_pet = next(c for c in spec.contracts if c["operation_id"] == "getPetById")
    assert get_pet["parameters"] == [{"name": "petId", "in": "path", "required": True}]


def test_every_requirement_points_at_its_line(spec: Spec) -> None:
    lines = PETSTORE.read_text(encoding="utf-8").splitlines()
    for req in spec.requirements:
        assert req.source is not None and req.source.file == str(PETSTORE)
        assert req.source.line is not None
        line = lines[req.source.line - 1].strip()
        if ": " in req.text.split(" returns ", 1)[0]:  # an operation
            method = req.text.split(" ", 1)[0].lower()
            assert line == f"{method}:", (req.id, line)
        else:  # a response
            status = req.text.split(" returns ", 1)[1].split(" ", 1)[0]
            assert line.startswith(('"', "default:")), (req.id, line)
            assert status in line or status.startswith("any"), (req.id, line)


def test_responses_no_example_reaches_are_untested_with_the_reason(spec: Spec) -> None:
    untested = {r.id: r for r in spec.requirements if r.untested_reason}
    proven = {i for ids in requirement_links(spec).values() for i in ids}
    assert proven.isdisjoint(untested)
    assert proven | set(untested) == {r.id for r in spec.requirements}
    # every default response, every 422; the octet-stream upload as a whole
    for req in spec.requirements:
        if "(default response)" in req.text or " returns 422 " in req.text:
            assert req.id in untested, req.text
    upload = [r for r in spec.requirements if "/uploadImage" in r.text]
    assert len(upload) == 5 and all(r.id in untested for r in upload)
    assert "application/octet-stream are not generated" in (upload[1].untested_reason or "")
    assert len(proven) == 47 and len(untested) == 36


def test_generated_tests_are_valid_python_linked_to_requirements(spec: Spec) -> None:
    assert [t.name for t in spec.acceptance_tests] == [
        "openapi.json",
        "openapi_contract.py",
        "test_contract.py",
    ]
    code = spec.acceptance_tests[2].content
    tree = ast.parse(code)
    compile(tree, "test_contract.py", "exec")
    tests = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    links = requirement_links(spec)
    assert len(tests) == len(links) == 29
    assert [k.split("::")[1] for k in links] == tests
    assert all(len(ids) == 2 for ids in links.values())  # the operation and the response
    # run order: POSTs create what the GETs read; DELETEs come last
    methods = [t.split("_")[1] for t in tests]
    assert methods == sorted(methods, key=["post", "put", "get", "delete"].index)
    assert links["test_contract.py::test_get_pet_petid_404_404"] == ["R20", "R23"]
    assert "path_params={'petId': 999}" in code
    assert "query={'status': 'lost'}" in code  # the named "400" example


def test_generated_tests_pass_against_the_reference_service(spec: Spec, tmp_path: Path) -> None:
    result = run_generated(spec, tmp_path / "good", SERVICE.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "29 passed" in result.stdout


@pytest.mark.parametrize(
    ("change", "failed", "why"),
    [
        (
            ("    return dict(pet)\n", '    return {**pet, "id": str(pet["id"])}\n'),
            "test_post_pet_200_doggie",
            "'10' is not of type 'integer' (at id)",
        ),
        (
            (
                "        return (200, public(pet), {}) if pet is not None else empty(404)",
                "        return (200, public(pet), {}) if pet is not None else (200, {}, {})",
            ),
            "test_get_pet_petid_404_404",
            "expected status 404, got 200",
        ),
    ],
    ids=["pet-id-as-a-string", "missing-pet-found"],
)
def test_generated_tests_fail_against_a_broken_service(
    spec: Spec, tmp_path: Path, change: tuple[str, str], failed: str, why: str
) -> None:
    good = SERVICE.read_text(encoding="utf-8")
    broken = good.replace(*change)
    assert broken != good
    result = run_generated(spec, tmp_path / "bad", broken)
    assert result.returncode == 1, result.stdout
    assert f"FAILED acceptance/test_contract.py::{failed}" in result.stdout
    assert why in result.stdout
