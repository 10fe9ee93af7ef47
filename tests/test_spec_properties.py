"""Property-based tests: every spec parser, fed anything, raises only ``SpecError``.

Hypothesis feeds the loader arbitrary text, arbitrary bytes, arbitrary JSON/YAML data and
data shaped like tickets, OpenAPI documents, JSON Schemas and test suites (with random
values), through every suffix and every ``--format``. The property: ``load_spec`` either
returns a ``Spec`` whose links resolve, whose generated Python parses and which serialises
to JSON, or raises ``SpecError`` naming a file. Any other exception is a bug, and so is an
example that runs longer than ``EXAMPLE_TIMEOUT_S`` (a hang).

Guards against a hang: Hypothesis' ``deadline`` (a slow example fails), a ``SIGALRM``
timer per example (interrupts Python code stuck in a loop) and ``faulthandler`` (dumps
every thread's stack and exits if an example is stuck inside C code, which a signal
cannot interrupt). ``derandomize=True`` makes every run, locally and in CI, try the same
examples; ``DARKFACTORY_PROPERTY_EXAMPLES`` raises their number for a longer hunt.
"""

from __future__ import annotations

import ast
import faulthandler
import json
import os
import signal
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from darkfactory.errors import SpecError
from darkfactory.spec import Spec, detect_format, load_spec, requirement_links

#: Longest time one example may take before it counts as a hang.
EXAMPLE_TIMEOUT_S = 10
#: After this long stuck in C code, faulthandler dumps the stacks and ends the process.
HARD_TIMEOUT_S = 60

#: Examples per property; ``DARKFACTORY_PROPERTY_EXAMPLES=2000`` for a long local hunt.
MAX_EXAMPLES = int(os.environ.get("DARKFACTORY_PROPERTY_EXAMPLES", "60"))

SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SUFFIXES = (".txt", ".md", ".markdown", ".yaml", ".yml", ".json", ".schema.json", ".py", "")
FORMATS = (
    None,
    "text",
    "markdown",
    "ticket",
    "contract",
    "jsonschema",
    "testsuite",
    "openapi",
    "schema",
)


