"""Contract specs: an OpenAPI document becomes requirements, contracts and generated tests.

The generated tests are run here for real (pytest in a subprocess, no sandbox) against the
example playbook's service and a broken copy of it, so both directions are proven: a
correct service passes, and a response that breaks the schema fails with openapi-core's
message.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from darkfactory.errors import SpecError
from darkfactory.spec import Spec, detect_format, load_spec, requirement_links
from darkfactory.spec.harness.openapi_contract import Contract

REPO = Path(__file__).resolve().parent.parent
TODO = REPO / "examples" / "specs" / "todo-api.yaml"
TODO_BOOK = REPO / "examples" / "playbooks" / "todo-api.yaml"


def todo_doc() -> dict[str, Any]:
    return yaml.safe_load(TODO.read_text(encoding="utf-8"))


def write(dir: Path, name: str, text: str) -> Path:
    path = dir / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def write_doc(dir: Path, doc: dict[str, Any], name: str = "api.yaml") -> Path:
    path = dir / name
    if name.endswith(".json"):
        path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def spec_error(path: Path, **kwargs: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, **kwargs)
    return info.value


def service_code() -> str:
    book = yaml.safe_load(TODO_BOOK.read_text(encoding="utf-8"))
    step = next(s for s in book["roles"]["developer"] if s.get("tool") == "write_file")
    return str(step["args"]["content"])


def run_generated(
    spec: Spec, tmp_path: Path, files: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """pytest on the spec's acceptance files in ``tmp_path/acceptance``, ``files`` beside it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    for test in spec.acceptance_tests:
        target = tmp_path / "acceptance" / test.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(test.content, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance", "-p", "no:cacheprovider", "-q", "-rf"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the example document ------------------------------------------------------------------


def test_todo_document_requirements_contracts_and_files() -> None:
    spec = load_spec(TODO)
    assert spec.format == "contract"
    assert spec.title == "Todo service"
    assert spec.files_to_create == ["service.py"]
    assert [(r.id, r.text) for r in spec.requirements] == [
        ("R1", "GET /todos: List every todo, oldest first"),
        ("R2", "GET /todos returns 200 with a JSON array of Todo (The todos)"),
        ("R3", "POST /todos: Create a todo"),
        ("R4", "POST /todos returns 201 with a Todo body (The todo, with its id)"),
        ("R5", "POST /todos returns 422 with an Error body (The body is not a valid new todo)"),
        ("R6", "GET /todos/{id}: Get one todo"),
        ("R7", "GET /todos/{id} returns 200 with a Todo body (The todo)"),
        ("R8", "GET /todos/{id} returns 404 with an Error body (No todo has this id)"),
        ("R9", "DELETE /todos/{id}: Delete a todo"),
        ("R10", "DELETE /todos/{id} returns 204 with no body (Deleted)"),
        ("R11", "DELETE /todos/{id} returns 404 with an Error body (No todo has this id)"),
    ]
    lines = TODO.read_text(encoding="utf-8").splitlines()
    for req in spec.requirements:
        assert req.source is not None and req.source.line is not None
        line = lines[req.source.line - 1].strip()
        assert line.startswith(("get:", "post:", "delete:", '"')), (req.id, line)
    assert all(r.untested_reason is None for r in spec.requirements)
    assert [(c["method"], c["path"], c["requirement"]) for c in spec.contracts] == [
        ("GET", "/todos", "R1"),
        ("POST", "/todos", "R3"),
        ("GET", "/todos/{id}", "R6"),
        ("DELETE", "/todos/{id}", "R9"),
    ]
    get_one = spec.contracts[2]
    assert get_one["operation_id"] == "getTodo"
    assert get_one["parameters"] == [{"name": "id", "in": "path", "required": True}]
    assert [(r["status"], r["requirement"]) for r in get_one["responses"]] == [  # type: ignore[attr-defined]
        ("200", "R7"),
        ("404", "R8"),
    ]
    assert [t.name for t in spec.acceptance_tests] == [
        "openapi.json",
        "openapi_contract.py",
        "test_contract.py",
    ]
    assert json.loads(spec.acceptance_tests[0].content) == todo_doc()
    assert "service.py" in spec.summary and "WSGI callable `app" in spec.summary
    assert "mount `app` at /api" in spec.summary


def test_every_requirement_is_linked_and_tests_run_post_get_delete() -> None:
    spec = load_spec(TODO)
    links = requirement_links(spec)
    assert list(links) == [
        "test_contract.py::test_post_todos_201_milk",
        "test_contract.py::test_post_todos_422_no_title",
        "test_contract.py::test_get_todos_200",
        "test_contract.py::test_get_todos_id_200_first",
        "test_contract.py::test_get_todos_id_404_missing",
        "test_contract.py::test_delete_todos_id_204_first",
        "test_contract.py::test_delete_todos_id_404_missing",
    ]
    assert links["test_contract.py::test_get_todos_id_404_missing"] == ["R6", "R8"]
    proven = {i for ids in links.values() for i in ids}
    assert proven == {r.id for r in spec.requirements}
    code = spec.acceptance_tests[2].content
    assert "path_params={'id': 999}" in code
    assert "body={'title': 'Buy milk'}" in code


def test_json_document_gives_the_same_spec_with_lines(tmp_path: Path) -> None:
    path = write_doc(tmp_path, todo_doc(), "todo.json")
    assert detect_format(path) == "contract"
    spec = load_spec(path)
    assert [r.text for r in spec.requirements] == [r.text for r in load_spec(TODO).requirements]
    text = path.read_text(encoding="utf-8").splitlines()
    r8 = spec.requirements[7]
    assert r8.source is not None and r8.source.line is not None
    assert text[r8.source.line - 1].strip().startswith('"404"')


def test_generated_tests_pass_on_a_correct_service_and_fail_on_a_wrong_body(
    tmp_path: Path,
) -> None:
    spec = load_spec(TODO)
    good = run_generated(spec, tmp_path / "good", {"service.py": service_code()})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "7 passed" in good.stdout

    broken = service_code().replace('"id": self.next_id', '"id": str(self.next_id)')
    assert broken != service_code()
    bad = run_generated(spec, tmp_path / "bad", {"service.py": broken})
    assert bad.returncode == 1
    assert "FAILED acceptance/test_contract.py::test_post_todos_201_milk" in bad.stdout
    assert "the 201 response does not match the OpenAPI document" in bad.stdout
    assert "'1' is not of type 'integer' (at id)" in bad.stdout


def test_missing_service_module_fails_with_the_convention(tmp_path: Path) -> None:
    result = run_generated(load_spec(TODO), tmp_path, {})
    assert result.returncode == 1
    assert "write service.py in the project root with a WSGI callable named 'app'" in (
        result.stdout
    )


# -- examples and requests -----------------------------------------------------------------

SEARCH = """
openapi: 3.0.3
info: {title: Search, version: "1"}
servers:
  - url: "https://{host}/v{major}"
    variables:
      host: {default: example.com}
      major: {default: "2"}
paths:
  /search:
    get:
      summary: Search the catalogue
      parameters:
        - name: q
          in: query
          required: true
          schema: {type: string}
          example: lamp
        - name: limit
          in: query
          schema: {type: integer, nullable: true}
        - name: X-Trace
          in: header
          schema: {type: string, example: abc}
      responses:
        "200":
          description: Hits
          content:
            application/json:
              schema:
                type: array
                items: {type: string}
              example: [lamp, lampshade]
        "500":
          description: The index is down
"""


def test_single_examples_make_the_unnamed_request_and_servers_give_the_mount_path(
    tmp_path: Path,
) -> None:
    spec = load_spec(write(tmp_path, "search.yaml", SEARCH))
    assert spec.summary.endswith(
        "Answer with the documented media types (Content-Type: application/json for JSON bodies)."
    )
    assert "mount `app` at /v2" in spec.summary
    code = spec.acceptance_tests[2].content
    assert "query={'q': 'lamp'}" in code and "headers={'X-Trace': 'abc'}" in code
    assert "limit" not in code  # optional, no example: left out
    _, r2, r3 = spec.requirements
    assert r2.text == "GET /search returns 200 with a JSON array (Hits)"
    assert r2.untested_reason is None
    assert r3.text.endswith("[untested: not testable without examples]")
    assert r3.untested_reason is not None and "'500'" in r3.untested_reason
    assert [ids for ids in requirement_links(spec).values()] == [["R1", "R2"]]


def test_untestable_operation_and_response_are_reported_not_tested(tmp_path: Path) -> None:
    doc = todo_doc()
    del doc["paths"]["/todos/{id}"]["parameters"][0]["examples"]
    spec = load_spec(write_doc(tmp_path, doc))
    untested = {r.id: r.untested_reason for r in spec.requirements if r.untested_reason}
    assert set(untested) == {"R6", "R7", "R8", "R9", "R10", "R11"}
    assert "required path parameter 'id'" in (untested["R7"] or "")
    assert "none of its responses" in (untested["R6"] or "")
    proven = {i for ids in requirement_links(spec).values() for i in ids}
    assert proven == {"R1", "R2", "R3", "R4", "R5"}


def test_response_only_example_name_does_not_steal_a_request(tmp_path: Path) -> None:
    doc = todo_doc()
    get_one = doc["paths"]["/todos/{id}"]
    get_one["parameters"][0]["examples"] = {"first": {"value": 1}}
    spec = load_spec(write_doc(tmp_path, doc))
    r8 = next(r for r in spec.requirements if r.id == "R8")
    assert r8.untested_reason is not None
    assert "example 'missing'" in r8.untested_reason


def test_a_form_body_and_a_range_response(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "login.yaml",
        """
        openapi: 3.1.0
        info: {title: Login, version: "1"}
        paths:
          /login:
            post:
              requestBody:
                required: true
                content:
                  application/x-www-form-urlencoded:
                    schema:
                      type: object
                      properties: {user: {type: string}}
                    examples:
                      ok: {value: {user: ada}}
                      "4XX": {value: {user: ""}}
              responses:
                "204": {description: Logged in}
                "4XX": {description: Refused}
        """,
    )
    spec = load_spec(path)
    code = spec.acceptance_tests[2].content
    assert "media_type='application/x-www-form-urlencoded'" in code
    assert "expect='4XX'" in code and "expect='204'" in code
    assert all(r.untested_reason is None for r in spec.requirements)


# -- errors ----------------------------------------------------------------------------------


def _doc_with(change: str) -> dict[str, Any]:
    doc = todo_doc()
    if change == "swagger":
        del doc["openapi"]
        doc["swagger"] = "2.0"
    elif change == "3.2":
        doc["openapi"] = "3.2.0"
    elif change == "float":
        doc["openapi"] = 3.0
    elif change == "external-ref":
        doc["paths"]["/todos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "items"
        ] = {"$ref": "todo.yaml#/Todo"}
    elif change == "dangling-ref":
        doc["paths"]["/todos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "items"
        ] = {"$ref": "#/components/schemas/Todos"}
    elif change == "no-operations":
        doc["paths"] = {}
    return doc


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ("swagger", "swagger", "unsupported OpenAPI version '2.0' (Swagger / OpenAPI 2.0)"),
        ("3.2", "openapi", "unsupported OpenAPI version '3.2.0'"),
        ("float", "openapi", "unsupported OpenAPI version 3.0"),
        ("external-ref", "items.$ref", "points outside the OpenAPI document"),
        ("dangling-ref", "items.$ref", "points at nothing in the OpenAPI document"),
        ("no-operations", "paths", "has no operations"),
    ],
)
def test_document_errors_name_the_key_and_line(
    tmp_path: Path, change: str, key: str, words: str
) -> None:
    path = write_doc(tmp_path, _doc_with(change))
    err = spec_error(path)
    assert words in err.message
    assert err.key is not None and err.key.endswith(key)
    assert err.line is not None and err.file == str(path)
    line = path.read_text(encoding="utf-8").splitlines()[err.line - 1]
    assert key.split(".")[-1] in line or key == "paths"


