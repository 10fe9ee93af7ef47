"""``darkfactory validate`` on every spec format: requirements with their tests, no CrewAI.

Bad input of every documented kind is a one-line message naming the file (and the line and
column where there is one), a hint, and exit code 2; never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from darkfactory.cli import main
from darkfactory.errors import ExitCode
from darkfactory.spec.limits import MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES

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
        (
            "library-unittest",
            "testsuite spec 'Library loans'",
            "  R4: Loan limit: a member may hold two books at a time; a third loan is refused "
            "(test_loans.py::LoanLimitTests)  [1 test(s)]",
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


# -- bad input: a clear message naming the file (and line/column), and exit code 2 ----------

PETSTORE_BROKEN_REF = """\
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    get:
      responses:
        "200":
          description: The pets
          content:
            application/json:
              schema:
                type: array
                items:
                  $ref: "#/components/schemas/Pets"
components:
  schemas:
    Pet: {type: object}
"""
TOO_BIG = MAX_SPEC_BYTES + 1


def validate(capsys: pytest.CaptureFixture[str], path: Path, *options: str) -> tuple[int, str, str]:
    code = main(["validate", str(path), "--config", str(REPO / "config"), *options])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "ticket.yaml",
            "title: T\nacceptance_criteria:\n  - a\n - b\n",
            "{path}:4: invalid YAML (column 2): expected <block end>, but found "
            "'<block sequence start>'",
        ),
        (
            "api.json",
            '{\n  "openapi": "3.1.0",\n  "info": {,}\n}\n',
            "{path}:3: invalid JSON (column 12): Expecting property name enclosed in double quotes",
        ),
        (
            "ticket.yaml",
            "title: Word count\ndescription: counts words\n",
            "{path}:1: the ticket has no acceptance_criteria and no acceptance_tests",
        ),
        (
            "ticket.yaml",
            "title: Word count\nacceptance_criteria: []\n",
            "{path}:1: the ticket has no acceptance_criteria and no acceptance_tests",
        ),
        (
            "ticket.yaml",
            "title: Word count\nacceptance_tests: |\n  import os\n",
            "{path}:2: acceptance_tests: the ticket has no acceptance_criteria, and its "
            "acceptance_tests define no test",
        ),
        (
            "api.yaml",
            "swagger: '2.0'\ninfo: {title: Pets, version: '1'}\npaths: {}\n",
            "{path}:1: swagger: unsupported OpenAPI version '2.0' (Swagger / OpenAPI 2.0)",
        ),
        (
            "api.yaml",
            "openapi: 4.0.0\ninfo: {title: Pets, version: '1'}\npaths: {}\n",
            "{path}:1: openapi: unsupported OpenAPI version '4.0.0'",
        ),
        (
            "api.yaml",
            PETSTORE_BROKEN_REF,
            "{path}:14: paths./pets.get.responses.200.content.application/json.schema.items.$ref: "
            "$ref '#/components/schemas/Pets' points at nothing in the OpenAPI document",
        ),
        ("spec.md", "", "{path}:1: the spec is empty"),
        ("spec.md", " \n\t\n", "{path}:1: the spec is empty"),
        (
            "spec.md",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
            "{path}: a binary file (a PNG image), not a text spec",
        ),
        (
            "ticket.yaml",
            b"title: T\nacceptance_criteria:\x00\x00\n",
            "{path}:2: a binary file, not a text spec (a NUL byte at byte 29)",
        ),
        (
            "spec.txt",
            b"The tool must count.\n\xff\xfe\n",
            "{path}:2: not UTF-8 text (byte 21: invalid start byte)",
        ),
        (
            "spec.md",
            "- The tool must count words.\n" * (TOO_BIG // 29 + 1),
            "{path}: the spec file is too big: {size} bytes, more than the limit of "
            "2,000,000 bytes (2 MB)",
        ),
        (
            "ticket.yaml",
            "title: T\nacceptance_criteria: " + "[" * 100 + "]" * 100 + "\n",
            "{path}:2: nested too deeply (column 85): more than 64 levels of mappings and lists",
        ),
        (
            "ticket.yaml",
            "title: T\nacceptance_criteria: &a [*a]\n",
            "{path}:2: the YAML alias *a is used inside its own anchor &a (column 26)",
        ),
        (
            "user.schema.json",
            '{\n  "type": "object",\n  "$ref": "#"\n}\n',
            "{path}:3: $ref: $ref '#' leads back to where it is without going into the data",
        ),
        (
            "ticket.yaml",
            "title: T\nacceptance_criteria:\n  - due: 2024-13-45\n",
            "{path}:3: invalid YAML value '2024-13-45' (column 10): month must be in 1..12",
        ),
        (
            "user.schema.json",
            '{\n  "type": "integer",\n  "maximum": NaN\n}\n',
            "{path}:3: maximum: NaN and infinite numbers are not JSON numbers",
        ),
    ],
    ids=[
        "malformed-yaml",
        "malformed-json",
        "ticket-without-criteria",
        "ticket-with-empty-criteria",
        "ticket-whose-tests-define-no-test",
        "swagger-2.0",
        "openapi-4.0",
        "broken-ref",
        "empty",
        "blank",
        "png",
        "nul-bytes",
        "not-utf8",
        "too-big",
        "too-deep",
        "recursive-yaml-alias",
        "ref-cycle",
        "impossible-date",
        "nan-bound",
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes,
    expected: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    code, out, err = validate(capsys, path)
    assert code == ExitCode.BAD_INPUT == 2
    assert out == ""
    first = err.splitlines()[0]
    size = f"{path.stat().st_size:,}"
    assert first.startswith(f"darkfactory: error: {expected.format(path=path, size=size)}"), err
    assert "\n  hint: " in err
    assert "Traceback" not in err


def test_a_directory_without_tests_and_a_missing_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "README.md").write_text("# Shop\n", encoding="utf-8")
    (suite / "test_helpers.py").write_text("def helper():\n    pass\n", encoding="utf-8")
    code, _, err = validate(capsys, suite)
    assert code == 2
    assert err.startswith(f"darkfactory: error: {suite}: no tests found in this directory\n")

    (tmp_path / "nothing").mkdir()
    code, _, err = validate(capsys, tmp_path / "nothing")
    assert code == 2 and "no tests found in this directory" in err

    for missing in (tmp_path / "nope.yaml", tmp_path / "nope"):
        code, _, err = validate(capsys, missing)
        assert code == 2
        assert err.startswith(f"darkfactory: error: {missing}: spec file not found\n")


def test_a_pipe_is_refused_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "spec.md"
    os.mkfifo(fifo)
    code, _, err = validate(capsys, fifo)  # reading would block: it must not be opened
    assert code == 2
    assert err.startswith(f"darkfactory: error: {fifo}: not a regular file")


def test_json_output_on_bad_input_prints_nothing_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(PETSTORE_BROKEN_REF, encoding="utf-8")
    code, out, err = validate(capsys, path, "--json")
    assert code == 2 and out == ""
    assert "points at nothing in the OpenAPI document" in err


def test_the_size_limit_is_checked_before_the_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sparse file of 1 GB is refused at once: only its size is looked at."""
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(1_000_000_000)
    code, _, err = validate(capsys, path)
    assert code == 2
    assert "the spec file is too big: 1,000,000,000 bytes" in err


