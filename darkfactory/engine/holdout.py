"""The sealed holdout: a share of the spec's acceptance tests that no agent ever sees.

``seal`` splits the tests by test function and writes the sealed part to ``runs/<id>/sealed/``;
``SealedSuite`` runs it in a sandbox of its own; ``sealed_summary`` is all a prompt gets of it.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from darkfactory.sandbox.base import Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.testrun import TestOutcome, TestRun, expected_tests, run_pytest
from darkfactory.spec import AcceptanceTest
from darkfactory.workspace import hostio
from darkfactory.workspace.rundir import HOLDOUT_FILE, SEALED_DIR

#: Where the sealed tests are mounted in the verify phase's own sandbox (never an agent's).
SEALED_TARGET = "/sealed"
#: The copy of the workspace the sealed tests run against (removed after each run).
SEALED_WORK = ".sealed-workspace"


class Holdout(BaseModel):
    """Which acceptance tests a run sealed (``holdout.json``), and how they were chosen."""

    share: float
    #: sha256 of the spec's acceptance tests: the selection's seed, so a resume, or a new
    #: run of the same spec, seals the same tests.
    seed: str
    sealed: list[str]
    visible: list[str]


def load(run_dir: Path) -> Holdout | None:
    """The run's holdout, or None when it sealed nothing."""
    path = run_dir / HOLDOUT_FILE
    if not path.is_file():
        return None
    return Holdout.model_validate_json(path.read_text(encoding="utf-8"))


def _is_test_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.endswith(".py") and (base.startswith("test_") or base.endswith("_test.py"))


def _units(test: AcceptanceTest) -> dict[str, tuple[int, int]]:
    """The file's top-level test functions and ``Test*`` classes: id -> (first, last) line."""
    try:
        tree = ast.parse(test.content)
    except (SyntaxError, ValueError):
        return {}  # a file that does not parse stays visible: its error is no secret
    ids = expected_tests({test.name: test.content.encode()})
    found: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        key = f"{test.name}::{node.name}"
        if key in ids or any(i.startswith(key + "::") for i in ids):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found[key] = (first, node.end_lineno or node.lineno)
    return found


def _without(content: str, spans: list[tuple[int, int]]) -> str:
    lines = content.splitlines(keepends=True)
    drop = {n for first, last in spans for n in range(first, last + 1)}
    return "".join(line for n, line in enumerate(lines, start=1) if n not in drop)


@dataclass(frozen=True)
class Split:
    """The spec's tests as the agents get them, and the sealed rest."""

    visible: list[AcceptanceTest]
    sealed: list[AcceptanceTest]
    holdout: Holdout


def split(tests: list[AcceptanceTest], share: float, named: Sequence[str] = ()) -> Split:
    """Seal ``share`` of the test functions (at least one, never all), chosen by the seed,
    or the tests a ticket ``named`` (``file::name``, checked when the ticket was read).

    Each test file keeps its other code (imports, helpers, fixtures) in both parts; a test
    file left with no test of a part is not in that part; other files are in both.
    """
    seed = hashlib.sha256(
        b"".join(f"{t.name}\0{t.content}\0".encode() for t in sorted(tests, key=lambda t: t.name))
    ).hexdigest()
    units = {t.name: _units(t) for t in tests if _is_test_file(t.name)}
    every = [key for found in units.values() for key in found]
    count = min(len(every) - 1, max(1, math.floor(share * len(every) + 0.5))) if share else 0
    ranked = sorted(every, key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest())
    sealed_ids = set(ranked[: max(0, count)])
    if named:
        sealed_ids = {k for k in every if k in named}
    visible: list[AcceptanceTest] = []
    sealed: list[AcceptanceTest] = []
    for test in tests:
        found = units.get(test.name)
        if found is None:  # conftest.py, a helper module, a data file: both need it
            visible.append(test)
            sealed.append(test)
            continue
        mine = {k: span for k, span in found.items() if k in sealed_ids}
        others = {k: span for k, span in found.items() if k not in sealed_ids}
        if others or not mine:
            visible.append(
                test.model_copy(update={"content": _without(test.content, [*mine.values()])})
            )
        if mine:
            sealed.append(
                test.model_copy(update={"content": _without(test.content, [*others.values()])})
            )
    return Split(
        visible,
        sealed if sealed_ids else [],
        Holdout(
            share=share,
            seed=seed,
            sealed=sorted(sealed_ids),
            visible=sorted(k for k in every if k not in sealed_ids),
        ),
    )