def test_float_version_hint_says_quote_it(tmp_path: Path) -> None:
    err = spec_error(write_doc(tmp_path, _doc_with("float")))
    assert err.hint is not None and "quotes" in err.hint


INVALID = """
openapi: 3.1.0
info:
  title: Broken
paths:
  /a:
    get:
      summmary: typo
      responses:
        "200": {description: ok}
"""


def test_invalid_document_is_reported_by_openapi_spec_validator(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", INVALID)
    err = spec_error(path)
    assert err.line == 2 and err.key == "info"
    assert "invalid OpenAPI document: 'version' is a required property" in err.message
    write(
        tmp_path,
        "broken.yaml",
        INVALID.replace("  title: Broken", '  title: Broken\n  version: "1"'),
    )
    err = spec_error(path)
    assert err.line == 8 and err.key == "paths./a.get.summmary"
    assert "'summmary' was unexpected" in err.message


def test_undeclared_path_parameter_names_the_path(tmp_path: Path) -> None:
    doc = todo_doc()
    doc["paths"]["/todos/{todo}"] = doc["paths"].pop("/todos/{id}")
    err = spec_error(write_doc(tmp_path, doc))
    assert err.key == "paths./todos/{todo}"
    assert "Path parameter 'todo'" in err.message


def test_invalid_example_request_for_a_success_is_an_error_at_its_line(tmp_path: Path) -> None:
    doc = todo_doc()
    doc["paths"]["/todos"]["post"]["requestBody"]["content"]["application/json"]["examples"][
        "milk"
    ]["value"] = {"title": ""}
    path = write_doc(tmp_path, doc)
    err = spec_error(path)
    assert "example 'milk' of POST /todos expects a 201 response but is not a valid request" in (
        err.message
    )
    assert "should be non-empty (at title)" in err.message
    assert err.line is not None
    lines = path.read_text().splitlines()
    assert lines[err.line - 2].strip() == "milk:" and lines[err.line - 1].strip() == "value:"


def test_response_example_that_breaks_its_schema_is_an_error(tmp_path: Path) -> None:
    doc = todo_doc()
    media = doc["paths"]["/todos"]["post"]["responses"]["201"]["content"]["application/json"]
    media["examples"]["milk"]["value"]["id"] = "1"
    err = spec_error(write_doc(tmp_path, doc))
    assert "example 'milk' of the 201 response of POST /todos does not match its schema" in (
        err.message
    )
    assert "'1' is not of type 'integer' (at id)" in err.message
    assert err.key is not None and err.key.endswith("examples.milk.value")


def test_one_example_name_on_two_responses_is_an_error(tmp_path: Path) -> None:
    doc = todo_doc()
    get_one = doc["paths"]["/todos/{id}"]["get"]
    get_one["responses"]["200"]["content"]["application/json"]["examples"] = copy.deepcopy(
        get_one["responses"]["404"]["content"]["application/json"]["examples"]
    )
    get_one["responses"]["200"]["content"]["application/json"]["examples"]["missing"]["value"] = {
        "id": 9,
        "title": "x",
        "done": False,
    }
    err = spec_error(write_doc(tmp_path, doc))
    assert "the example name 'missing' is used by the 200 and the 404 responses" in err.message


def test_external_example_value_is_an_error(tmp_path: Path) -> None:
    doc = todo_doc()
    doc["paths"]["/todos/{id}"]["parameters"][0]["examples"]["first"] = {
        "externalValue": "https://example.com/1"
    }
    err = spec_error(write_doc(tmp_path, doc))
    assert "example 'first' has no value" in err.message


def test_no_testable_response_at_all_is_an_error(tmp_path: Path) -> None:
    doc = todo_doc()
    del doc["paths"]["/todos"]
    del doc["paths"]["/todos/{id}"]["parameters"][0]["examples"]
    err = spec_error(write_doc(tmp_path, doc))
    assert "no response of the OpenAPI document can be tested" in err.message
    assert err.hint is not None and "examples" in err.hint


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text('{\n  "openapi": "3.1.0",\n  "info": {,}\n}\n', encoding="utf-8")
    err = spec_error(path)
    assert err.line == 3 and "invalid JSON" in err.message


def test_format_override_and_alias(tmp_path: Path) -> None:
    path = write_doc(tmp_path, todo_doc(), "api.txt")
    assert detect_format(path) == "text"
    assert load_spec(path, format="openapi").format == "contract"
    assert load_spec(path, format="contract").format == "contract"


# -- the checks the generated tests call -------------------------------------------------------


def json_app(status: str, body: Any, content_type: str = "application/json") -> Any:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response(status, [("Content-Type", content_type)])
        return [json.dumps(body).encode()]

    app.seen = seen  # type: ignore[attr-defined]
    return app


def test_check_mounts_the_app_and_reports_status_and_schema_problems() -> None:
    contract = Contract(todo_doc())
    assert contract.base_path == "/api"
    todo = {"id": 1, "title": "x", "done": False}
    app = json_app("200 OK", todo)
    contract.check(app, "GET", "/todos/{id}", expect="200", path_params={"id": 1})
    assert app.seen["SCRIPT_NAME"] == "/api" and app.seen["PATH_INFO"] == "/todos/1"

    with pytest.raises(AssertionError) as info:
        contract.check(app, "GET", "/todos/{id}", expect="404", path_params={"id": 1})
    assert "GET /api/todos/1: expected status 404, got 200" in str(info.value)

    with pytest.raises(AssertionError) as info:
        contract.check(
            json_app("200 OK", {**todo, "extra": 1}),
            "GET",
            "/todos/{id}",
            expect="200",
            path_params={"id": 1},
        )
    assert "the 200 response does not match the OpenAPI document" in str(info.value)
    assert "'extra' was unexpected" in str(info.value)

    with pytest.raises(AssertionError) as info:
        contract.check(
            json_app("404 Not Found", "nope", "text/plain"),
            "GET",
            "/todos/{id}",
            expect="404",
            path_params={"id": 2},
        )
    assert "mimetype not found: text/plain" in str(info.value)


def test_request_args_encode_every_kind_of_parameter() -> None:
    contract = Contract({"openapi": "3.1.0", "info": {}, "paths": {}})
    args = contract.request_args(
        "post",
        "/a/{x}",
        path_params={"x": "a b/c"},
        query={"tag": ["p", "q"], "flag": True},
        headers={"X-N": 3},
        cookies={"session": "s 1"},
        body={"k": None},
    )
    assert args["path"] == "/a/a%20b%2Fc"
    assert args["base_url"] == "http://localhost"
    assert args["method"] == "POST"
    assert args["query_string"] == [("tag", "p"), ("tag", "q"), ("flag", "true")]
    assert ("X-N", "3") in args["headers"] and ("Cookie", "session=s%201") in args["headers"]
    assert args["data"] == '{"k": null}' and args["content_type"] == "application/json"


def test_an_empty_object_body_is_still_sent(tmp_path: Path) -> None:
    doc = todo_doc()
    media = doc["paths"]["/todos"]["post"]["requestBody"]["content"]["application/json"]
    media["examples"]["no-title"]["value"] = {}
    code = load_spec(write_doc(tmp_path, doc)).acceptance_tests[2].content
    assert "expect='422',\n        body={},\n        media_type='application/json'," in code
