"""``darkfactory doctor``: the model (through the loopback server), sandbox and docs checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopback import no_outside_network, server_for  # noqa: F401  (a fixture)
from runhelp import NEEDS_BWRAP

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.cli.doctor import run_checks

pytestmark = [
    pytest.mark.usefixtures("no_outside_network"),
    NEEDS_BWRAP,
]


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def test_all_good_with_a_model_that_answers_and_calls_tools(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with server_for() as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        code, out = doctor(capsys, "--model", "openai/playbook")
        served = server.served
    assert code == 0, out
    assert "ok    model openai/playbook (every role): reachable, answered in" in out
    assert "calls tools natively" in out
    assert "ok    sandbox bwrap: works" in out
    assert "ok    docs toolchain" in out
    assert out.rstrip().endswith("all good")
    # One tiny call, offering one tool, and no retries.
    assert len(served) == 1 and served[0].tools == ["ping"]


def test_a_provider_that_does_not_answer_fails_with_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with server_for() as server:
        url = server.base_url
    monkeypatch.setenv("BASE_URL", url)  # nothing listens there any more
    code, out = doctor(capsys, "--model", "openai/playbook")
    assert code == 2, out
    assert "FAIL  model openai/playbook (every role): not usable (connection failed)" in out
    assert f"fix: nothing answers at BASE_URL={url}: start the server, or correct BASE_URL" in out
    assert "some checks failed" in out


def test_a_hung_provider_times_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with server_for() as server:
        server.inject("timeout", delay_s=5)
        monkeypatch.setenv("BASE_URL", server.base_url)
        code, out = doctor(capsys, "--model", "openai/playbook", "--timeout", "0.5")
    assert code == 2, out
    assert "not usable (timed out)" in out and "no answer within 0.5s" in out
    assert len(server.served) == 1  # no retry


def test_a_refused_key_is_named_and_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "sk-doctor-WRONG-0123456789"
    with server_for(api_key="sk-doctor-right-0123456789") as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
        code, out = doctor(capsys, "--model", "openai/playbook", "--json")
    assert code == 2
    assert wrong not in out
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    model = checks["model openai/playbook (every role)"]
    assert model["status"] == "FAIL" and "HTTP 401" in model["detail"]
    assert "[redacted]" in model["detail"]
    assert model["fix"] == "the provider refused the key: check OPENAI_API_KEY"


def test_scripted_and_replay_models_are_skipped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(capsys, "--model", f"scripted:{EXAMPLE_PLAYBOOK}")
    assert code == 0, out
    assert "skip  model scripted:" in out and "a playbook, not AI" in out
    missing = tmp_path / "none.jsonl"
    code, out = doctor(capsys, "--model", f"replay:{missing}")
    assert code == 2
    assert f"FAIL  model replay:{missing} (every role): {missing}: cassette not found" in out


def test_no_model_configured() -> None:
    checks = {c.name: c for c in run_checks()}
    assert checks["model"].status == "FAIL"
    assert checks["model"].detail == "no model is configured"
    assert "MODEL" in checks["model"].fix


def test_env_example_names_a_model_and_holds_no_key() -> None:
    from dotenv import dotenv_values

    from darkfactory.models import PROVIDER_KEYS

    example = Path(__file__).resolve().parent.parent / ".env.example"
    values = dotenv_values(example)
    assert values["MODEL"] == "openai/gpt-4o-mini"
    assert values["OPENAI_API_KEY"] == ""  # to fill in; never a real key in the repository
    text = example.read_text(encoding="utf-8")
    for needle in ("ANTHROPIC_API_KEY", "ollama/", "hosted_vllm/", "BASE_URL=", "SPEC="):
        assert needle in text
    assert set(PROVIDER_KEYS["openai"]) <= set(values)
