"""Documentation as a tested deliverable, end to end: real crew, tools, bwrap, scripted model.

After the tech writer's task the pipeline builds the workspace's site with
``mkdocs build --strict`` and runs every example of README.md and docs/ in the sandbox; a
failure goes back to the writer (``document_fix``) until it passes or ``max_fix_rounds``
runs out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from runhelp import NEEDS_BWRAP, example_playbook, only_run, report_of, run_spec

from darkfactory.cli import main
from darkfactory.reporting.trace import check_record, read_trace

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]

REPO = Path(__file__).resolve().parent.parent
GOOD_LINK = "[API reference](api.md)"
BROKEN_LINK = "[API reference](reference.md)"
GOOD_OUTPUT = "{'lines': 2, 'words': 3, 'chars': 14}"
WRONG_OUTPUT = "{'lines': 2, 'words': 3, 'chars': 15}"
#: What mkdocs --strict says about the broken link (the writer must be told verbatim).
LINK_WARNING = (
    "Doc file 'index.md' contains a link 'reference.md', but the target is not found "
    "among documentation files."
)


def broken_docs_playbook(fixes: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The writer's first docs have a broken link and a wrong doctest; then ``fixes``.

    Each item of ``fixes`` is the writer's tool steps in one docs fix round.
    """
    book = example_playbook()
    roles = book["roles"]
    writer = []
    for step in roles["tech_writer"]:
        if step.get("tool") in ("build_docs", "run_doc_examples"):
            continue  # an overconfident writer: it does not check its work
        if step.get("args", {}).get("path") == "docs/index.md":
            content = step["args"]["content"]
            assert GOOD_LINK in content and GOOD_OUTPUT in content
            content = content.replace(GOOD_LINK, BROKEN_LINK).replace(GOOD_OUTPUT, WRONG_OUTPUT)
            step = {"tool": "write_file", "args": {"path": "docs/index.md", "content": content}}
        writer.append(step)
    for i, steps in enumerate(fixes, start=1):
        roles["manager"] += [
            {
                "delegate": {
                    "to": "tech_writer",
                    "task": "Fix the problems the docs check found in the docs.",
                    "context": "The warnings and failing examples are in the task.",
                },
                # The docs fix task carries the check's real output, verbatim.
                "expect": [
                    f"Docs fix round {i} of",
                    "mkdocs build --strict: FAILED",
                    LINK_WARNING,
                    "FAILED docs/index.md:12 (doctest example)",
                    f"Expected:\n        {WRONG_OUTPUT}\n    Got:\n        {GOOD_OUTPUT}",
                ],
            },
            {"answer": "The docs are fixed."},
        ]
        writer += [*steps, {"answer": "Fixed the docs."}]
    roles["tech_writer"] = writer
    return book


def edit(path: str, old: str, new: str) -> dict[str, Any]:
    return {"tool": "edit_file", "args": {"path": path, "old_text": old, "new_text": new}}


def run(tmp_path: Path, book: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any], Path]:
    code = run_spec(tmp_path / "runs", book, *extra)
    run_dir = only_run(tmp_path / "runs")
    return code, report_of(run_dir), run_dir


