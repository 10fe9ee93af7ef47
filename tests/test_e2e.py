"""The whole factory, end to end: real crew, real tools, real bwrap sandbox, scripted model.

The scripted model is a test tool: it plays examples/playbooks/wordcount.yaml (or a variant
built here), so what is asserted is what the pipeline did with those answers: delegations
made by the real manager, files written by the real tools, tests run in the real sandbox.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerd import docker_engine  # noqa: F401  (a fixture)
from runhelp import (
    NEEDS_BWRAP,
    example_playbook,
    good_code,
    only_run,
    run_spec,
    write_playbook,
)

from darkfactory.cli import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC, main
from darkfactory.reporting.trace import read_trace

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]

REPO = Path(__file__).resolve().parent.parent
ROLES = {"Software Architect", "Software Developer", "QA Engineer", "Technical Writer"}
BUGGY_WORDCOUNT = '''"""wc-like counts (with a bug: words split on single spaces only)."""

import sys


def count(text):
    return {"lines": text.count("\\n"), "words": len(text.split(" ")), "chars": len(text)}


def main(argv=None):
    names = sys.argv[1:] if argv is None else argv
    if not names:
        c = count(sys.stdin.read())
        print(f"{c['lines']} {c['words']} {c['chars']}")
        return 0
    status = 0
    for name in names:
        try:
            with open(name, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            print(f"wordcount: {name}: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        c = count(text)
        print(f"{c['lines']} {c['words']} {c['chars']} {name}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
'''


BYTES_BUG = BUGGY_WORDCOUNT.replace('len(text.split(" "))', "len(text.split())").replace(
    '"chars": len(text)', '"chars": len(text.encode())'
)
LINES_BUG = BUGGY_WORDCOUNT.replace('len(text.split(" "))', "len(text.split())").replace(
    'text.count("\\n")', 'text.count("\\n") + 1'
)


def fix_loop_playbook(*, fixes: list[str]) -> dict[str, Any]:
    """The developer first writes buggy code; each fix round writes the next version."""
    book = example_playbook()
    roles = book["roles"]
    roles["developer"] = [
        {"tool": "write_file", "args": {"path": "wordcount.py", "content": BUGGY_WORDCOUNT}},
        {"answer": "wordcount.py is written."},
    ]
    manager = roles["manager"]
    fix_steps: list[dict[str, Any]] = []
    for i, code in enumerate(fixes):
        fix_steps += [
            {
                "delegate": {
                    "to": "developer",
                    "task": "Fix wordcount.py so that the failing tests pass.",
                    "context": "See the failing tests in the task.",
                },
                # The first fix task must carry the real failing test, its assertion, the
                # failure class and the role it is routed to.
                "expect": []
                if i
                else [
                    "FAILED test_wordcount.py::test_empty_text",
                    "{'words': 1} != {'words': 0}",
                    "classified these failures as: assertion",
                    "Software Developer: delegate the fix to them",
                ],
            },
            {"answer": "The bug is fixed."},
        ]
        roles["developer"] += [
            {"tool": "write_file", "args": {"path": "wordcount.py", "content": code}},
            {"tool": "run_tests", "args": {"paths": ["acceptance"]}},
            {"answer": "wordcount.py is fixed."},
        ]
    # manager: design(2) implement(2) verify(2) | fix rounds | document(2)
    roles["manager"] = manager[:6] + fix_steps + manager[6:]
    return book


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_rehearsal_delivers_through_real_crew_tools_and_sandbox(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "docker":
        request.getfixturevalue("docker_engine")
    out = tmp_path / "runs"
    code = run_spec(out, EXAMPLE_PLAYBOOK, backend=backend)
    assert code == 0
    run = only_run(out)
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "delivered"
    assert report["scripted_model"] is True
    assert report["sandbox"] == backend
    assert report["acceptance"] == {"total": 8, "passed": 8, "failed": 0}
    assert report["unit_tests"] == {"total": 4, "passed": 4, "failed": 0}
    assert report["fix_rounds"] == 0
    # The manager delegated to each of the four roles, each in its own phase.
    by_phase = {(d["phase"], d["coworker"]) for d in report["delegations"]}
    assert by_phase == {
        ("design", "Software Architect"),
        ("implement", "Software Developer"),
        ("qa", "QA Engineer"),
        ("document", "Technical Writer"),
    }
    # Every requirement is proven by at least one passing acceptance test.
    assert [r["id"] for r in report["requirements"]] == [f"R{i}" for i in range(1, 8)]
    assert all(r["passed"] is True and r["tests"] for r in report["requirements"])
    # The workspace holds what the playbook's agents wrote, committed phase by phase.
    ws = run / "workspace"
    for rel in (
        "DESIGN.md",
        "wordcount.py",
        "tests/test_wordcount_unit.py",
        "README.md",
        "docs/index.md",
    ):
        assert (ws / rel).is_file(), rel
    log = subprocess.run(
        ["git", "-C", str(ws), "log", "--format=%s"], capture_output=True, text=True, check=True
    )
    assert [s.split(":")[0] for s in reversed(log.stdout.splitlines())] == [
        "intake",
        "design",
        "implement",
        "qa",
        "docs",
    ]
    # The acceptance tests really ran in the sandbox (the trace has every outcome), and the
    # run directory, which holds model-written files, is its owner's alone.
    assert (run.stat().st_mode & 0o777) == 0o700
    trace = read_trace(run / "trace.jsonl")
    outcomes = [r for r in trace if r["kind"] == "test_outcome" and r["suite"] == "acceptance"]
    assert len(outcomes) == 8 and all(r["outcome"] == "passed" for r in outcomes)
    assert {r["role"] for r in trace if r["kind"] == "llm_call"} == ROLES | {"Engineering Manager"}
    # 21 before the docs check; the tech writer now also writes docs/api.md and mkdocs.yml
    # and runs build_docs and run_doc_examples.
    assert report["llm"]["calls"] == 25
    assert report["docs"]["built"] is True and report["docs"]["examples_run"] == 3
    assert report["llm"]["prompt_tokens"] > 0


def test_fix_loop_sends_real_failure_to_fix_task_and_passes_second_time(tmp_path: Path) -> None:
    good = good_code(example_playbook())
    book = write_playbook(tmp_path, fix_loop_playbook(fixes=[good]))
    out = tmp_path / "runs"
    code = run_spec(out, book)
    run = only_run(out)
    report = json.loads((run / "report.json").read_text())
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    assert report["fix_rounds"] == 1
    first, second = report["verify_rounds"]
    assert first["passed"] is False and first["acceptance"]["failed"] >= 1
    assert second["passed"] is True and second["acceptance"]["passed"] == 8
    # The first verify's real failure: the whitespace test failed in the sandbox.
    trace = read_trace(run / "trace.jsonl")
    failed = {r["test"] for r in trace if r["kind"] == "test_outcome" and r["outcome"] == "failed"}
    assert "test_wordcount.py::test_empty_text" in failed
    assert any(
        d["phase"] == "fix" and d["coworker"] == "Software Developer" for d in report["delegations"]
    )


def test_bug_never_fixed_fails_after_max_fix_rounds(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    factory = yaml.safe_load((config / "factory.yaml").read_text())
    factory["max_fix_rounds"] = 2
    (config / "factory.yaml").write_text(yaml.safe_dump(factory))
    # Each round "fixes" one bug and makes another: the failures change, so it is not stuck.
    book = write_playbook(tmp_path, fix_loop_playbook(fixes=[BYTES_BUG, LINES_BUG]))
    out = tmp_path / "runs"
    code = run_spec(out, book, config=config)
    assert code == 1
    report = json.loads((only_run(out) / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["fix_rounds"] == 2
    assert len(report["verify_rounds"]) == 3
    assert "max_fix_rounds=2" in report["reason"]
    assert not any(d["phase"] == "document" for d in report["delegations"])
    assert not any(r["passed"] is True for r in report["requirements"] if r["id"] == "R3")
    # Its tests ran and failed: failed (red), not "not run".
    assert "failed" in {r["status"] for r in report["requirements"]}
    assert "not run" not in {r["status"] for r in report["requirements"]}


def test_playbook_running_out_fails_the_run_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = example_playbook()
    book["roles"]["tech_writer"] = book["roles"]["tech_writer"][:1]  # no final answer
    path = write_playbook(tmp_path, copy.deepcopy(book))
    out = tmp_path / "runs"
    code = run_spec(out, path)
    assert code == 1
    report = json.loads((only_run(out) / "report.json").read_text())
    assert report["status"] == "failed"
    assert "no step left for role 'tech_writer'" in report["reason"]


SLOW_UNIT_TEST = "import time\n\n\ndef test_slow():\n    time.sleep(4)\n"
PHASES = ["intake", "spec_approval", "design", "implement", "qa", "verify", "document", "deliver"]
CHECKPOINTS = {"spec_approval", "output_review"}  # journaled steps, not phases


def kill_playbook(phase: str) -> tuple[dict[str, Any], str]:
    """A playbook that is slow in ``phase``, and the trace text that shows it got there."""
    book = example_playbook()
    roles = book["roles"]
    if phase == "verify":  # code, not a model: a slow unit test keeps verify busy
        roles["qa_engineer"].insert(
            0,
            {
                "tool": "write_file",
                "args": {"path": "tests/test_slow.py", "content": SLOW_UNIT_TEST},
            },
        )
        return book, '"kind": "phase_start", "phase": "verify"'
    role = {"design": "architect", "implement": "developer", "document": "tech_writer"}[phase]
    steps = roles[role]
    # The role writes a file first (uncommitted work at the kill), then the model is slow.
    # (The writer's is Markdown: a code file from the docs phases is tested again.)
    name = f"partial-{phase}.{'md' if phase == 'document' else 'txt'}"
    steps.insert(0, {"tool": "write_file", "args": {"path": name, "content": "x"}})
    steps[1] = {**steps[1], "delay_s": 4}
    return book, f'"file_op", "phase": "{phase}"'


@pytest.mark.parametrize("phase", ["design", "implement", "verify", "document"])
def test_run_killed_in_a_phase_resumes_to_delivered(
    tmp_path: Path, phase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL mid-phase, then ``darkfactory resume``: finished steps replay, nothing is redone
    that had finished, and no file of the workspace is lost."""
    import os
    import signal
    import sys
    import time

    book, marker = kill_playbook(phase)
    path = write_playbook(tmp_path, book)
    out = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "MODEL"}
    argv = [
        sys.executable,
        "-m",
        "darkfactory",
        "run",
        str(EXAMPLE_SPEC),
        "--model",
        f"scripted:{path}",
        "--sandbox",
        "bwrap",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    trace_file = None
    while time.monotonic() < deadline:
        found = list(out.glob("*/trace.jsonl")) if out.exists() else []
        if found and marker in found[0].read_text():
            trace_file = found[0]
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert trace_file is not None, f"the run never reached {phase}"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run = trace_file.parent
    assert not (run / "report.json").exists()  # it really died mid-run
    ws = run / "workspace"
    committed = set(
        subprocess.run(
            ["git", "-C", str(ws), "ls-files"], capture_output=True, text=True, check=True
        ).stdout.split()
    )

    # The interrupted run is reported as such, from its trace and saved state.
    assert main(["report", run.name, "--out", str(out), "--format", "json"]) == 0
    interrupted = json.loads(capsys.readouterr().out)
    assert interrupted["status"] == "interrupted"
    assert f"darkfactory resume {run.name}" in interrupted["reason"]
    assert read_trace(run / "trace.jsonl")  # the trace up to the kill is readable

    assert main(["resume", run.name, "--out", str(out), "--quiet"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "delivered"
    trace = read_trace(run / "trace.jsonl")
    (resumed,) = [r for r in trace if r["kind"] == "run_resumed"]
    done_before = resumed["after"]
    assert done_before == PHASES[: PHASES.index(phase if phase != "verify" else "verify")]
    starts = [r["phase"] for r in trace if r["kind"] == "phase_start"]
    for finished in set(done_before) - CHECKPOINTS:  # nothing finished was done again
        assert starts.count(finished) == 1, (finished, starts)
    assert starts.count(phase) == 2
    # No file lost: everything committed before the kill is still there, and the killed
    # phase's uncommitted work is kept in the stash.
    now = set(
        subprocess.run(
            ["git", "-C", str(ws), "ls-files"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert committed <= now
    if phase != "verify":
        assert resumed["stashed"] is True
        stash = subprocess.run(
            ["git", "-C", str(ws), "stash", "show", "--include-untracked", "--name-only"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"partial-{phase}." in stash.stdout
    assert main(["resume", run.name, "--out", str(out), "--quiet"]) == 0  # finished: not run again


def test_rehearse_command_json_output_is_pure_json(tmp_path: Path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MODEL"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "darkfactory",
            "rehearse",
            "--sandbox",
            "bwrap",
            "--out",
            str(tmp_path),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # CrewAI's own chatter went to stderr, not into the JSON
    assert report["status"] == "delivered" and report["scripted_model"] is True


def test_markdown_spec_architect_writes_acceptance_tests_then_they_are_frozen(
    tmp_path: Path,
) -> None:
    spec = REPO / "examples" / "specs" / "slugify.md"
    book = REPO / "examples" / "playbooks" / "slugify.yaml"
    out = tmp_path / "runs"
    code = run_spec(out, book, spec=spec)
    assert code == 0
    run = only_run(out)
    report = json.loads((run / "report.json").read_text())
    assert report["spec"]["format"] == "markdown"
    assert report["acceptance"] == {"total": 5, "passed": 5, "failed": 0}
    # Linked by the test_r<N>_ naming convention; every requirement proven.
    assert [(r["id"], r["passed"], len(r["tests"])) for r in report["requirements"]] == [
        (f"R{i}", True, 1) for i in range(1, 6)
    ]
    trace = read_trace(run / "trace.jsonl")
    frozen = [r for r in trace if r["kind"] == "acceptance_frozen"]
    assert frozen and frozen[0]["phase"] == "design" and frozen[0]["files"] == ["test_slugify.py"]
    # The developer's attempt to overwrite an acceptance test after the freeze was refused.
    refused = [r for r in trace if r["kind"] == "file_op" and r["ok"] is False]
    assert [(r["phase"], r["path"]) for r in refused] == [
        ("implement", "acceptance/test_slugify.py")
    ]
    assert "def test_r1_lower_case" in (run / "acceptance" / "test_slugify.py").read_text()
    assert (
        "def test_r1_lower_case"
        in (run / "workspace" / "acceptance" / "test_slugify.py").read_text()
    )


def run_fix_loop(tmp_path: Path, fixes: list[str], *extra: str) -> tuple[int, dict[str, Any], Path]:
    book = write_playbook(tmp_path, fix_loop_playbook(fixes=fixes))
    out = tmp_path / "runs"
    code = run_spec(out, book, *extra)
    run = only_run(out)
    return code, json.loads((run / "report.json").read_text()), run


def test_fix_that_changes_nothing_escalates_instead_of_looping(tmp_path: Path) -> None:
    code, report, _ = run_fix_loop(tmp_path, [BUGGY_WORDCOUNT])  # rewrites the same bug
    assert code == 1
    assert report["status"] == "escalated"
    assert "fix round 1 changed no file" in report["reason"]
    assert report["fix_rounds"] == 1 and len(report["verify_rounds"]) == 1


def test_same_failures_after_a_fix_escalate_as_stuck(tmp_path: Path) -> None:
    cosmetic = BUGGY_WORDCOUNT + "\n# reformatted, same bug\n"
    code, report, run = run_fix_loop(tmp_path, [cosmetic])
    assert code == 1
    assert report["status"] == "escalated"
    assert "left exactly the same failures" in report["reason"]
    assert [r["classes"] for r in report["verify_rounds"]] == [["assertion"], ["assertion"]]
    trace = read_trace(run / "trace.jsonl")
    assert [r["kind"] for r in trace if r["kind"] == "escalation"] == ["escalation"]


def test_spec_ambiguity_reported_by_an_agent_escalates(tmp_path: Path) -> None:
    book = example_playbook()
    book["roles"]["architect"].insert(
        0,
        {
            "tool": "report_ambiguity",
            "args": {
                "question": "Is a trailing line without a newline counted?",
                "reason": "R2 says 'as wc counts them' but R6 examples disagree",
            },
        },
    )
    path = write_playbook(tmp_path, book)
    out = tmp_path / "runs"
    code = run_spec(out, path)
    assert code == 1
    report = json.loads((only_run(out) / "report.json").read_text())
    assert report["status"] == "escalated"
    assert "Is a trailing line without a newline counted?" in report["reason"]
    assert not any(d["phase"] == "implement" for d in report["delegations"])


def test_wrong_qa_test_is_routed_to_the_qa_engineer(tmp_path: Path) -> None:
    book = example_playbook()
    roles = book["roles"]
    wrong = "from wordcount import count\n\n\ndef test_two_words():\n    assert count('a b')['words'] == 3\n"
    right = "from wordcount import count\n\n\ndef test_two_words():\n    assert count('a b')['words'] == 2\n"
    roles["qa_engineer"] = [
        {"tool": "write_file", "args": {"path": "tests/test_unit.py", "content": wrong}},
        {"answer": "tests written"},
        {"tool": "write_file", "args": {"path": "tests/test_unit.py", "content": right}},
        {"answer": "the test expected three words in 'a b'; fixed"},
    ]
    fix = [
        {
            "delegate": {
                "to": "qa_engineer",
                "task": "Fix the unit test.",
                "context": "It contradicts the spec.",
            },
            "expect": [
                "classified these failures as: qa_test",
                "QA Engineer: delegate the fix to them",
            ],
        },
        {"answer": "fixed"},
    ]
    roles["manager"] = roles["manager"][:6] + fix + roles["manager"][6:]
    path = write_playbook(tmp_path, book)
    out = tmp_path / "runs"
    code = run_spec(out, path)
    report = json.loads((only_run(out) / "report.json").read_text())
    assert code == 0, report["reason"]
    assert report["verify_rounds"][0]["classes"] == ["qa_test"]
    assert report["verify_rounds"][0]["route"] == "qa_engineer"
    assert ("fix", "QA Engineer") in {(d["phase"], d["coworker"]) for d in report["delegations"]}


def test_chaos_model_ends_cleanly_with_a_readable_reason(tmp_path: Path) -> None:
    """Garbage, unknown tools, broken JSON, a made-up coworker: bounded, recorded, no crash."""
    chaos = {
        "version": 1,
        "roles": {
            "manager": [
                {"delegate": {"to": "Wizard", "task": "Design it.", "context": "none"}},
                {
                    "raw": 'Thought: hmm\nAction: delegate_work_to_coworker\nAction Input: {"task": "x"'
                },
                {"delegate": {"to": "architect", "task": "Design it.", "context": "none"}},
                {"raw": "I refuse to use the format."},
                {"answer": "done"},
            ],
            "architect": [
                {"tool": "read_file", "args": {"path": "../../etc/passwd"}},
                {"raw": "Thought: x\nAction: hack_the_planet\nAction Input: {}"},
                {"raw": "Thought: x\nAction: write_file\nAction Input: {not json"},
                {"raw": 'Thought: x\nAction: write_file\nAction Input: {"wrong": 1}'},
                {"answer": "I could not do it."},
            ],
        },
    }
    path = write_playbook(tmp_path, chaos)
    out = tmp_path / "runs"
    code = run_spec(out, path, "--max-llm-calls", "40")
    assert code == 1
    run = only_run(out)
    report = json.loads((run / "report.json").read_text())
    # Three protocol errors in a row by the architect fail the phase (engine/protocol.py).
    assert report["status"] == "failed"
    assert "model_protocol" in report["reason"] and "Software Architect" in report["reason"]
    assert report["llm"]["calls"] <= 40
    trace = read_trace(run / "trace.jsonl")
    errors = [(r["role"], r["error"]) for r in trace if r["kind"] == "protocol_error"]
    assert errors[-3:] == [
        ("Software Architect", "unknown_tool"),
        ("Software Architect", "invalid_json"),
        ("Software Architect", "bad_arguments"),
    ]
    calls = [r for r in trace if r["kind"] == "tool_call"]
    # The made-up coworker: tried (a tool call) or refused before it ran (delegation_refused).
    assert any(
        r["tool"] == "delegate_work_to_coworker" and r["args"].get("coworker") == "Wizard"
        for r in calls
    ) or any(r["kind"] == "delegation_refused" and r["coworker"] == "Wizard" for r in trace)
    refused = [r for r in trace if r["kind"] == "file_op" and r["ok"] is False]
    assert [r["path"] for r in refused] == ["../../etc/passwd"]
