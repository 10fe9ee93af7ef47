"""Failure classification on real pytest runs (local sandbox: classification, not isolation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from darkfactory.engine.classify import diagnose
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Limits, Mount, SandboxSpec
from darkfactory.sandbox.testrun import run_pytest

ACCEPT = """
from mod import f

def test_f():
    assert f(2) == 4
"""


def verify(
    tmp_path: Path,
    files: dict[str, str],
    *,
    unit: dict[str, str] | None = None,
    timeout: float = 60,
    memory_mb: int = 1024,
):
    ws = tmp_path / "ws"
    acc = tmp_path / "acc"
    for d in (ws, acc):
        d.mkdir()
    (acc / "test_acc.py").write_text(ACCEPT)
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    for name, text in (unit or {}).items():
        (ws / "tests").mkdir(exist_ok=True)
        (ws / "tests" / name).write_text(text)
    sb = open_sandbox(
        "local",
        SandboxSpec(
            workspace=ws,
            mounts=[Mount(acc, "/acceptance")],
            limits=Limits(timeout_s=timeout, memory_mb=memory_mb),
        ),
    )
    a = run_pytest(
        sb, [sb.path_of("/acceptance")], timeout=timeout, rootdir=sb.path_of("/acceptance")
    )
    u = None
    if unit:
        u = run_pytest(sb, ["tests"], timeout=timeout)
    return diagnose(a, u, ws)


def test_assertion_goes_to_developer(tmp_path: Path) -> None:
    d = verify(tmp_path, {"mod.py": "def f(x):\n    return x + 3\n"})
    assert d.primary == "assertion" and d.route == "developer"


def test_exception_in_code(tmp_path: Path) -> None:
    d = verify(tmp_path, {"mod.py": "def f(x):\n    return {}[x]\n"})
    assert d.primary == "code_error" and d.route == "developer"


def test_syntax_error(tmp_path: Path) -> None:
    d = verify(tmp_path, {"mod.py": "def f(x)\n    return x * 2\n"})
    assert d.primary == "syntax_import"


def test_module_not_written_yet(tmp_path: Path) -> None:
    d = verify(tmp_path, {})
    assert d.primary == "syntax_import"


def test_declared_dependency_missing(tmp_path: Path) -> None:
    d = verify(
        tmp_path,
        {
            "mod.py": "import leftpadx\n\ndef f(x):\n    return x * 2\n",
            "requirements.txt": "leftpadx==1.0\n",
        },
    )
    assert d.primary == "missing_dependency" and d.route == "developer"


def test_setup_error(tmp_path: Path) -> None:
    d = verify(
        tmp_path,
        {"mod.py": "def f(x):\n    return x * 2\n"},
        unit={
            "test_u.py": "import pytest\n\n@pytest.fixture\ndef boom():\n    raise RuntimeError('no db')\n\ndef test_u(boom):\n    pass\n"
        },
    )
    assert d.primary == "setup_error"


def test_unit_test_contradicting_passing_acceptance_goes_to_qa(tmp_path: Path) -> None:
    d = verify(
        tmp_path,
        {"mod.py": "def f(x):\n    return x * 2\n"},
        unit={"test_u.py": "from mod import f\n\ndef test_u():\n    assert f(2) == 5\n"},
    )
    assert d.primary == "qa_test" and d.route == "qa_engineer"


def test_timeout(tmp_path: Path) -> None:
    d = verify(tmp_path, {"mod.py": "import time\n\ndef f(x):\n    time.sleep(30)\n"}, timeout=3)
    assert d.primary == "timeout"


def test_memory_limit_met_inside_a_test(tmp_path: Path) -> None:
    d = verify(tmp_path, {"mod.py": "def f(x):\n    return len(bytearray(1 << 40))\n"})
    assert d.primary == "resource" and d.route == "developer"


def test_memory_limit_met_while_importing(tmp_path: Path) -> None:
    d = verify(tmp_path, {"mod.py": "_ = bytearray(1 << 40)\n\ndef f(x):\n    return x * 2\n"})
    assert d.primary == "resource"


def test_pytest_killed_after_using_most_memory(tmp_path: Path) -> None:
    # What the kernel's OOM killer does to pytest, without a cgroup: the runner must end as
    # pytest ended, or the kill reads as "pytest exit code 137" (an import error).
    code = "import os\n\ndef f(x):\n    held = bytearray(160 << 20)\n    os.kill(os.getpid(), 9)\n"
    d = verify(tmp_path, {"mod.py": code}, memory_mb=256)
    assert d.primary == "resource"


def test_no_acceptance_tests(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    acc = tmp_path / "acc"
    for d in (ws, acc):
        d.mkdir()
    sb = open_sandbox("local", SandboxSpec(workspace=ws, mounts=[Mount(acc, "/acceptance")]))
    a = run_pytest(sb, [sb.path_of("/acceptance")], timeout=60, rootdir=sb.path_of("/acceptance"))
    diagnosis = diagnose(a, None, ws)
    assert diagnosis.classes == ["no_tests"] and diagnosis.route == "architect"


@pytest.mark.parametrize(
    ("noise", "other"),
    [("0x7f3a2b", "0xdead"), ("12.5s", "3.1s"), ("/tmp/pytest-of-root/x", "/tmp/y")],
)
def test_signature_ignores_addresses_numbers_and_tmp_paths(noise: str, other: str) -> None:
    from darkfactory.engine.classify import Diagnosis, Failure

    a = Diagnosis([Failure("assertion", "acceptance", "t.py::test", f"E assert x at {noise}")])
    b = Diagnosis([Failure("assertion", "acceptance", "t.py::test", f"E assert x at {other}")])
    assert a.signature() == b.signature()
    c = Diagnosis([Failure("code_error", "acceptance", "t.py::test", f"E assert x at {other}")])
    assert a.signature() != c.signature()


def _run(outcomes: list[str], *, killed: str | None = None) -> Any:
    from darkfactory.sandbox.base import ExecResult
    from darkfactory.sandbox.testrun import TestOutcome, TestRun

    return TestRun(
        outcomes=[
            TestOutcome(f"t.py::test_{i}", "t.py", f"test_{i}", o, 0.0)
            for i, o in enumerate(outcomes)
        ],  # type: ignore[arg-type]
        exec=ExecResult(0 if killed is None else 137, "", "", 1.0, killed),  # type: ignore[arg-type]
    )


def test_verify_never_passes_a_killed_suite_or_an_all_skipped_acceptance_suite() -> None:
    from darkfactory.engine.verify import VerifyResult

    ok = _run(["passed", "passed"])
    assert VerifyResult(0, ok, _run(["passed"]), {}).passed
    # The unit suite was killed by a limit after its passing tests reported: not a pass.
    assert not VerifyResult(0, ok, _run(["passed"], killed="memory"), {}).passed
    assert not VerifyResult(0, _run(["passed"], killed="timeout"), None, {}).passed
    # Every acceptance test skipped proves nothing.
    assert not VerifyResult(0, _run(["skipped", "skipped"]), None, {}).passed
    assert VerifyResult(0, _run(["passed", "skipped"]), None, {}).passed
