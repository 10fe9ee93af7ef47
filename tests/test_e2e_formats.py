"""Each new spec format end to end: real crew, real tools, real bwrap sandbox, scripted model.

Every example spec under examples/specs/ (an OpenAPI contract, a JSON Schema, a directory of
tests) runs with its playbook under examples/playbooks/, in which the developer writes a
correct implementation: the run must be delivered with every requirement proven by passing
acceptance tests run in the sandbox. A last run proves the contract check can fail: a
service whose response breaks the OpenAPI schema fails verify with openapi-core's message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from runhelp import NEEDS_BWRAP, only_run, report_of, run_spec

from darkfactory.reporting.trace import read_trace
from darkfactory.workspace.rundir import stored_state

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "examples" / "specs"
BOOKS = REPO / "examples" / "playbooks"


def run(spec: Path, book: Path, out: Path, *extra: str) -> tuple[int, Path, dict[str, Any]]:
    code = run_spec(out, book, *extra, spec=spec)
    run_dir = only_run(out)
    return code, run_dir, report_of(run_dir)


def assert_delivered_and_all_proven(code: int, report: dict[str, Any]) -> None:
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    assert report["acceptance"]["failed"] == 0
    assert report["acceptance"]["passed"] == report["acceptance"]["total"] > 0
    for row in report["requirements"]:
        assert row["tests"], f"{row['id']} has no test: {row['text']}"
        assert row["passed"] is True, row


@pytest.mark.parametrize(
    ("spec", "book", "fmt", "acceptance", "requirements", "files"),
    [
        ("todo-api.yaml", "todo-api.yaml", "contract", 7, 11, ["service.py"]),
        ("user.schema.json", "user-schema.yaml", "jsonschema", 29, 27, ["model.py"]),
        (
            "shopping-cart-tests",
            "shopping-cart.yaml",
            "testsuite",
            14,
            9,
            ["shop/__init__.py", "shop/cart.py", "shop/discounts.py"],
        ),
    ],
)
def test_example_spec_is_delivered_with_every_requirement_proven(
    tmp_path: Path,
    spec: str,
    book: str,
    fmt: str,
    acceptance: int,
    requirements: int,
    files: list[str],
) -> None:
    code, run_dir, report = run(SPECS / spec, BOOKS / book, tmp_path / "runs")
    assert_delivered_and_all_proven(code, report)
    assert report["spec"]["format"] == fmt
    assert report["acceptance"]["total"] == acceptance
    assert len(report["requirements"]) == requirements
    assert report["fix_rounds"] == 0
    ws = run_dir / "workspace"
    for rel in files:  # what the spec said to create is what the developer wrote
        assert (ws / rel).is_file(), rel
    spec_json = json.loads((run_dir / "spec" / "spec.json").read_text(encoding="utf-8"))
    assert spec_json["files_to_create"] == files
    # The acceptance tests ran in the sandbox, each outcome linked to its requirements.
    trace = read_trace(run_dir / "trace.jsonl")
    outcomes = [r for r in trace if r["kind"] == "test_outcome" and r["suite"] == "acceptance"]
    assert len(outcomes) == acceptance
    assert all(r["outcome"] == "passed" and r["requirements"] for r in outcomes)


def test_test_suite_is_copied_with_its_layout_and_spec_directory(tmp_path: Path) -> None:
    _, run_dir, report = run(
        SPECS / "shopping-cart-tests", BOOKS / "shopping-cart.yaml", tmp_path / "runs"
    )
    for rel in ("conftest.py", "catalog.py", "checkout/test_checkout.py"):
        assert (run_dir / "acceptance" / rel).is_file(), rel
    assert not (run_dir / "acceptance" / "README.md").exists()
    assert (run_dir / "spec" / "shopping-cart-tests" / "README.md").is_file()
    nested = next(r for r in report["requirements"] if r["id"] == "R8")
    assert nested["tests"] == ["checkout/test_checkout.py::test_receipt_lines"]
    assert nested["passed"] is True


def test_a_response_that_breaks_the_schema_fails_verify(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    factory = yaml.safe_load((config / "factory.yaml").read_text(encoding="utf-8"))
    factory["max_fix_rounds"] = 0
    (config / "factory.yaml").write_text(yaml.safe_dump(factory), encoding="utf-8")
    book = yaml.safe_load((BOOKS / "todo-api.yaml").read_text(encoding="utf-8"))
    write = next(s for s in book["roles"]["developer"] if s.get("tool") == "write_file")
    good = write["args"]["content"]
    write["args"]["content"] = good.replace('"id": self.next_id', '"id": str(self.next_id)')
    assert write["args"]["content"] != good
    path = tmp_path / "broken-service.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False), encoding="utf-8")

    code, run_dir, report = run(
        SPECS / "todo-api.yaml", path, tmp_path / "runs", "--config", str(config)
    )
    assert code == 1
    assert report["status"] == "failed"
    assert report["fix_rounds"] == 0
    rows = {r["id"]: r for r in report["requirements"]}
    assert rows["R4"]["passed"] is False  # POST /todos returns 201 with a Todo body
    assert rows["R8"]["passed"] is True  # the 404s never carried an id
    # What the fix task would get: the assertion message, verbatim.
    failure = (stored_state(run_dir) or {})["last_failures"]
    assert "the 201 response does not match the OpenAPI document" in failure
    assert "'1' is not of type 'integer' (at id)" in failure
