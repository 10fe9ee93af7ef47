"""``darkfactory validate`` on every spec format: requirements with their tests, no CrewAI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "examples" / "specs"

CHECK = """
import sys
from darkfactory.cli import main
code = main(["validate", sys.argv[1]])
assert "crewai" not in sys.modules, "validate imported crewai"
raise SystemExit(code)
"""


@pytest.mark.parametrize(
    ("spec", "head", "line"),
    [
        (
            "todo-api.yaml",
            "contract spec 'Todo service'",
            "  R8: GET /todos/{id} returns 404 with an Error body (No todo has this id)  [1 test(s)]",
        ),
        (
            "user.schema.json",
            "jsonschema spec 'User account'",
            "  R12: `age` is at least 13  [1 test(s)]",
        ),
        (
            "shopping-cart-tests",
            "testsuite spec 'Shopping cart'",
            "  R6: Remove: remove some; remove all drops the item; remove more than held raises "
            "(test_cart.py::TestRemove)  [3 test(s)]",
        ),
    ],
)
def test_validate_prints_requirements_and_tests_without_crewai(
    spec: str, head: str, line: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(SPECS / spec)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith(head)
    assert line in lines
    assert "[no test yet]" not in out.stdout


def test_validate_reports_a_spec_error_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "api.yaml"
    bad.write_text("openapi: 3.2.0\ninfo: {title: x, version: '1'}\npaths: {}\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "darkfactory", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 2
    assert f"{bad}:1: openapi: unsupported OpenAPI version '3.2.0'" in out.stderr
