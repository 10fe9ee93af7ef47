"""A model name is checked with its provider before anything runs, over loopback only.

The playbook server (``darkfactory.models.testserver``) lists its models at ``GET /v1/models``
as OpenAI does; small stand-ins for Anthropic's and Gemini's model endpoints show their
lookups. A wrong name stops ``run`` and ``validate --model`` with exit code 2 and no run
directory; a provider that cannot say lets the run go on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from loopback import config_copy, no_outside_network, server_for  # noqa: F401  (a fixture)

from darkfactory.cli import EXAMPLE_SPEC, main
from darkfactory.models.catalog import API_URLS, ModelCatalog

pytestmark = pytest.mark.usefixtures("no_outside_network")

MODELS = ("gpt-4o-mini", "gpt-4o", "playbook")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_wrong_name_stops_the_run_before_its_directory_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    with server_for(models=MODELS) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code, _, err = cli(
            capsys, "run", str(EXAMPLE_SPEC), "--model", "openai/gpt-4o-mni", "--out", str(out)
        )
    assert code == 2
    assert not out.exists()
    assert "model 'openai/gpt-4o-mni' (every role, set by --model) is not one the provider " in err
    assert f"GET {server.base_url}/models lists 3 models" in err
    assert "hint: did you mean openai/gpt-4o-mini or openai/gpt-4o?" in err
    assert "Traceback" not in err
    assert server.model_lists == 1  # one request for the five roles
    assert server.served == []  # and no model call


def test_validate_model_checks_the_name_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with server_for(models=MODELS) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code, _, err = cli(capsys, "validate", str(EXAMPLE_SPEC), "--model", "openai/gpt4o-mini")
        assert code == 2 and "did you mean openai/gpt-4o-mini" in err
        code, text, _ = cli(capsys, "validate", str(EXAMPLE_SPEC), "--model", "openai/gpt-4o")
        assert code == 0
        assert text.splitlines()[-1] == (
            f"model openai/gpt-4o: ok, the provider has it (listed by GET {server.base_url}/models)"
        )
        code, text, _ = cli(
            capsys, "validate", str(EXAMPLE_SPEC), "--model", "openai/playbook", "--json"
        )
        assert code == 0
        assert json.loads(text)["models"] == [
            {
                "model": "openai/playbook",
                "known": True,
                "note": f"listed by GET {server.base_url}/models",
                "close": [],
                "asked": True,
            }
        ]
    # No --model: validate asks no provider (it stays fast and offline).
    assert server.model_lists == 3


def test_a_provider_that_cannot_say_is_not_a_wrong_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening, or a key the list refuses (401 repeating the key): checked no
    further, said so without the key, exit 0."""
    monkeypatch.setenv("BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    code, text, _ = cli(capsys, "validate", str(EXAMPLE_SPEC), "--model", "openai/anything")
    assert code == 0
    assert text.splitlines()[-1].startswith(
        "model openai/anything: could not check the name (GET http://127.0.0.1:9/v1/models failed: "
    )
    secret = "sk-test-0123456789abcdefWRONG"
    with server_for(api_key="sk-test-the-right-key-000") as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        code, text, err = cli(capsys, "validate", str(EXAMPLE_SPEC), "--model", "openai/nope")
    assert code == 0
    assert text.splitlines()[-1] == (
        f"model openai/nope: could not check the name (GET {server.base_url}/models "
        "answered HTTP 401)"
    )
    assert secret not in text + err


def test_check_model_false_asks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_copy(tmp_path)
    factory = yaml.safe_load((config / "factory.yaml").read_text())
    factory["llm"]["check_model"] = False
    (config / "factory.yaml").write_text(yaml.safe_dump(factory))
    with server_for(models=MODELS) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code, text, _ = cli(
            capsys, "validate", str(EXAMPLE_SPEC), "--config", str(config), "--model", "openai/x"
        )
    assert code == 0
    assert text.splitlines()[-1] == "model openai/x: name not checked (llm.check_model is false)"
    assert server.model_lists == 0


def test_a_model_of_an_agents_yaml_role_is_named_with_its_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_copy(tmp_path)
    agents = yaml.safe_load((config / "agents.yaml").read_text())
    agents["manager"]["llm"] = "openai/gpt-4o-maxi"
    (config / "agents.yaml").write_text(yaml.safe_dump(agents, sort_keys=False))
    out = tmp_path / "runs"
    with server_for(models=MODELS) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        monkeypatch.setenv("MODEL", "openai/playbook")
        code, _, err = cli(
            capsys, "run", str(EXAMPLE_SPEC), "--config", str(config), "--out", str(out)
        )
    assert code == 2 and not out.exists()
    assert "model 'openai/gpt-4o-maxi' (role manager, set by agents.yaml manager.llm)" in err
    assert "did you mean openai/gpt-4o-mini" in err
    assert "playbook" not in err.split("hint:")[0]  # the other roles' model is fine


def test_groq_is_asked_with_its_own_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """groq's model list is OpenAI-compatible: the playbook server stands in for it, and
    refuses any key but the one in GROQ_API_KEY."""
    assert API_URLS["groq"] == "https://api.groq.com/openai/v1"
    key = "gsk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-groqs-0000000")
    monkeypatch.setenv("GROQ_API_KEY", key)
    with server_for(models=MODELS, api_key=key) as server:
        catalog = ModelCatalog(api_urls={"groq": server.base_url})
        ok = catalog.check("groq/gpt-4o")
        assert (ok.known, ok.note) == (True, f"listed by GET {server.base_url}/models")
        wrong = catalog.check("groq/gpt-4o-mni")
        assert wrong.known is False
        assert wrong.close[:2] == ("groq/gpt-4o-mini", "groq/gpt-4o")
        # A run or validate stops on it (BASE_URL: the same server for every provider).
        monkeypatch.setenv("BASE_URL", server.base_url)
        code, _, err = cli(capsys, "validate", str(EXAMPLE_SPEC), "--model", "groq/gpt-4o-mni")
    assert code == 2
    assert "hint: did you mean groq/gpt-4o-mini or groq/gpt-4o?" in err
    assert key not in err
    assert server.model_lists == 2  # once for the catalog's two names, once for validate