def mkdocs_build(workspace: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """Build the generated site again, outside the pipeline, with the project's mkdocs."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def docs_checks(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_trace(run_dir / "trace.jsonl") if r["kind"] == "docs_check"]


def test_delivered_docs_build_strictly_with_api_reference_and_passing_examples(
    tmp_path: Path,
) -> None:
    code, report, run_dir = run(tmp_path, example_playbook())
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    docs = report["docs"]
    assert docs["built"] is True and docs["rounds"] == 1 and docs["warnings"] == []
    assert docs["pages"] == 2  # index and api
    assert docs["examples_run"] == 3 and docs["examples_passed"] == docs["examples_run"]
    # The trace: one passing docs check, every example run and passed, schema respected.
    trace = read_trace(run_dir / "trace.jsonl")
    assert [p for r in trace for p in check_record(r)] == []
    (check,) = docs_checks(run_dir)
    assert check["passed"] is True and check["built"] is True and check["phase"] == "docs_check"
    examples = [r for r in trace if r["kind"] == "doc_example"]
    assert [(r["file"], r["type"], r["outcome"]) for r in examples] == [
        ("README.md", "python", "passed"),
        ("docs/index.md", "doctest", "passed"),
        ("docs/index.md", "python", "passed"),
    ]
    # The writer used its tools: the strict build and the examples, in the sandbox.
    tools = [r["tool"] for r in trace if r["kind"] == "sandbox_exec" and r.get("tool")]
    assert "build_docs" in tools and "run_doc_examples" in tools
    # Built again here: strict, and the API page documents the module's public functions.
    ws = run_dir / "workspace"
    built = mkdocs_build(ws, tmp_path / "site")
    assert built.returncode == 0, built.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("count", "main"):
        assert f'id="wordcount.{name}"' in api, name
    # Neither the build nor the examples left anything in the workspace (an example wrote
    # notes.txt in its scratch copy; the site went to the sandbox's /tmp).
    assert not (ws / "site").exists() and not (ws / "notes.txt").exists()
    status = subprocess.run(
        ["git", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True
    )
    assert status.stdout == ""


def test_docs_failure_goes_back_to_the_writer_and_the_second_attempt_builds(
    tmp_path: Path,
) -> None:
    fix = [
        edit("docs/index.md", BROKEN_LINK, GOOD_LINK),
        edit("docs/index.md", WRONG_OUTPUT, GOOD_OUTPUT),
        {"tool": "build_docs", "args": {}},
    ]
    code, report, run_dir = run(tmp_path, broken_docs_playbook([fix]))
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    docs = report["docs"]
    assert docs["rounds"] == 2 and docs["built"] is True
    assert docs["examples_run"] == 3 == docs["examples_passed"]
    first, second = docs_checks(run_dir)
    assert first["passed"] is False and first["built"] is False and first["warnings"] == 1
    assert first["examples_passed"] == 2 and first["problems"] == [
        f"WARNING - {LINK_WARNING}",
        "docs/index.md:12: doctest example failed",
    ]
    assert second["passed"] is True and second["round"] == 1
    trace = read_trace(run_dir / "trace.jsonl")
    assert [r["round"] for r in trace if r["kind"] == "docs_fix_round"] == [1]
    assert any(
        d["phase"] == "docs_fix" and d["coworker"] == "Technical Writer"
        for d in report["delegations"]
    )
    phases = [s["phase"] for s in report["timeline"]]
    assert phases[-5:] == ["document", "docs_check", "docs_fix", "docs_check", "deliver"]
    assert report["commits"][-2:] == ["docs: README and docs/", "docs: fix round 1"]


def test_docs_never_fixed_fail_the_run_after_max_fix_rounds(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    factory = yaml.safe_load((config / "factory.yaml").read_text())
    factory["max_fix_rounds"] = 1
    (config / "factory.yaml").write_text(yaml.safe_dump(factory))
    # The "fix" fixes the doctest but leaves the broken link.
    fix = [edit("docs/index.md", WRONG_OUTPUT, GOOD_OUTPUT)]
    code, report, run_dir = run(tmp_path, broken_docs_playbook([fix]), "--config", str(config))
    assert code == 1
    assert report["status"] == "failed"
    assert report["reason"] == (
        f"docs still failing after 1 docs fix round(s) (max_fix_rounds=1): WARNING - {LINK_WARNING}"
    )
    docs = report["docs"]
    assert docs["rounds"] == 2 and docs["built"] is False and docs["passed"] is False
    assert docs["warnings"] == [f"WARNING - {LINK_WARNING}"]
    assert docs["examples_passed"] == docs["examples_run"] == 3  # the doctest was fixed
    assert [c["passed"] for c in docs_checks(run_dir)] == [False, False]
    assert not any(s["phase"] == "deliver" for s in report["timeline"])


def test_a_run_stopped_in_docs_fix_resumes_through_the_docs_loop(tmp_path: Path) -> None:
    """The docs check and fix are journaled steps: a resumed run replays the first check
    (and its route) and runs the interrupted docs fix again from its start."""
    fix = [
        edit("docs/index.md", BROKEN_LINK, GOOD_LINK),
        edit("docs/index.md", WRONG_OUTPUT, GOOD_OUTPUT),
    ]
    # 23 calls take the run through the document phase; the 26th is in the docs fix.
    code, report, run_dir = run(tmp_path, broken_docs_playbook([fix]), "--max-llm-calls", "25")
    assert code == 4, report["reason"]
    assert report["status"] == "budget_exhausted" and "in phase docs_fix" in report["reason"]
    assert report["docs"]["rounds"] == 1 and report["docs"]["passed"] is False
    out = run_dir.parent
    assert (
        main(["resume", run_dir.name, "--out", str(out), "--quiet", "--max-llm-calls", "100"]) == 0
    )
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "delivered"
    assert report["docs"]["rounds"] == 2 and report["docs"]["passed"] is True
    trace = read_trace(run_dir / "trace.jsonl")
    (resumed,) = [r for r in trace if r["kind"] == "run_resumed"]
    assert resumed["after"][-2:] == ["document", "docs_check"]
    assert resumed["stashed"] is True  # the first edit of the interrupted round
    assert [c["passed"] for c in docs_checks(run_dir)] == [False, True]
    assert report["commits"][-2:] == ["docs: README and docs/", "docs: fix round 1"]


def test_code_the_writer_changes_is_tested_again_before_delivery(tmp_path: Path) -> None:
    """The docs phases may touch code (docstrings); a change that breaks it is caught."""
    book = example_playbook()
    roles = book["roles"]
    good = next(s for s in roles["developer"] if s.get("tool") == "write_file")["args"]["content"]
    # Wrong for the empty text only: the docs' examples still pass, an acceptance test not.
    broken = good.replace(
        '"lines": text.count("\\n")', '"lines": max(text.count("\\n"), int(not text))'
    )
    assert broken != good
    # The writer "improves" wordcount.py while documenting it, and breaks it.
    roles["tech_writer"].insert(
        0, {"tool": "write_file", "args": {"path": "wordcount.py", "content": broken}}
    )
    roles["tech_writer"].append({"answer": "The docs still match the code."})
    roles["manager"] += [
        {
            "delegate": {
                "to": "developer",
                "task": "Fix wordcount.py so that the failing tests pass.",
                "context": "See the failing tests in the task.",
            },
            "expect": ["test_empty_text", "Software Developer: delegate the fix to them"],
        },
        {"answer": "Fixed."},
        {
            "delegate": {
                "to": "tech_writer",
                "task": "Check the docs against the fixed code.",
                "context": "wordcount.py changed.",
            }
        },
        {"answer": "The docs are right."},
    ]
    roles["developer"] += [
        {"tool": "write_file", "args": {"path": "wordcount.py", "content": good}},
        {"answer": "wordcount.py counts characters again."},
    ]
    code, report, run_dir = run(tmp_path, book)
    assert code == 0, report["reason"]
    assert report["status"] == "delivered"
    (recheck,) = [r for r in read_trace(run_dir / "trace.jsonl") if r["kind"] == "recheck"]
    assert recheck["files"] == ["wordcount.py"]
    rounds = report["verify_rounds"]
    assert [r["passed"] for r in rounds] == [True, False, True]
    assert rounds[1]["classes"] == ["assertion"]
    assert (run_dir / "workspace" / "wordcount.py").read_text() == good
