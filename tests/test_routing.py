"""Every failure class the verify phase finds reaches the fix task, classified and routed.

Real crew, tools and bwrap sandbox; the scripted model (a test tool, not AI) plays the
example playbook with a developer whose first wordcount.py fails in one particular way.
The manager's fix step checks (``expect:``) that the fix task names the class, routes it
to the right role and carries the part of the failure output that matters; the second
version is right and the run is delivered. (An assertion failure, a wrong QA test and a
spec ambiguity are covered in test_e2e.py; each class on plain pytest runs in
test_classify.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runhelp import (
    NEEDS_BWRAP,
    config_with,
    example_playbook,
    good_code,
    only_run,
    report_of,
    run_spec,
)

pytestmark = [
    pytest.mark.e2e,
    NEEDS_BWRAP,
]

COUNT = "def count(text: str) -> dict[str, int]:\n"


def first_version(good: str, cls: str) -> str:
    """wordcount.py broken so that verify finds failure class ``cls``."""
    assert COUNT in good
    broken = {
        # A missing colon: nothing imports.
        "syntax_import": good.replace(COUNT, COUNT.replace(":\n", "\n")),
        # An exception in the code under test.
        "code_error": good.replace(COUNT, COUNT + '    raise KeyError("text")\n'),
        # A hang: killed by tests.timeout_s.
        "timeout": good.replace(COUNT, COUNT + "    while True:\n        pass\n"),
        # Memory: killed by sandbox.memory_mb.
        "resource": good.replace(COUNT, COUNT + "    _ = bytearray(2_000_000_000)\n"),
    }[cls]
    assert broken != good
    return broken


CASES = {
    "syntax_import": ({}, ["SyntaxError"]),
    "code_error": ({}, ["KeyError: 'text'"]),
    "timeout": ({"tests": {"timeout_s": 8}}, ["timeout"]),
    "resource": ({"sandbox": {"memory_mb": 256}}, ["MemoryError"]),
}


@pytest.mark.parametrize("cls", list(CASES))
def test_failure_class_reaches_the_fix_task_routed_to_the_developer(
    tmp_path: Path, cls: str
) -> None:
    factory, excerpts = CASES[cls]
    book: dict[str, Any] = example_playbook()
    roles = book["roles"]
    good = good_code(book)
    roles["developer"] = [
        {
            "tool": "write_file",
            "args": {"path": "wordcount.py", "content": first_version(good, cls)},
        },
        {"answer": "wordcount.py is written."},
        {"tool": "write_file", "args": {"path": "wordcount.py", "content": good}},
        {"answer": "wordcount.py is fixed."},
    ]
    fix = [
        {
            "delegate": {
                "to": "developer",
                "task": "Fix wordcount.py so that the tests pass.",
                "context": "The failure output is in the task.",
            },
            "expect": [
                "classified these failures as:",
                cls,
                "Software Developer: delegate the fix to them",
                *excerpts,
            ],
        },
        {"answer": "Fixed."},
    ]
    # manager: design(2) implement(2) qa(2) | the fix round | document(2)
    roles["manager"] = roles["manager"][:6] + fix + roles["manager"][6:]
    out = tmp_path / "runs"
    code = run_spec(out, book, config=config_with(tmp_path, **factory))
    report = report_of(only_run(out))
    assert code == 0, report["reason"]
    first = report["verify_rounds"][0]
    assert not first["passed"] and cls in first["classes"] and first["route"] == "developer"
    assert report["fix_rounds"] == 1 and report["status"] == "delivered"
