"""Claims without work: what each answer of a phase really did (files changed, tests run),
measured by the flow, and the fix task's ``{previous_work}`` written from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from darkfactory.crews.texts import texts
from darkfactory.engine.protocol import quote
from darkfactory.engine.state import PhaseWork

#: The fix task's ``{previous_work}``: ``darkfactory.previous_work`` in crews/prompts.json.
WORK = texts(
    "previous_work",
    ("heading", "answer", "changed", "changed_no_file", "ran", "ran_no_test", "idle"),
)


class WorkLedger:
    """Counts the test runs agents make (a trace observer: ``Trace.observers``)."""

    def __init__(self) -> None:
        self.tests = 0

    def observe(self, record: Mapping[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "test_run":
            self.tests += 1
        elif kind == "sandbox_exec" and record.get("tool") == "run_command":
            argv = record.get("argv")
            if isinstance(argv, list) and any("pytest" in str(a) for a in argv[:4]):
                self.tests += 1


def measured(task: str, files: list[str], tests_run: int, answer: str) -> PhaseWork:
    return PhaseWork(task=task, files=files[:50], tests_run=tests_run, answer=quote(answer, 200))


def previous_work(work: Sequence[PhaseWork]) -> str:
    """The fix task's ``{previous_work}``: what the answers since the last fix really did."""
    last_fix = max((i for i, w in enumerate(work) if w.task == "fix"), default=0)
    recent = list(work[last_fix:])
    if not recent:
        return ""
    lines = [WORK["heading"]]
    idle = []
    for w in recent:
        files = ", ".join(w.files[:12]) + (" ..." if len(w.files) > 12 else "")
        changed = WORK["changed"].format(files=files) if w.files else WORK["changed_no_file"]
        ran = WORK["ran"].format(n=w.tests_run) if w.tests_run else WORK["ran_no_test"]
        lines.append(WORK["answer"].format(task=w.task, changed=changed, ran=ran, answer=w.answer))
        if not w.files and not w.tests_run:
            idle.append(w.task)
    lines += [WORK["idle"].format(task=task) for task in idle]
    return "\n".join(lines)
