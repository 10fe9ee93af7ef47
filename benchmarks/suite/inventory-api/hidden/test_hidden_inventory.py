"""Hidden tests of the inventory-api entry: never shown to the agents.

Each test reloads the module, so it starts with an empty in-memory inventory.
"""

import importlib
import io
import json

import pytest
import service


@pytest.fixture
def app():
    return importlib.reload(service).app


def call(app, method, path, body=None, query=""):
    data = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "/v1",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
    }
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = {k.lower(): v for k, v in headers}

    chunks = b"".join(app(environ, start_response))
    return seen["status"], json.loads(chunks) if chunks else None


def add(app, sku, quantity, name="thing"):
    status, item = call(app, "POST", "/items", {"sku": sku, "name": name, "quantity": quantity})
    assert status == 201, item
    return item


def test_list_is_sorted_by_sku_and_filtered(app):
    add(app, "ZED1", 3)
    add(app, "ABC", 10)
    add(app, "MID22", 5)
    status, items = call(app, "GET", "/items")
    assert status == 200
    assert [i["sku"] for i in items] == ["ABC", "MID22", "ZED1"]
    _, low = call(app, "GET", "/items", query="max_quantity=5")
    assert [i["sku"] for i in low] == ["MID22", "ZED1"]
    _, none = call(app, "GET", "/items", query="max_quantity=0")
    assert none == []


def test_adjust_up_and_down(app):
    add(app, "BOLT10", 40)
    assert call(app, "PATCH", "/items/BOLT10", {"delta": 5})[1]["quantity"] == 45
    assert call(app, "PATCH", "/items/BOLT10", {"delta": -45})[1]["quantity"] == 0


def test_refused_adjustment_changes_nothing(app):
    add(app, "BOLT10", 2)
    status, error = call(app, "PATCH", "/items/BOLT10", {"delta": -3})
    assert status == 409
    assert isinstance(error["error"], str)
    assert call(app, "GET", "/items/BOLT10")[1]["quantity"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "ab", "name": "x", "quantity": 1},
        {"sku": "lower1", "name": "x", "quantity": 1},
        {"sku": "OK123", "name": "", "quantity": 1},
        {"sku": "OK123", "name": "x", "quantity": 1.5},
        {"sku": "OK123", "name": "x", "quantity": True},
        {"sku": "OK123", "name": "x"},
        {"sku": "OK123", "name": "x", "quantity": 1, "colour": "red"},
    ],
)
def test_invalid_items(app, body):
    assert call(app, "POST", "/items", body)[0] == 422
    assert call(app, "GET", "/items")[1] == []


@pytest.mark.parametrize("body", [{}, {"delta": "3"}, {"delta": 1.5}, {"delta": 1, "x": 2}])
def test_invalid_adjustments(app, body):
    add(app, "BOLT10", 4)
    assert call(app, "PATCH", "/items/BOLT10", body)[0] == 422
    assert call(app, "GET", "/items/BOLT10")[1]["quantity"] == 4


def test_duplicate_keeps_the_first(app):
    add(app, "BOLT10", 4, name="first")
    assert call(app, "POST", "/items", {"sku": "BOLT10", "name": "second", "quantity": 1})[0] == 409
    assert call(app, "GET", "/items/BOLT10")[1] == {"sku": "BOLT10", "name": "first", "quantity": 4}
