"""JSON Schema specs: requirements from the schema, generated tests checked against it.

The generated tests are run for real (pytest in a subprocess) against a reference
``model.py`` that validates with jsonschema itself, and against one that accepts anything:
the first must pass every test (the tests never contradict the schema), the second must fail
every rejection test (they can really fail).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from darkfactory.errors import SpecError
from darkfactory.spec import Spec, detect_format, load_spec, requirement_links

REPO = Path(__file__).resolve().parent.parent
USER = REPO / "examples" / "specs" / "user.schema.json"

REFERENCE_MODEL = """
import json
from pathlib import Path

import jsonschema

SCHEMA = json.loads(Path(__file__).with_name("acceptance").joinpath("schema.json").read_text())
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)


def validate(data):
    error = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(data))
    if error is not None:
        raise ValueError(error.message)
"""
PERMISSIVE_MODEL = "def validate(data):\n    return None\n"


def write(dir: Path, name: str, text: str) -> Path:
    path = dir / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def write_schema(dir: Path, schema: dict[str, Any], name: str = "thing.schema.json") -> Path:
    path = dir / name
    if name.endswith(".json"):
        path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    return path


def spec_error(path: Path, **kwargs: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, **kwargs)
    return info.value


def run_generated(spec: Spec, dir: Path, model: str) -> subprocess.CompletedProcess[str]:
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "model.py").write_text(model, encoding="utf-8")
    for test in spec.acceptance_tests:
        (dir / "acceptance").mkdir(exist_ok=True)
        (dir / "acceptance" / test.name).write_text(test.content, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance", "-p", "no:cacheprovider", "-q"],
        cwd=dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_user_schema_requirements_in_schema_order_with_lines() -> None:
    spec = load_spec(USER)
    assert spec.format == "jsonschema"
    assert spec.title == "User account"
    assert spec.files_to_create == ["model.py"]
    texts = [r.text for r in spec.requirements]
    assert texts[:6] == [
        "validate accepts valid data: the schema's 2 example(s)",
        "The data is an object",
        "`username` is required",
        "`username` is a string",
        "`username` has at least 3 characters",
        "`username` has at most 20 characters",
    ]
    assert "`email` is a string (email format)" in texts
    assert 'Every item of `roles` is one of "reader", "editor", "admin"' in texts
    assert "`address.country` is required in `address`" in texts
    assert texts[-2] == (
        "The data has no properties other than `username`, `email`, `age`, `roles`, `address`"
    )
    assert texts[-1].startswith("validate rejects the schema's 2 documented invalid example(s)")
    lines = USER.read_text(encoding="utf-8").splitlines()
    age_min = next(r for r in spec.requirements if r.text == "`age` is at least 13")
    assert age_min.source is not None and age_min.source.line is not None
    assert '"minimum": 13' in lines[age_min.source.line - 1]
    assert all(r.untested_reason is None for r in spec.requirements)
    proven = {i for ids in requirement_links(spec).values() for i in ids}
    assert proven == {r.id for r in spec.requirements}
    assert [t.name for t in spec.acceptance_tests] == ["schema.json", "test_model.py"]
    assert "`validate(data) -> None`" in spec.summary and "model.py" in spec.summary


def test_generated_tests_agree_with_jsonschema_and_can_fail(tmp_path: Path) -> None:
    spec = load_spec(USER)
    good = run_generated(spec, tmp_path / "reference", REFERENCE_MODEL)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "29 passed" in good.stdout
    loose = run_generated(spec, tmp_path / "permissive", PERMISSIVE_MODEL)
    assert loose.returncode == 1
    assert "27 failed, 2 passed" in loose.stdout  # every rejection fails; the examples pass
    assert "validate accepted invalid data (`age` is at least 13)" in loose.stdout


def test_every_instance_in_the_generated_tests_is_what_jsonschema_says() -> None:
    spec = load_spec(USER)
    schema = json.loads(spec.acceptance_tests[0].content)
    validator = jsonschema.Draft202012Validator(schema)
    tree = ast.parse(spec.acceptance_tests[1].content)
    valid = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "VALID"
    )
    rejected = [
        ast.literal_eval(call.args[0])
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "assert_rejected"
    ]
    assert len(valid) == 2 and len(rejected) == 27
    assert all(validator.is_valid(v) for v in valid)
    assert not any(validator.is_valid(v) for v in rejected)


def test_yaml_schema_detected_by_type_and_properties_without_examples(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "point.yaml",
        """
        title: Point
        type: object
        required: [x, y]
        properties:
          x: {type: number, exclusiveMinimum: 0}
          y: {type: integer, multipleOf: 5}
          label: {type: [string, "null"], maxLength: 3}
        """,
    )
    assert detect_format(path) == "jsonschema"
    spec = load_spec(path)
    assert spec.requirements[0].text == (
        "validate accepts valid data (a minimal instance derived from the schema)"
    )
    code = spec.acceptance_tests[1].content
    assert "VALID = [{'x': 0.5, 'y': 0}]" in code
    texts = [r.text for r in spec.requirements]
    assert "`x` is greater than 0" in texts
    assert "`y` is a multiple of 5" in texts
    assert "`label` is a string or null" in texts
    assert all(r.untested_reason is None for r in spec.requirements)


def test_refs_allof_items_and_draft4_bounds(tmp_path: Path) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "definitions": {
            "tag": {"type": "string", "pattern": "^[a-z]+$"},
            "named": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
        "allOf": [{"$ref": "#/definitions/named"}],
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"$ref": "#/definitions/tag"}, "maxItems": 2},
            "score": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        },
        "examples": [{"name": "n", "tags": ["a"], "score": 1}],
    }
    spec = load_spec(write_schema(tmp_path, schema, "tagged.json"))
    texts = [r.text for r in spec.requirements]
    assert "`name` is required" in texts and "`name` is a string" in texts
    assert "Every item of `tags` matches the regular expression ^[a-z]+$" in texts
    assert "`score` is greater than 0" in texts
    good = run_generated(spec, tmp_path / "run", REFERENCE_MODEL)
    assert good.returncode == 0, good.stdout + good.stderr


def test_underived_keyword_is_untested_unless_an_invalid_example_breaks_it(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "propertyNames": {"maxLength": 1},
        "examples": [{"a": 1}],
    }
    spec = load_spec(write_schema(tmp_path, schema))
    names = next(r for r in spec.requirements if "propertyNames" in r.text)
    assert names.untested_reason is not None and "x-invalid-examples" in names.untested_reason
    assert names.text.endswith(
        "[untested: no breaking data derived; add some to x-invalid-examples]"
    )
    assert names.id not in {i for ids in requirement_links(spec).values() for i in ids}

    schema["x-invalid-examples"] = [{"long": 1}]
    spec = load_spec(write_schema(tmp_path, schema))
    names = next(r for r in spec.requirements if "propertyNames" in r.text)
    assert names.untested_reason is None
    links = requirement_links(spec)
    assert links["test_model.py::test_rejects_invalid_example_1"] == ["R5", names.id]


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (
            {"properties": {"a": {"type": "strng"}}},
            "properties.a.type",
            "invalid JSON Schema: 'strng' is not valid",
        ),
        ({"$schema": "https://example.com/my-dialect"}, "$schema", "unknown JSON Schema dialect"),
        ({"examples": [{"a": "x"}]}, "examples.0", "example 1 is not valid against the schema"),
        (
            {"examples": {"a": 1}},
            "examples",
            "invalid JSON Schema: {'a': 1} is not of type 'array'",
        ),
        (
            {"x-invalid-examples": [{"a": 2}]},
            "x-invalid-examples.0",
            "invalid example 1 is valid against the schema",
        ),
        (
            {"properties": {"a": {"$ref": "common.json#/int"}}},
            "properties.a.$ref",
            "points outside the schema",
        ),
        ({"properties": {"a": {"$ref": "#/$defs/nope"}}}, "properties.a.$ref", "points at nothing"),
    ],
)
def test_schema_errors_name_the_key_and_line(
    tmp_path: Path, change: dict[str, Any], key: str, words: str
) -> None:
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"a": {"type": "integer"}},
    }
    schema.update(change)
    path = write_schema(tmp_path, schema, "thing.schema.yaml")
    err = spec_error(path)
    assert words in err.message
    assert err.key == key
    assert err.line is not None and err.file == str(path)


def test_example_error_says_where_in_the_data(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "examples": [{}, {"a": "x"}],
    }
    err = spec_error(write_schema(tmp_path, schema))
    assert (
        err.message
        == "example 2 is not valid against the schema: 'x' is not of type 'integer' (at a)"
    )


def test_detection_and_errors_of_json_files(tmp_path: Path) -> None:
    named = write_schema(tmp_path, {"type": "string", "minLength": 2}, "code.schema.json")
    assert detect_format(named) == "jsonschema"
    assert load_spec(named).requirements[1].text == "The data is a string"
    dialect = write_schema(
        tmp_path, {"$schema": "http://json-schema.org/draft-07/schema#"}, "x.json"
    )
    assert detect_format(dialect) == "jsonschema"
    other = write_schema(tmp_path, {"name": "not a schema"}, "data.json")
    err = spec_error(other)
    assert "a JSON spec must be an OpenAPI document" in err.message
    assert load_spec(other, format="json-schema").format == "jsonschema"
    listed = tmp_path / "list.schema.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    assert "a mapping (a schema object)" in spec_error(listed).message


def test_no_examples_and_no_derivable_instance_is_untested(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["a"],
        "properties": {"a": {"type": "string", "pattern": "^\\d{4}$"}},
    }
    spec = load_spec(write_schema(tmp_path, schema))
    first = spec.requirements[0]
    assert first.untested_reason is not None and "no examples" in first.untested_reason
    assert first.text.endswith("[untested: the schema has no examples]")
    assert requirement_links(spec) == {}


def test_generated_names_never_link_by_the_r_number_convention(tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["r2"], "properties": {"r2": {"type": "integer"}}}
    schema["examples"] = [{"r2": 1}]
    spec = load_spec(write_schema(tmp_path, schema))
    links = requirement_links(spec)
    assert links["test_model.py::test_that_r2_is_required"] == ["R3"]
    assert links["test_model.py::test_that_r2_is_an_integer"] == ["R4"]
