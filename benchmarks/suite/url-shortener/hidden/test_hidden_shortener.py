"""Hidden tests of the url-shortener entry: never shown to the agents.

Each test reloads the module, so it starts with an empty in-memory store.
"""

import importlib
import io
import json

import pytest
import service


@pytest.fixture
def app():
    return importlib.reload(service).app


def call(app, method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "/api",
        "PATH_INFO": path,
        "QUERY_STRING": "",
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
    payload = json.loads(chunks) if chunks else None
    return seen["status"], seen["headers"], payload


def test_automatic_codes_count_up_and_skip_taken_ones(app):
    assert call(app, "POST", "/links", {"url": "https://a.example/"})[2]["code"] == "1"
    assert call(app, "POST", "/links", {"url": "https://b.example/", "code": "3"})[0] == 201
    assert call(app, "POST", "/links", {"url": "https://c.example/"})[2]["code"] == "2"
    assert call(app, "POST", "/links", {"url": "https://d.example/"})[2]["code"] == "4"


def test_redirect_counts_visits(app):
    call(app, "POST", "/links", {"url": "http://example.org/page?x=1", "code": "ex"})
    for _ in range(3):
        status, headers, _ = call(app, "GET", "/r/ex")
        assert status == 302
        assert headers["location"] == "http://example.org/page?x=1"
    status, headers, link = call(app, "GET", "/links/ex")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert link == {"code": "ex", "url": "http://example.org/page?x=1", "visits": 3}


def test_list_is_oldest_first(app):
    for code in ("b", "a", "c"):
        call(app, "POST", "/links", {"url": f"https://{code}.example/", "code": code})
    status, _, links = call(app, "GET", "/links")
    assert status == 200
    assert [link["code"] for link in links] == ["b", "a", "c"]


@pytest.mark.parametrize(
    "body",
    [
        {"code": "x"},
        {"url": "mailto:someone@example.com"},
        {"url": "https://ok.example/", "code": "has space"},
        {"url": "https://ok.example/", "extra": 1},
        {"url": 42},
        ["https://ok.example/"],
    ],
)
def test_invalid_new_links(app, body):
    status, _, payload = call(app, "POST", "/links", body)
    assert status == 422
    assert isinstance(payload["error"], str)


def test_body_that_is_not_json(app):
    assert call(app, "POST", "/links", raw=b"{nope")[0] == 422


def test_deleted_link_is_gone(app):
    call(app, "POST", "/links", {"url": "https://x.example/", "code": "x"})
    assert call(app, "DELETE", "/links/x")[0] == 204
    assert call(app, "GET", "/links/x")[0] == 404
    assert call(app, "GET", "/r/x")[0] == 404
    assert call(app, "GET", "/links")[2] == []