def test_untested_reasons_show_in_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A requirement the generated tests cannot prove says so, in both outputs."""
    path = tmp_path / "search.yaml"
    path.write_text(
        """\
openapi: 3.0.3
info: {title: Search, version: "1"}
paths:
  /search:
    get:
      parameters:
        - {name: q, in: query, required: true, schema: {type: string}, example: lamp}
      responses:
        "200":
          description: Hits
          content:
            application/json:
              schema: {type: array, items: {type: string}}
        "500":
          description: The index is down
""",
        encoding="utf-8",
    )
    code, out, _ = validate(capsys, path)
    assert code == 0
    assert (
        "  R3: GET /search returns 500 with no body (The index is down) "
        "[untested: not testable without examples]  [no test yet]"
    ) in out.splitlines()
    code, out, _ = validate(capsys, path, "--json")
    assert code == 0
    reqs = {r["id"]: r for r in json.loads(out)["spec"]["requirements"]}
    assert reqs["R2"]["untested_reason"] is None
    assert "no example request reaches this response" in reqs["R3"]["untested_reason"]
    assert "'500'" in reqs["R3"]["untested_reason"]


def test_the_documented_limits_are_the_code_s() -> None:
    docs = (REPO / "docs" / "spec-formats.md").read_text(encoding="utf-8")
    assert f"{MAX_SPEC_BYTES:,} bytes" in docs
    assert f"{MAX_DEPTH} levels" in docs
    assert f"{MAX_VALUES:,} values" in docs