class Hang(Exception):
    """An example ran longer than ``EXAMPLE_TIMEOUT_S``."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"an example took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(HARD_TIMEOUT_S, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


def check(path: Path, fmt: str | None = None) -> Spec | None:
    """The property: a usable Spec, or a SpecError naming a file; nothing else, no hang."""
    with time_limit(EXAMPLE_TIMEOUT_S):
        try:
            if fmt is None:
                detect_format(path)
            spec = load_spec(path, format=fmt)
            links = requirement_links(spec)
        except SpecError as exc:
            assert exc.file, f"a SpecError must name a file: {exc!r}"
            assert exc.render().startswith(exc.file)
            assert exc.message.strip()
            return None
    ids = {r.id for r in spec.requirements}
    assert spec.requirements and len(ids) == len(spec.requirements)
    assert all(i in ids for linked in links.values() for i in linked)
    for test in spec.acceptance_tests:
        if test.name.endswith(".py"):
            ast.parse(test.content, filename=test.name)
    json.loads(spec.model_dump_json())
    return spec


def write_file(directory: Path, suffix: str, content: str | bytes) -> Path:
    name = "test_spec.py" if suffix == ".py" else f"spec{suffix}"
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@contextmanager
def fresh(workdir: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        yield Path(d)


# -- strategies --------------------------------------------------------------------------

#: Fragments that steer random text into the parsers' branches.
SPEC_WORDS = [
    "# Title",
    "## Requirements",
    "## Out of scope",
    "Output",
    "===",
    "---",
    "...",
    "- ",
    "* ",
    "1. ",
    "1) ",
    "[ ] ",
    "  - ",
    "    ",
    "\t",
    "> ",
    "```",
    "~~~",
    "<!--",
    "-->",
    "| a | b |",
    ":",
    "must",
    "shall",
    "should",
    "The tool must count words.",
    "title: T",
    "acceptance_criteria:",
    "acceptance_tests:",
    "openapi: 3.1.0",
    "swagger: '2.0'",
    "$schema:",
    "paths:",
    "&a",
    "*a",
    "!!python/object:os.system",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    "\\",
    "\r\n",
    "\r",
    "\x00",
    "\ufeff",
    "def test_x():",
    "class TestX:",
    "import os",
    "\u2028",
]

spec_text = st.lists(st.one_of(st.sampled_from(SPEC_WORDS), st.text(max_size=12)), max_size=30).map(
    lambda parts: "".join(p if p.endswith("\n") or len(p) < 3 else p + "\n" for p in parts)
)
any_text = st.one_of(st.text(max_size=300), spec_text)

KEYS = [
    "title",
    "description",
    "acceptance_criteria",
    "acceptance_tests",
    "examples",
    "openapi",
    "swagger",
    "info",
    "paths",
    "components",
    "$ref",
    "$schema",
    "type",
    "properties",
    "required",
    "items",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["", "3.0.3", "#", "#/", "#/paths", "R1", "test_x.py", "yes", "1.0"]),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=25,
)
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "yes", "x: y", "Given a"]))

# Tickets: the keys a ticket has, with values right and wrong.
criterion = st.one_of(
    texts,
    scalars,
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.sampled_from(["R1", "R2", "AC-1", "1", "r1", ""]), texts),
            "text": texts,
            "given": texts,
            "when": texts,
            "then": texts,
            "extra": texts,
        },
    ),
)
test_code = st.one_of(
    st.sampled_from(
        [
            "def test_r1():\n    assert True\n",
            "import pytest\n\n@pytest.mark.req('R1', 'R9')\ndef test_x():\n    pass\n",
            "@pytest.mark.req(1)\ndef test_y():\n    pass\n",
            "pytestmark = [pytest.mark.req('R2')]\ndef test_z():\n    pass\n",
            "class TestA:\n    def test_r2_b(self):\n        pass\n",
            "def test_(:\n",
            "x = (" * 300,
        ]
    ),
    st.text(max_size=80),
)
inline_test = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(
            st.sampled_from(["test_a.py", "sub/test_b.py", "../test_c.py", "a.py", "test_a.py"]),
            texts,
        ),
        "code": test_code,
        "other": texts,
    },
)
tickets = st.fixed_dictionaries(
    {},
    optional={
        "title": st.one_of(texts, scalars),
        "description": st.one_of(texts, scalars),
        "acceptance_criteria": st.one_of(st.lists(criterion, max_size=5), scalars),
        "acceptance_tests": st.one_of(
            test_code,
            st.lists(
                st.one_of(
                    inline_test, st.sampled_from(["tests", "test_ok.py", "../x", "/etc"]), scalars
                ),
                max_size=3,
            ),
            scalars,
        ),
        "examples": json_like,
        "acceptance_criterias": texts,
    },
)

# JSON Schemas: keywords with values of the right and of the wrong kind.
TYPES = ["string", "integer", "number", "boolean", "null", "object", "array"]
REFS = [
    "#",
    "#/$defs/a",
    "#/$defs/b",
    "#/definitions/a",
    "#/properties/x",
    "#/components/schemas/Pet",
    "#/components/schemas/Error",
    "#/nowhere",
    "other.json#/a",
    "#anchor",
]
PATTERNS = ["^[a-z]+$", "^$", "[", "a{2,}", "\\d", "(a|b)?", "^.{1,3}$", ".*"]
DIALECTS = [
    "https://json-schema.org/draft/2020-12/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-04/schema#",
    "https://example.com/unknown",
]
bounds = st.one_of(
    st.integers(min_value=-5, max_value=40),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.sampled_from([0, 0.5, 1e308, 1e-320, True, False, "3", None, 10**9, 10**400]),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
plain_schema = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(
            st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), max_size=3), scalars
        ),
        "enum": st.lists(scalars, max_size=4),
        "const": scalars,
        "minimum": bounds,
        "maximum": bounds,
        "exclusiveMinimum": bounds,
        "exclusiveMaximum": bounds,
        "multipleOf": st.one_of(bounds, st.sampled_from([0.1, 1e-300, 3])),
        "minLength": bounds,
        "maxLength": bounds,
        "minItems": bounds,
        "maxItems": bounds,
        "uniqueItems": st.one_of(st.booleans(), scalars),
        "pattern": st.one_of(st.sampled_from(PATTERNS), st.text(max_size=6)),
        "format": st.sampled_from(["date", "email", "uuid", "date-time", "nope"]),
        "required": st.one_of(
            st.lists(st.sampled_from(["a", "b", "id", "x"]), max_size=3), scalars
        ),
        "$ref": st.sampled_from(REFS),
        "minProperties": bounds,
        "nullable": st.booleans(),
        "example": json_like,
        "default": json_like,
    },
)
schemas = st.recursive(
    st.one_of(plain_schema, st.booleans()),
    lambda inner: st.one_of(
        plain_schema,
        st.builds(
            lambda base, extra: {**base, **extra},
            plain_schema,
            st.fixed_dictionaries(
                {},
                optional={
                    "properties": st.dictionaries(
                        st.sampled_from(["a", "b", "id", "x", "name"]), inner, max_size=3
                    ),
                    "items": inner,
                    "additionalProperties": st.one_of(st.booleans(), inner),
                    "allOf": st.lists(inner, max_size=2),
                    "anyOf": st.lists(inner, max_size=2),
                    "oneOf": st.lists(inner, max_size=2),
                    "not": inner,
                    "if": inner,
                    "then": inner,
                    "$defs": st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
                    "definitions": st.dictionaries(st.sampled_from(["a"]), inner, max_size=1),
                },
            ),
        ),
    ),
    max_leaves=8,
)
json_schemas = st.builds(
    lambda schema, extra: {**schema, **extra} if isinstance(schema, dict) else schema,
    schemas,
    st.fixed_dictionaries(
        {},
        optional={
            "$schema": st.sampled_from(DIALECTS),
            "title": texts,
            "examples": st.one_of(st.lists(json_like, max_size=3), scalars),
            "x-invalid-examples": st.one_of(st.lists(json_like, max_size=3), scalars),
        },
    ),
)

# OpenAPI documents: a pet-store-like skeleton with random parts.
VERSIONS = ["3.0.0", "3.0.3", "3.1.0", "3.1.1", "2.0", "4.0.0", "3.2.0", "3", 3.0, 3.1, None]
PATHS = ["/pets", "/pets/{id}", "/a/{b}/c", "/", "pets", "/x/{y}"]
STATUSES = ["200", "201", "204", "400", "404", "4XX", "default", "600", "2XX"]
MEDIA = ["application/json", "text/plain", "application/x-www-form-urlencoded", "image/png"]
named_examples = st.dictionaries(
    st.one_of(st.sampled_from(["ok", "404", "missing", "200", "default"]), st.text(max_size=5)),
    st.one_of(
        st.fixed_dictionaries({"value": json_like}),
        st.fixed_dictionaries({"externalValue": texts}),
        st.fixed_dictionaries({"$ref": st.sampled_from(REFS)}),
        json_like,
    ),
    max_size=3,
)
media_objects = st.dictionaries(
    st.sampled_from(MEDIA),
    st.fixed_dictionaries(
        {}, optional={"schema": schemas, "example": json_like, "examples": named_examples}
    ),
    max_size=2,
)
parameters = st.one_of(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["id", "b", "y", "q", "limit", "X-Trace"]),
            "in": st.sampled_from(["path", "query", "header", "cookie", "body"]),
        },
        optional={
            "required": st.booleans(),
            "schema": schemas,
            "example": json_like,
            "examples": named_examples,
            "content": media_objects,
            "style": st.sampled_from(["form", "simple", "deepObject"]),
        },
    ),
    st.fixed_dictionaries({"$ref": st.sampled_from([*REFS, "#/components/parameters/id"])}),
)
responses = st.dictionaries(
    st.sampled_from(STATUSES),
    st.one_of(
        st.fixed_dictionaries(
            {"description": texts},
            optional={"content": media_objects, "headers": st.dictionaries(texts, json_like)},
        ),
        st.fixed_dictionaries(
            {"$ref": st.sampled_from([*REFS, "#/components/responses/NotFound"])}
        ),
    ),
    max_size=3,
)
operations = st.fixed_dictionaries(
    {"responses": responses},
    optional={
        "summary": texts,
        "operationId": texts,
        "description": texts,
        "parameters": st.lists(parameters, max_size=3),
        "requestBody": st.fixed_dictionaries(
            {"content": media_objects}, optional={"required": st.booleans()}
        ),
    },
)
path_items = st.dictionaries(
    st.sampled_from(["get", "post", "put", "delete", "patch", "head", "parameters", "x-y"]),
    operations,
    max_size=3,
)
openapi_docs = st.fixed_dictionaries(
    {
        "openapi": st.sampled_from(VERSIONS),
        "info": st.one_of(
            st.fixed_dictionaries({"title": texts, "version": st.sampled_from(["1", "1.0.0"])}),
            json_like,
        ),
        "paths": st.one_of(
            st.dictionaries(st.sampled_from(PATHS), path_items, max_size=3), scalars
        ),
    },
    optional={
        "servers": st.lists(
            st.fixed_dictionaries({"url": st.sampled_from(["/api", "https://x/v1", "", "{a}"])}),
            max_size=2,
        ),
        "components": st.fixed_dictionaries(
            {},
            optional={
                "schemas": st.dictionaries(st.sampled_from(["Pet", "Error"]), schemas),
                "parameters": st.dictionaries(st.sampled_from(["id"]), parameters),
                "responses": st.dictionaries(
                    st.sampled_from(["NotFound"]),
                    st.fixed_dictionaries(
                        {"description": texts}, optional={"content": media_objects}
                    ),
                ),
            },
        ),
        "swagger": st.sampled_from(["2.0", "1.2"]),
    },
)


# Well-formed OpenAPI documents (valid far more often), so the example pairing, the request
# checks and the test writer run too, not only the document validator.
small_values = st.one_of(
    st.integers(-3, 1000),
    st.text(string.ascii_letters + " -", max_size=8),
    st.booleans(),
    st.none(),
    st.dictionaries(
        st.sampled_from(["id", "name", "status"]),
        st.integers(0, 9) | st.text(max_size=4),
        max_size=3,
    ),
)
good_leaf = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={
            "minLength": st.integers(0, 3),
            "maxLength": st.integers(3, 12),
            "enum": st.lists(
                st.sampled_from(["available", "pending", "sold"]), min_size=1, unique=True
            ),
            "format": st.sampled_from(["date-time", "email", "uuid"]),
            "pattern": st.sampled_from(["^[a-z]+$", "^\\d+$"]),
            "example": small_values,
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["integer", "number"])},
        optional={
            "minimum": st.integers(-1, 5),
            "maximum": st.integers(5, 100),
            "format": st.sampled_from(["int32", "int64", "float"]),
            "example": small_values,
        },
    ),
    st.fixed_dictionaries({"type": st.just("boolean")}),
    st.sampled_from([{"$ref": "#/components/schemas/Pet"}, {"$ref": "#/components/schemas/Error"}]),
)
good_schemas = st.recursive(
    good_leaf,
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(
                    st.sampled_from(["id", "name", "status", "tags"]), inner, min_size=1, max_size=3
                ),
            },
            optional={
                "required": st.lists(st.sampled_from(["id", "name"]), max_size=2, unique=True),
                "additionalProperties": st.booleans(),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": inner},
            optional={"minItems": st.integers(0, 2), "maxItems": st.integers(2, 5)},
        ),
    ),
    max_leaves=5,
)
good_examples = st.dictionaries(
    st.sampled_from(["ok", "missing", "404", "400", "201", "bad"]),
    st.fixed_dictionaries({"value": small_values}, optional={"summary": texts}),
    max_size=2,
)
good_media = st.dictionaries(
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]),
    st.fixed_dictionaries(
        {"schema": good_schemas}, optional={"example": small_values, "examples": good_examples}
    ),
    min_size=1,
    max_size=2,
)


@st.composite
def good_parameter(draw: st.DrawFn, name: str, where: str) -> dict[str, Any]:
    param: dict[str, Any] = {
        "name": name,
        "in": where,
        "required": True if where == "path" else draw(st.booleans()),
        "schema": draw(good_leaf.filter(lambda s: "$ref" not in s)),
    }
    kind = draw(st.sampled_from(["none", "example", "examples"]))
    if kind == "example":
        param["example"] = draw(small_values)
    elif kind == "examples":
        param["examples"] = draw(good_examples)
    return param


@st.composite
def good_openapi_docs(draw: st.DrawFn) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path in draw(
        st.lists(
            st.sampled_from(["/pet", "/pet/{petId}", "/store/order/{orderId}", "/user/login"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    ):
        item: dict[str, Any] = {}
        names = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        if names:
            item["parameters"] = [draw(good_parameter(n, "path")) for n in names]
        for method in draw(
            st.lists(
                st.sampled_from(["get", "post", "put", "delete"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        ):
            op: dict[str, Any] = {
                "summary": draw(texts),
                "operationId": f"{method}{len(paths)}",
                "responses": {
                    status: draw(
                        st.fixed_dictionaries(
                            {"description": st.sampled_from(["ok", "Not found", ""])},
                            optional={"content": good_media},
                        )
                    )
                    for status in draw(
                        st.lists(
                            st.sampled_from(["200", "201", "204", "400", "404", "default", "4XX"]),
                            min_size=1,
                            max_size=3,
                            unique=True,
                        )
                    )
                },
            }
            query = draw(
                st.lists(st.sampled_from(["limit", "status", "X-Trace"]), max_size=2, unique=True)
            )
            if query:
                op["parameters"] = [
                    draw(good_parameter(q, "header" if q.startswith("X-") else "query"))
                    for q in query
                ]
            if method in ("post", "put") and draw(st.booleans()):
                op["requestBody"] = {"required": draw(st.booleans()), "content": draw(good_media)}
            item[method] = op
        paths[path] = item
    return {
        "openapi": draw(st.sampled_from(["3.0.3", "3.1.0"])),
        "info": {"title": draw(texts), "version": "1.0.0"},
        "servers": draw(
            st.sampled_from(
                [[], [{"url": "/api/v3"}], [{"url": "https://petstore3.swagger.io/api/v3"}]]
            )
        ),
        "paths": paths,
        "components": {
            "schemas": {
                "Pet": draw(good_schemas.filter(lambda s: "$ref" not in s)),
                "Error": {
                    "type": "object",
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                },
            }
        },
    }


def dump(data: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(data, indent=1)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# Test suites: modules of tests, helpers and imports, valid Python or not.
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True)
modules = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,7}(\.[a-z_][a-z0-9_]{0,7}){0,2}", fullmatch=True),
    st.sampled_from(["os", "pytest", "unittest", "shop.cart", "service", "conftest", "if"]),
)
docstrings = st.text(max_size=40).map(repr)


@st.composite
def python_modules(draw: st.DrawFn) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["import", "from", "try", "func", "class", "case", "text"]))
        if kind == "import":
            parts.append(f"import {draw(modules)}")
        elif kind == "from":
            parts.append(f"from {draw(modules)} import {draw(identifiers)}")
        elif kind == "try":
            parts.append(f"try:\n    import {draw(modules)}\nexcept ImportError:\n    pass")
        elif kind == "func":
            deco = draw(st.sampled_from(["", "@pytest.fixture\n", "@pytest.mark.req('R1')\n"]))
            parts.append(
                f"{deco}def test_{draw(identifiers)}():\n    {draw(docstrings)}\n    assert True"
            )
        elif kind in ("class", "case"):
            base = "(unittest.TestCase)" if kind == "case" else ""
            name = draw(st.sampled_from(["Test", "Check"])) + draw(identifiers)
            methods = "\n".join(
                f"    def test_{draw(identifiers)}(self):\n        {draw(docstrings)}"
                for _ in range(draw(st.integers(0, 3)))
            )
            parts.append(f"class {name}{base}:\n    {draw(docstrings)}\n{methods}")
        else:
            parts.append(draw(st.text(max_size=30)))
    return "\n\n\n".join(parts) + "\n"


suite_names = st.one_of(
    st.sampled_from(
        [
            "test_a.py",
            "sub/test_b.py",
            "b_test.py",
            "helpers.py",
            "conftest.py",
            "README.md",
            "instructions.md",
            "data/x.json",
            "my file.txt",
            "__pycache__/test_c.pyc",
            ".hidden/test_d.py",
            "pkg/__init__.py",
        ]
    ),
    st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True),
)
suites = st.dictionaries(
    suite_names,
    st.one_of(python_modules(), st.text(max_size=60), st.binary(max_size=40)),
    max_size=5,
)


# -- the properties ----------------------------------------------------------------------


@SETTINGS
@given(text=any_text, suffix=st.sampled_from(SUFFIXES), fmt=st.sampled_from(FORMATS))
@example(text="[" * 5000 + "]" * 5000, suffix=".yaml", fmt=None)
@example(text="[" * 100_000, suffix=".json", fmt=None)
@example(text="&a [*a]\n", suffix=".yaml", fmt=None)
@example(text="---\ntitle: &t [*t]\n---\nbody\n", suffix=".md", fmt=None)
@example(text="a: 2024-13-45\n", suffix=".yaml", fmt="ticket")
@example(text="openapi: 3.1.0\nn: " + "9" * 5000 + "\n", suffix=".yaml", fmt=None)
@example(text='{"openapi": "3.1.0", "n": ' + "9" * 5000 + "}", suffix=".json", fmt=None)
@example(text="title: x\x01\n", suffix=".yaml", fmt=None)
@example(text="def test_a():\n    x = " + "-" * 100_000 + "1\n", suffix=".py", fmt=None)
@example(text="def test_a():\n    x = 1" + "+1" * 100_000 + "\n", suffix=".py", fmt=None)
def test_any_text_raises_only_spec_errors(
    workdir: Path, text: str, suffix: str, fmt: str | None
) -> None:
    with fresh(workdir) as d:
        check(write_file(d, suffix, text), fmt)


LAUGHS = "openapi: 3.0.0\na: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
)


@SETTINGS
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES), fmt=st.sampled_from(FORMATS))
@example(data=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", suffix=".md", fmt=None)
@example(data=b"\x00" * 10, suffix=".yaml", fmt=None)
@example(data="title: T\n".encode("utf-16"), suffix=".yaml", fmt=None)
@example(data=b"\xef\xbb\xbf", suffix=".txt", fmt=None)
@example(data=LAUGHS.encode(), suffix=".yaml", fmt=None)
def test_any_bytes_raise_only_spec_errors(
    workdir: Path, data: bytes, suffix: str, fmt: str | None
) -> None:
    with fresh(workdir) as d:
        check(write_file(d, suffix, data), fmt)


@SETTINGS
@given(
    data=json_like,
    as_json=st.booleans(),
    suffix=st.sampled_from([".yaml", ".json", ".schema.json", ".md"]),
    fmt=st.sampled_from(FORMATS),
)
def test_any_json_or_yaml_data_raises_only_spec_errors(
    workdir: Path, data: Any, as_json: bool, suffix: str, fmt: str | None
) -> None:
    text = dump(data, as_json or suffix.endswith(".json"))
    if suffix == ".md":
        text = f"---\n{dump(data, False)}---\nbody\n"
    with fresh(workdir) as d:
        check(write_file(d, suffix, text), fmt)


@SETTINGS
@given(
    ticket=tickets,
    markdown=st.booleans(),
    body=texts,
    files=st.dictionaries(
        st.sampled_from(["test_ok.py", "tests/test_t.py", "tests/helper.py"]), test_code, max_size=2
    ),
)
def test_ticket_shaped_data_raises_only_spec_errors(
    workdir: Path, ticket: dict[str, Any], markdown: bool, body: str, files: dict[str, str]
) -> None:
    with fresh(workdir) as d:
        for name, code in files.items():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(code, encoding="utf-8", errors="surrogatepass")
        if markdown:
            text = f"---\n{dump(ticket, False)}---\n{body}\n"
            path = write_file(d, ".md", text)
        else:
            path = write_file(d, ".yaml", dump(ticket, False))
        check(path)


@SETTINGS
@given(doc=openapi_docs, as_json=st.booleans())
@example(doc={"openapi": "3.0.0", "info": None, "paths": None}, as_json=False)
def test_openapi_shaped_data_raises_only_spec_errors(
    workdir: Path, doc: dict[str, Any], as_json: bool
) -> None:
    with fresh(workdir) as d:
        check(write_file(d, ".json" if as_json else ".yaml", dump(doc, as_json)), "contract")


@SETTINGS
@given(doc=good_openapi_docs(), as_json=st.booleans())
def test_well_formed_openapi_documents_raise_only_spec_errors(
    workdir: Path, doc: dict[str, Any], as_json: bool
) -> None:
    with fresh(workdir) as d:
        check(write_file(d, ".json" if as_json else ".yaml", dump(doc, as_json)))


@SETTINGS
@given(schema=json_schemas, as_json=st.booleans())
@example(schema={"$ref": "#"}, as_json=True)
@example(
    schema={"allOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"not": {"$ref": "#"}}}}, as_json=True
)
@example(schema={"type": "string", "minLength": 10**12}, as_json=True)
@example(schema={"type": "array", "minItems": 10**12, "items": {"type": "integer"}}, as_json=True)
@example(schema={"type": "array", "maxItems": 10**12}, as_json=True)
@example(schema={"type": "number", "minimum": 1e6, "multipleOf": 1e-320}, as_json=True)
@example(schema={"type": "integer", "maximum": float("inf")}, as_json=False)
@example(schema={"multipleOf": 0.5, "examples": [10**400]}, as_json=True)
@example(schema={"$schema": True}, as_json=True)
@example(schema={"$ref": "#anchor"}, as_json=True)
def test_json_schema_shaped_data_raises_only_spec_errors(
    workdir: Path, schema: Any, as_json: bool
) -> None:
    with fresh(workdir) as d:
        path = write_file(d, ".schema.json" if as_json else ".yaml", dump(schema, as_json))
        check(path, "jsonschema")


@SETTINGS
@given(files=suites)
def test_test_suite_shaped_directories_raise_only_spec_errors(
    workdir: Path, files: dict[str, str | bytes]
) -> None:
    with fresh(workdir) as d:
        suite = d / "suite"
        suite.mkdir()
        for name, content in files.items():
            target = suite / name
            if target.exists() or (target.parent.exists() and not target.parent.is_dir()):
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                continue
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_bytes(content.encode("utf-8", "surrogatepass"))
        check(suite)