# -- Anthropic's and Gemini's model endpoints, stood in for on loopback ------------------------
class _Stub(BaseHTTPRequestHandler):
    """``/v1/models[/ID]`` as Anthropic answers, ``/v1beta/models[/NAME]`` as Gemini does."""

    ANTHROPIC: ClassVar = {
        "claude-sonnet-4-5-20250929": ["claude-sonnet-4-5"],
        "claude-haiku-4-5": [],
    }
    GEMINI = ("gemini-2.5-flash", "gemini-2.5-pro")
    #: Each request's path and headers (names in lower case).
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        _Stub.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        path = self.path.split("?", 1)[0]
        if path.startswith("/anthropic/models"):
            name = path.removeprefix("/anthropic/models").strip("/")
            if not name:
                self._json(200, {"data": [{"id": i} for i in self.ANTHROPIC], "has_more": False})
                return
            found = next((i for i, al in self.ANTHROPIC.items() if name == i or name in al), None)
            self._json(200, {"id": found}) if found else self._json(404, {"type": "error"})
        elif path.startswith("/gemini/models"):
            name = path.removeprefix("/gemini/models").strip("/")
            if not name:
                self._json(200, {"models": [{"name": f"models/{m}"} for m in self.GEMINI]})
            elif name in self.GEMINI:
                self._json(200, {"name": f"models/{name}"})
            else:
                self._json(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        else:
            self._json(404, {})


@pytest.fixture
def stub() -> Iterator[ModelCatalog]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    _Stub.seen.clear()
    try:
        yield ModelCatalog(api_urls={"anthropic": f"{base}/anthropic", "gemini": f"{base}/gemini"})
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_anthropic_resolves_aliases_and_suggests_close_names(
    stub: ModelCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-000000")
    ok = stub.check("anthropic/claude-sonnet-4-5")  # an alias, not in the list
    assert ok.known is True and ok.note.startswith("found by GET http://127.0.0.1:")
    assert _Stub.seen[-1][1]["x-api-key"] == "sk-ant-test-000000"
    assert _Stub.seen[-1][1]["anthropic-version"] == "2023-06-01"
    wrong = stub.check("anthropic/claude-haiku-4.5")
    assert wrong.known is False and wrong.note.endswith("answered HTTP 404")
    assert wrong.close == ("anthropic/claude-haiku-4-5",)


def test_gemini_is_asked_by_name_and_listed_for_close_names(
    stub: ModelCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-000000")
    assert stub.check("gemini/gemini-2.5-flash").known is True
    assert _Stub.seen[-1][1]["x-goog-api-key"] == "gm-test-000000"
    assert "key=" not in _Stub.seen[-1][0]  # the key travels in a header, not the URL
    wrong = stub.check("gemini/gemini-2.5-flahs")
    assert (wrong.known, wrong.close[0]) == (False, "gemini/gemini-2.5-flash")
    # Providers it has no list for are not asked.
    assert stub.check("bedrock/anthropic.claude-v2").asked is False
