"""Record a run against the loopback provider, replay it with no server, catch divergence.

The recording goes through CrewAI's real OpenAI provider (``--model openai/playbook`` with
``BASE_URL`` at the loopback playbook server, ``--record``); the replay uses ``--model
replay:CASSETTE`` in another runs directory with the server stopped.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loopback import (  # noqa: F401  (no_outside_network is a fixture)
    REPO,
    no_outside_network,
    only_run,
    outside_network_refused,
    report_of,
    run,
    server_for,
)
from runhelp import NEEDS_BWRAP

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.models.cassette import Cassette, CassetteError, Normaliser, request_of, short_diff
from darkfactory.reporting.trace import read_trace

needs_bwrap = NEEDS_BWRAP
SECRET = "sk-test-cassette-0123456789SECRET"
IGNORED = {".git", "__pycache__", ".pytest_cache", "site"}


@dataclass
class Recording:
    cassette: Path
    run_dir: Path
    port: int


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    """One run of the example spec against the loopback server, recorded (with a key set)."""
    tmp = tmp_path_factory.mktemp("recording")
    cassette = tmp / "wordcount.cassette.jsonl"
    with outside_network_refused(), pytest.MonkeyPatch.context() as mp, server_for() as server:
        mp.setenv("BASE_URL", server.base_url)
        mp.setenv("OPENAI_API_KEY", SECRET)  # the server takes any key; none is recorded
        code = run(tmp / "runs", "--record", str(cassette))
        port = server.port
    assert code == 0, report_of(tmp / "runs")["reason"]
    yield Recording(cassette, only_run(tmp / "runs"), port)


def files(workspace: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in sorted(workspace.rglob("*"))
        if p.is_file() and not IGNORED & set(p.relative_to(workspace).parts)
    }


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What a replay must reproduce: outcomes, requirements, calls and tokens per role."""
    return {
        "status": report["status"],
        "reason": report["reason"],
        "requirements": report["requirements"],
        "acceptance": report["acceptance"],
        "unit_tests": report["unit_tests"],
        "fix_rounds": report["fix_rounds"],
        "verify_rounds": report["verify_rounds"],
        "delegations": [(d["phase"], d["coworker"]) for d in report["delegations"]],
        "docs": {k: report["docs"][k] for k in ("built", "pages", "examples_run", "passed")},
        "calls": report["llm"]["calls"],
        "tokens": {
            role: (v["calls"], v["prompt_tokens"], v["completion_tokens"])
            for role, v in report["llm"]["by_role"].items()
        },
    }


@needs_bwrap
@pytest.mark.e2e
@pytest.mark.usefixtures("no_outside_network")
def test_replay_without_a_server_makes_the_same_workspace_and_report(
    recording: Recording, tmp_path: Path
) -> None:
    text = recording.cassette.read_text(encoding="utf-8")
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["kind"] == "cassette" and lines[0]["roles"]["Software Developer"] == {
        "key": "developer",
        "model": "openai/playbook",
        "function_calling": True,
        "stop_words": True,
        "context_window": lines[0]["roles"]["Software Developer"]["context_window"],
    }
    exchanges = lines[1:]
    assert len(exchanges) == 25
    assert any("tool_calls" in e["response"] for e in exchanges)  # native tool calls recorded
    # Nothing listens where the recording's server was: a replay that tried would fail.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", recording.port), 1):
        pass

    out = tmp_path / "replayed"
    assert run(out, model=f"replay:{recording.cassette}") == 0
    replayed = only_run(out)
    assert replayed.parent != recording.run_dir.parent  # another run directory
    assert files(replayed / "workspace") == files(recording.run_dir / "workspace")
    original = json.loads((recording.run_dir / "report.json").read_text())
    again = report_of(out)
    assert again["status"] == "delivered"
    assert comparable(again) == comparable(original)
    assert again["llm"]["cost_usd"] == 0  # a replay costs nothing
    assert set(again["llm"]["models"].values()) == {f"replay:{recording.cassette}"}


