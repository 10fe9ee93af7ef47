"""The sealed holdout: a developer who hard-codes the visible tests is caught by the sealed ones.

The wordcount spec's acceptance tests get a marker in every assertion message; a sealed test's
marker must never reach a prompt (the recorded cassette), the trace or the workspace.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from darkfactory.cli import EXAMPLE_SPEC
from darkfactory.engine import holdout
from darkfactory.sandbox.base import ExecResult
from darkfactory.sandbox.testrun import TestOutcome, TestRun
from darkfactory.spec import AcceptanceTest
from darkfactory.spec.loader import load_spec
from tests.runhelp import (
    NEEDS_BWRAP,
    config_with,
    example_playbook,
    good_code,
    only_run,
    report_of,
    run_spec,
)

SHARE = 0.3

#: Each acceptance test's inputs to count() (the CLI tests' through a file or stdin).
INPUTS = {
    "test_keys": ["a b\n"],
    "test_empty_text": [""],
    "test_lines_count_newlines": ["one\ntwo\nthree", "one\ntwo\n"],
    "test_words_split_on_any_whitespace": ["a  b\tc\n\nd "],
    "test_chars_not_bytes": ["héllo wörld"],
    "test_cli_file": ["hello world\nbye\n"],
    "test_cli_stdin": ["a b c\n"],
    "test_cli_missing_file": [],
}


def marker(test: str) -> str:
    return f"holdout-marker-{test}"


def marked_spec(tmp_path: Path) -> Path:
    """The wordcount spec, every assertion without a message given its test's marker."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    code = data["acceptance_tests"][0]["code"]
    out, current = [], ""
    for line in code.splitlines():
        found = re.match(r"def (test_\w+)", line)
        current = found.group(1) if found else current
        node = ast.parse(line.strip()).body[0] if line.strip().startswith("assert ") else None
        if isinstance(node, ast.Assert) and node.msg is None:
            line += f', "{marker(current)}"'
        out.append(line)
    data["acceptance_tests"][0]["code"] = "\n".join(out) + "\n"
    path = tmp_path / "wordcount.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def sealed_names(spec: Path) -> set[str]:
    parts = holdout.split(load_spec(spec).acceptance_tests, SHARE)
    return {key.split("::")[1] for key in parts.holdout.sealed}


def cheating_code(visible: set[str]) -> str:
    """wordcount.py that answers the visible tests' inputs from a table, anything else 0."""
    honest: dict[str, Any] = {}
    exec(good_code(example_playbook()), honest)  # the expected values, as a cheat copies them
    table = {text: honest["count"](text) for t in sorted(visible) for text in INPUTS[t]}
    main = good_code(example_playbook()).split("def main", 1)[1]
    return (
        "import sys\n\n"
        f"_SEEN = {table!r}\n\n\n"
        "def count(text):\n"
        '    return dict(_SEEN.get(text, {"lines": 0, "words": 0, "chars": 0}))\n\n\n'
        f"def main{main}"
    )