def seal(
    tests: list[AcceptanceTest], share: float, run_dir: Path, named: Sequence[str] = ()
) -> list[AcceptanceTest]:
    """Write the sealed part under ``run_dir`` (``SEALED_DIR``, ``HOLDOUT_FILE``); the rest back.

    Nothing is sealed (and nothing written) with ``share`` 0 and no ``named`` tests, or
    fewer than two tests.
    """
    parts = split(tests, share, named)
    if not parts.holdout.sealed:
        return tests
    root = run_dir / SEALED_DIR
    for test in parts.sealed:
        target = root / test.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(test.content, encoding="utf-8")
    (run_dir / HOLDOUT_FILE).write_text(parts.holdout.model_dump_json(indent=2), encoding="utf-8")
    return parts.visible


class SealedSuite:
    """Runs a run's sealed tests in a sandbox opened for that run alone, over a copy of the
    workspace: the code under test cannot leave their source where an agent would find it."""

    def __init__(
        self,
        run_dir: Path,
        base: SandboxSpec,
        open_sandbox: Callable[[SandboxSpec], Sandbox],
        *,
        prepare: Callable[[Sandbox], Sandbox] = lambda sandbox: sandbox,
        pytest_args: Sequence[str] = (),
    ) -> None:
        """``prepare`` wraps the opened sandbox (a repository's PYTHONPATH), ``pytest_args``
        go to pytest (a repository's plugins)."""
        self.run_dir = run_dir
        self.base = base
        self.open_sandbox = open_sandbox
        self.prepare = prepare
        self.pytest_args = list(pytest_args)

    def run(self, *, timeout: float) -> TestRun:
        work = self.run_dir / SEALED_WORK
        hostio.remove(work)
        hostio.copy_tree(self.base.workspace, ".", work)
        spec = dataclasses.replace(
            self.base,
            workspace=work,
            mounts=[Mount(self.run_dir / SEALED_DIR, SEALED_TARGET, read_only=True)]
            + [m for m in self.base.mounts if m.target != SEALED_TARGET],
        )
        try:
            sandbox = self.open_sandbox(spec)
            try:
                mounted = sandbox.path_of(SEALED_TARGET)
                run = run_pytest(
                    self.prepare(sandbox),
                    [mounted],
                    timeout=timeout,
                    rootdir=mounted,
                    extra_args=self.pytest_args,
                )
            finally:
                sandbox.close()
        finally:
            hostio.remove(work)
        found, _ = hostio.files(self.run_dir, SEALED_DIR, suffix=".py")
        return run.expecting(expected_tests(found))


#: ``path:line: ExceptionType``, pytest's last line of a failure (the runner keeps it).
_WHERE = re.compile(r"^\S.*:\d+: ([A-Za-z_][\w.]*)\s*$")
_E_TYPE = re.compile(r"^E\s+([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))\b")


def exception_type(message: str) -> str:
    """The failure's exception type alone: never a source line, a value or a message."""
    lines = message.splitlines()
    for line in reversed(lines):
        found = _WHERE.match(line)
        if found:
            return found.group(1)
    for line in lines:
        found = _E_TYPE.match(line)
        if found:
            return found.group(1)
        if re.match(r"^E\s+assert\b", line):
            return "AssertionError"
    return "an exception"


def sealed_summary(run: TestRun, links: dict[str, list[str]]) -> str:
    """What a prompt learns of the sealed tests: counts, names, requirements, exception types."""
    head = (
        f"{run.total} sealed tests: {run.passed} passed, {run.failed} failed, "
        f"{run.errors} errors. Their source is sealed: you cannot read or run them; make the "
        "code meet the requirements named, for every input, not only the visible tests'."
    )
    lines = [head]
    if run.killed is not None:
        lines.append(f"KILLED: the sealed tests hit the sandbox's {run.killed} limit.")
    if run.collection_error:
        lines.append(
            "COLLECTION ERROR: the sealed tests could not be collected "
            f"({exception_type(run.collection_error)}); the code must import as the spec says."
        )
    for name in run.unreported:
        lines.append(f"NOT REPORTED {name} (counts as failed)")
    lines += [_failure_line(o, links) for o in run.outcomes if o.outcome in ("failed", "error")]
    return "\n".join(lines)


def _failure_line(o: TestOutcome, links: dict[str, list[str]]) -> str:
    reqs = links.get(o.nodeid.split("[", 1)[0], [])
    proves = f" (proves {', '.join(reqs)})" if reqs else ""
    return f"{o.outcome.upper()} {o.nodeid}{proves}: {exception_type(o.message)}"