@needs_bwrap
@pytest.mark.e2e
@pytest.mark.usefixtures("no_outside_network")
def test_replay_after_a_task_text_change_stops_at_the_first_differing_call(
    recording: Recording, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    tasks = config / "tasks.yaml"
    old = "The Software Developer writes the code in the workspace root"
    new = "The Software Developer writes tidy code in the workspace root"
    assert old in tasks.read_text()
    tasks.write_text(tasks.read_text().replace(old, new))
    out = tmp_path / "replayed"
    assert run(out, model=f"replay:{recording.cassette}", config=config) == 1
    report = report_of(out)
    assert report["status"] == "failed"
    reason = report["reason"]
    # The manager's 3rd call is the first to carry the implement task: design replayed fine.
    assert "replay diverged at call 3 of role 'Engineering Manager'" in reason, reason
    assert f"cassette {recording.cassette}, line " in reason
    assert f"-  {old}" in reason and f"+  {new}" in reason
    trace = read_trace(only_run(out) / "trace.jsonl")
    assert [r["phase"] for r in trace if r["kind"] == "phase_start"] == [
        "intake",
        "design",
        "implement",
    ]
    assert trace[-1]["kind"] == "run_end" and "replay diverged" in trace[-1]["reason"]


def test_a_missing_or_broken_cassette_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(REPO / "examples" / "specs" / "wordcount.yaml")
    missing = tmp_path / "missing.jsonl"
    assert main(["run", spec, "--model", f"replay:{missing}", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: cassette not found" in err and "--record" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "cassette", "version": 1, "roles": {}}\nnot json\n')
    assert main(["run", spec, "--model", f"replay:{broken}", "--out", str(tmp_path)]) == 2
    assert f"{broken}:2: not a JSON line" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/report.json"))
    unwritable = Path("/proc/no-such-dir/run.cassette.jsonl")
    argv = ["run", spec, "--model", f"scripted:{EXAMPLE_PLAYBOOK}", "--record", str(unwritable)]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert f"{unwritable}: cannot write the cassette" in capsys.readouterr().err
    with pytest.raises(CassetteError, match="is not 1"):
        broken.write_text('{"kind": "cassette", "version": 99}\n')
        Cassette.load(broken)
    with pytest.raises(CassetteError, match=":2: not a JSON line: nested too deeply"):
        broken.write_text(
            '{"kind": "cassette", "version": 1, "roles": {}}\n' + "[" * 100_000 + "\n"
        )
        Cassette.load(broken)
    with pytest.raises(CassetteError, match="not UTF-8 text"):
        broken.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        Cassette.load(broken)


def test_run_values_are_normalised_so_replays_match_in_another_directory(
    tmp_path: Path,
) -> None:
    first = Normaliser.for_run(tmp_path / "runs" / "20250101-run-aaaa", "20250101-run-aaaa")
    second = Normaliser.for_run(tmp_path / "other" / "20260202-run-bbbb", "20260202-run-bbbb")

    def request(norm: Normaliser, run_dir: str, run_id: str, when: str, took: str) -> Any:
        messages = [
            {"role": "system", "content": "You are Software Developer."},
            {
                "role": "user",
                "content": f"Workspace {run_dir}/workspace of run {run_id}; it is {when}. "
                f"8 passed in {took}s; <object at 0x7f3a2b1c9d80>",
            },
        ]
        return norm.apply(request_of(messages, None), norm.text)

    a = request(
        first, first.values["<RUN_DIR>"], "20250101-run-aaaa", "2025-01-01T10:00:00Z", "0.31"
    )
    b = request(
        second, second.values["<RUN_DIR>"], "20260202-run-bbbb", "2026-02-02 11:12:13", "1.05"
    )
    assert a == b
    assert "<RUN_DIR>/workspace of run <RUN_ID>" in a["messages"][1]["content"]
    # A recorded answer naming the run's directory names the replaying run's.
    answer = first.exact(f"wrote {first.values['<RUN_DIR>']}/workspace/x.py")
    assert second.restore(answer) == f"wrote {second.values['<RUN_DIR>']}/workspace/x.py"
    # A real change still shows, as a short diff.
    changed = json.loads(json.dumps(b))
    changed["messages"][1]["content"] += " Be brief."
    diff = short_diff(a, changed)
    assert diff.startswith("--- recorded\n+++ this run\n") and "+  " in diff