def cheating_playbook(visible: set[str], *, fixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The developer hard-codes the visible values (and tries to read the sealed tests); the
    QA engineer tests the same values; each fix round writes the next version."""
    book = example_playbook()
    roles = book["roles"]
    roles["developer"] = [
        {"tool": "list_files", "args": {}},
        {"tool": "run_command", "args": {"argv": ["ls", "-R", "/sealed", "/acceptance"]}},
        {"tool": "write_file", "args": {"path": "wordcount.py", "content": cheating_code(visible)}},
        {"tool": "run_tests", "args": {"paths": ["acceptance"]}},
        {"answer": "wordcount.py passes every acceptance test."},
    ]
    roles["qa_engineer"] = [
        {
            "tool": "write_file",
            "args": {
                "path": "tests/test_wordcount_unit.py",
                "content": "from wordcount import count\n\n\ndef test_empty():\n"
                '    assert count("") == {"lines": 0, "words": 0, "chars": 0}\n',
            },
        },
        {"answer": "tests/test_wordcount_unit.py is written."},
    ]
    fix_steps: list[dict[str, Any]] = []
    for code in fixes:
        fix_steps += [
            {
                "delegate": {
                    "to": "developer",
                    "task": "Make wordcount.py meet the requirements for every input.",
                    "context": "Sealed tests failed.",
                },
                # The fix task names the sealed failures: test, requirement, exception type.
                "expect": ["## Sealed acceptance tests", "(proves R3): AssertionError"],
            },
            {"answer": "Fixed."},
        ]
        roles["developer"] += [
            {"tool": "write_file", "args": {"path": "wordcount.py", "content": code}},
            {"answer": "wordcount.py counts any text now."},
        ]
    manager = roles["manager"]
    roles["manager"] = manager[:6] + fix_steps + manager[6:]
    return book


def texts(value: Any) -> str:
    """Every string in a JSON value (decoded), one a line."""
    if isinstance(value, str):
        return value + "\n"
    if isinstance(value, dict):
        return "".join(texts(v) for v in value.values())
    if isinstance(value, list):
        return "".join(texts(v) for v in value)
    return ""


def agent_visible_text(run: Path, cassette: Path) -> str:
    """All a model was sent, the trace, the workspace's files and its whole git history."""
    out = [texts(json.loads(line)) for line in cassette.read_text().splitlines() if line]
    out += [texts(json.loads(line)) for line in (run / "trace.jsonl").read_text().splitlines()]
    ws = run / "workspace"
    out += [
        p.read_text(errors="replace")
        for p in ws.rglob("*")
        if p.is_file() and ".git" not in p.parts
    ]
    history = subprocess.run(
        ["git", "-C", str(ws), "log", "-p", "--all"], capture_output=True, text=True, check=True
    )
    return "\n".join([*out, history.stdout])


def assert_sealed_stay_sealed(run: Path, cassette: Path, sealed: set[str]) -> None:
    seen = agent_visible_text(run, cassette)
    for test in INPUTS:
        if test in sealed:
            assert marker(test) not in seen, test
            assert f"def {test}(" not in seen, test
        else:  # the visible tests do reach the prompts: the search would find a leak
            assert marker(test) in seen, test
    # The sealed copy exists only outside the workspace, and no work copy is left behind.
    assert all(marker(t) in (run / "sealed" / "test_wordcount.py").read_text() for t in sealed)
    assert not (run / holdout.SEALED_WORK).exists()


# -- the split ------------------------------------------------------------------------------


def test_split_seals_a_share_of_test_functions_the_same_way_every_time() -> None:
    tests = load_spec(EXAMPLE_SPEC).acceptance_tests
    first, again = holdout.split(tests, SHARE), holdout.split(tests, SHARE)
    assert first.holdout == again.holdout
    assert len(first.holdout.sealed) == 2 and len(first.holdout.visible) == 6  # round(0.3 * 8)
    visible, sealed = first.visible[0].content, first.sealed[0].content
    for key in first.holdout.sealed:
        name = key.split("::")[1]
        assert f"def {name}(" in sealed and f"def {name}(" not in visible
    for key in first.holdout.visible:
        name = key.split("::")[1]
        assert f"def {name}(" in visible and f"def {name}(" not in sealed
    assert "def run_cli(" in visible and "def run_cli(" in sealed  # helpers stay in both
    assert holdout.split(tests, 0).holdout.sealed == []
    one = [AcceptanceTest(name="test_a.py", content="def test_a():\n    pass\n")]
    assert holdout.split(one, 0.9).holdout.sealed == []  # never every test
    conftest = AcceptanceTest(name="conftest.py", content="X = 1\n")
    parts = holdout.split([*tests, conftest], 0.99)
    assert len(parts.holdout.visible) == 1
    assert conftest in parts.visible and conftest in parts.sealed


def test_a_sealed_failure_reaches_a_prompt_as_name_requirement_and_exception_type() -> None:
    rewritten = (
        "E       AssertionError: holdout-marker-x\n"
        "E       assert 0 == 4\n"
        "E        +  where 0 = count('a  b')\n"
        "test_wordcount.py:33: AssertionError"
    )
    crash = "E   KeyError: 'words'\nwordcount.py:9: KeyError"
    run = TestRun(
        [
            TestOutcome(
                "test_wordcount.py::test_w", "test_wordcount.py", "test_w", "failed", 0.1, rewritten
            ),
            TestOutcome(
                "test_wordcount.py::test_k", "test_wordcount.py", "test_k", "error", 0.1, crash
            ),
            TestOutcome("test_wordcount.py::test_p", "test_wordcount.py", "test_p", "passed", 0.1),
        ],
        ExecResult(1, "", "", 0.5),
        collection_error="ImportError while importing test_wordcount.py: count('secret')",
    )
    text = holdout.sealed_summary(run, {"test_wordcount.py::test_w": ["R3"]})
    assert "FAILED test_wordcount.py::test_w (proves R3): AssertionError" in text
    assert "ERROR test_wordcount.py::test_k: KeyError" in text
    assert "3 sealed tests: 1 passed, 1 failed, 1 errors" in text
    for secret in ("marker", "count(", "0 == 4", "'words'", "secret"):
        assert secret not in text
    assert holdout.exception_type("E       assert 1 == 2") == "AssertionError"
    assert holdout.exception_type("something odd") == "an exception"


# -- whole runs -----------------------------------------------------------------------------


@NEEDS_BWRAP
@pytest.mark.e2e
def test_developer_hard_coding_the_visible_tests_is_not_delivered(tmp_path: Path) -> None:
    spec = marked_spec(tmp_path)
    sealed = sealed_names(spec)
    visible = set(INPUTS) - sealed
    # The cheat fails a sealed test only if one has inputs it does not know.
    assert any(INPUTS[t] and t not in ("test_keys", "test_empty_text") for t in sealed), sealed
    out, cassette = tmp_path / "runs", tmp_path / "cassette.jsonl"
    config = config_with(tmp_path, holdout=SHARE, max_fix_rounds=0)
    code = run_spec(
        out, cheating_playbook(visible), "--record", str(cassette), spec=spec, config=config
    )
    run = only_run(out)
    report = report_of(run)
    assert code == 1 and report["status"] == "failed", report["reason"]
    # Shown failing the sealed tests, passing every visible one.
    held = report["holdout"]
    assert held["visible"] == {"total": 6, "passed": 6, "rate": 1.0}
    assert held["sealed"]["total"] == 2 and held["sealed"]["passed"] < 2
    assert {k.split("::")[1] for k in held["sealed_tests"]} == sealed
    assert report["acceptance"] == {"total": 6, "passed": 6, "failed": 0}
    assert (
        "Shadow score (sealed holdout): visible 6/6 (100%), sealed "
        in (run / "report.md").read_text()
    )
    assert "Shadow score" in (run / "report.html").read_text()
    # The requirement matrix counts the sealed tests: a requirement they prove is failed.
    failed = {r["id"] for r in report["requirements"] if r["status"] == "failed"}
    assert failed and all(
        any(t.split("::")[1] in sealed for t in r["tests"])
        for r in report["requirements"]
        if r["id"] in failed
    )
    trace = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    (event,) = [r for r in trace if r["kind"] == "holdout_sealed"]
    assert {k.split("::")[1] for k in event["sealed"]} == sealed and event["visible"] == 6
    assert {r["test"].split("::")[1] for r in trace if r.get("suite") == "sealed"} == sealed
    assert_sealed_stay_sealed(run, cassette, sealed)


@NEEDS_BWRAP
@pytest.mark.e2e
def test_a_cheat_fixed_after_the_sealed_failures_is_delivered(tmp_path: Path) -> None:
    spec = marked_spec(tmp_path)
    sealed = sealed_names(spec)
    visible = set(INPUTS) - sealed
    out, cassette = tmp_path / "runs", tmp_path / "cassette.jsonl"
    config = config_with(tmp_path, holdout=SHARE, max_fix_rounds=1)
    book = cheating_playbook(visible, fixes=(good_code(example_playbook()),))
    code = run_spec(out, book, "--record", str(cassette), spec=spec, config=config)
    run = only_run(out)
    report = report_of(run)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    first, second = report["verify_rounds"]
    assert first["passed"] is False and first["sealed"]["passed"] < 2
    assert first["acceptance"]["passed"] == 6
    assert second["passed"] is True and second["sealed"] == {
        "total": 2,
        "passed": 2,
        "failed": 0,
        "errors": 0,
    }
    assert report["holdout"]["sealed"]["rate"] == 1.0
    # The fix prompt had the sealed failures (the playbook's expect), never their source.
    assert_sealed_stay_sealed(run, cassette, sealed)


@NEEDS_BWRAP
@pytest.mark.e2e
def test_honest_developer_is_delivered_with_both_pass_rates(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    code = run_spec(out, example_playbook(), config=config_with(tmp_path, holdout=SHARE))
    run = only_run(out)
    report = report_of(run)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["holdout"]["visible"] == {"total": 6, "passed": 6, "rate": 1.0}
    assert report["holdout"]["sealed"] == {"total": 2, "passed": 2, "rate": 1.0}
    assert all(r["passed"] is True for r in report["requirements"])
    assert "visible 6/6 (100%), sealed 2/2 (100%)" in (run / "report.md").read_text()
    # Only the visible tests are in the workspace; the sealed ones beside it, read-only to none.
    ws_tests = (run / "workspace" / "acceptance" / "test_wordcount.py").read_text()
    for key in report["holdout"]["sealed_tests"]:
        assert f"def {key.split('::')[1]}(" not in ws_tests


def ticket_with_holdout(tmp_path: Path, holdout_value: Any, **extra: Any) -> Path:
    data = yaml.safe_load(Path(EXAMPLE_SPEC).read_text(encoding="utf-8"))
    data.update(holdout=holdout_value, **extra)
    path = tmp_path / "wordcount-sealed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("value", "extra", "says", "key"),
    [
        (
            ["test_wordcount.py::test_kyes"],
            {},
            "did you mean 'test_wordcount.py::test_keys'",
            "holdout.0",
        ),
        ("test_wordcount.py::test_keys", {}, "must be a list", "holdout"),
        (
            ["tests/test_cli.py::test_empty"],
            {"repo": "../r", "kind": "bug", "failing_tests": ["tests/test_cli.py::test_empty"]},
            "one of the repository's own tests (failing_tests)",
            "holdout.0",
        ),
    ],
)
def test_a_tickets_holdout_is_checked_where_it_is_written(
    tmp_path: Path, value: Any, extra: dict[str, Any], says: str, key: str
) -> None:
    from darkfactory.errors import SpecError

    with pytest.raises(SpecError) as caught:
        load_spec(ticket_with_holdout(tmp_path, value, **extra))
    assert says in str(caught.value) and caught.value.key == key and caught.value.line


def test_a_ticket_may_not_seal_every_test(tmp_path: Path) -> None:
    from darkfactory.errors import SpecError
    from darkfactory.spec.trace import requirement_links

    every = list(requirement_links(load_spec(Path(EXAMPLE_SPEC))))
    with pytest.raises(SpecError, match="seals every acceptance test"):
        load_spec(ticket_with_holdout(tmp_path, every))


@NEEDS_BWRAP
@pytest.mark.e2e
def test_a_ticket_seals_the_tests_it_names(tmp_path: Path) -> None:
    named = "test_wordcount.py::test_words_split_on_any_whitespace"
    spec = ticket_with_holdout(tmp_path, [named])
    assert load_spec(spec).holdout == [named]
    out = tmp_path / "runs"
    code = run_spec(out, example_playbook(), spec=spec)  # factory.yaml's share is 0
    run = only_run(out)
    report = report_of(run)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["holdout"]["sealed_tests"] == [named]
    assert report["holdout"]["sealed"] == {"total": 1, "passed": 1, "rate": 1.0}
    ws_tests = (run / "workspace" / "acceptance" / "test_wordcount.py").read_text()
    assert "def test_words_split_on_any_whitespace(" not in ws_tests
    assert "def test_keys(" in ws_tests
