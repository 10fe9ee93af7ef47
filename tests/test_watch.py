"""``darkfactory watch``: a real scripted run in another process, followed from here (plain
lines, and rich on a pseudo-terminal); finished, stopped and damaged runs; what a model
wrote reaches the terminal without control characters or markup."""

from __future__ import annotations

import io
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from runhelp import (
    NEEDS_BWRAP,
    config_with,
    example_playbook,
    only_run,
    report_of,
    run_spec,
    write_playbook,
)

from darkfactory.cli import EXAMPLE_SPEC, main
from darkfactory.cli.watch import TraceTail, Watch, clean
from darkfactory.workspace import rundir

pytestmark = NEEDS_BWRAP

#: A path a model chose: rich markup, a terminal title (OSC), a screen clear and a bell.
HOSTILE_PATH = "[bold red]x[/]\x1b]0;owned\x07\x1b[2J\u202eevil.py"
PHASES = ("intake", "design", "implement", "qa", "verify", "document", "docs_check", "deliver")
#: What a terminal must never get from the run's data: OSC, clear screen, bell, RTL override.
INJECTED = ("\x1b]", "\x1b[2J", "\x07", "\u202e")
#: USD per million tokens for the scripted model (free unless priced), so a cost shows.
PRICES = {"scripted:*": {"input": 3.0, "output": 15.0}}


def hostile_book(delay_s: float = 0.0) -> dict[str, Any]:
    """The example playbook, with the developer first writing to ``HOSTILE_PATH``."""
    book = example_playbook()
    book["roles"]["developer"].insert(
        0, {"tool": "write_file", "args": {"path": HOSTILE_PATH, "content": "x"}}
    )
    if delay_s:
        for steps in book["roles"].values():
            for step in steps:
                step["delay_s"] = delay_s
    return book


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A delivered run (the example spec, a scripted model priced by ``PRICES``), in this
    process."""
    tmp = tmp_path_factory.mktemp("watch")
    out = tmp / "runs"
    assert run_spec(out, hostile_book(), config=config_with(tmp, prices=PRICES)) == 0
    return only_run(out)


def cost_of(run_dir: Path) -> str:
    """The run's cost as watch shows it, from its report: "$0.1234"."""
    usd = report_of(run_dir)["llm"]["cost_usd"]
    assert usd > 0
    return f"${usd:.4f}"


def watch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["watch", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean(text: str) -> None:
    for seq in INJECTED:
        assert seq not in text, (seq, text[-2000:])


# -- a run in another process, watched as it goes ----------------------------------------------
def test_a_running_run_is_followed_to_its_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run goes on in its own process; ``watch`` here (plain lines: no terminal) and in a
    pseudo-terminal (rich) follow it from a prefix of its id, and exit with its code."""
    out = tmp_path / "runs"
    book = write_playbook(tmp_path, hostile_book(delay_s=0.25))
    cmd = [sys.executable, "-m", "darkfactory", "run", str(EXAMPLE_SPEC)]
    cmd += ["--model", f"scripted:{book}", "--sandbox", "bwrap", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = _started(out, proc)
        tty = _Pty(
            [sys.executable, "-m", "darkfactory", "watch", str(run_dir)],
        )
        code, text, err = watch(capsys, run_dir.name[:15], "--out", str(out))
        _, run_err = proc.communicate(timeout=120)
        tty_code, screen = tty.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, run_err
    assert code == 0 == tty_code, (text, err)
    lines = text.splitlines()
    # Followed live (not from the start): the run had begun; later phases came as they ran.
    phases = [ln.split("phase ", 1)[1] for ln in lines if "  phase " in ln]
    assert phases[-4:] == [*PHASES[-4:]], phases
    assert any("verify round 0: acceptance 8/8, unit 4/4: passed" in ln for ln in lines)
    assert any("Software Developer: run_tests" in ln for ln in lines)
    assert lines[-3].startswith("delivered: Word count CLI - acceptance 8/8, unit 4/4, LLM calls ")
    assert lines[-1] == "  exit code 0 (docs/exit-codes.md)"
    assert_clean(text)
    # On a terminal: rich's live panel (phase, role, tests, model, tool calls), then the end.
    assert "last tool calls" in screen and "\x1b[" in screen  # rich styled it
    assert "delivered: Word count CLI - acceptance 8/8" in screen
    assert_clean(screen)


def _started(out: Path, proc: subprocess.Popen[str]) -> Path:
    """The run's directory, as soon as its process has made it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
        if runs:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError("the run did not start")


class _Pty:
    """A command on a pseudo-terminal, all it prints read meanwhile."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "140", "LINES": "40", "TERM": "xterm-256color"}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the other side closed
                return
            if not data:
                return
            self._chunks.append(data)

    def wait(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=120)
        self._reader.join(timeout=10)
        os.close(self._master)
        return code, b"".join(self._chunks).decode("utf-8", "replace")


# -- a run that is not running: its end at once --------------------------------------------------
def test_a_finished_run_prints_its_end_and_exits_with_its_code(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = finished.parent
    code, text, _ = watch(capsys, finished.name, "--out", str(out))
    assert code == 0
    assert text.splitlines() == [
        text.splitlines()[0],
        "  why: every acceptance and unit test passed; the docs build strictly and their 3 "
        "example(s) pass",
        "  exit code 0 (docs/exit-codes.md)",
    ]
    assert text.startswith("delivered: Word count CLI - acceptance 8/8, unit 4/4, LLM calls 26")
    llm = report_of(finished)["llm"]
    tokens = llm["prompt_tokens"] + llm["completion_tokens"]
    assert text.splitlines()[0].endswith(f", tokens {tokens}, cost {cost_of(finished)}")
    assert llm["cost_usd"] == pytest.approx(
        (llm["prompt_tokens"] * 3.0 + llm["completion_tokens"] * 15.0) / 1e6
    )
    # --from-start: every event line first, in order; by the run's directory as well.
    code, text, _ = watch(capsys, str(finished), "--from-start")
    assert code == 0
    assert "  run started: Word count CLI (sandbox bwrap)" in text
    phases = [ln.split("phase ", 1)[1] for ln in text.splitlines() if "  phase " in ln]
    assert phases == [*PHASES]
    assert "Engineering Manager -> Software Developer: Implement wordcount.py" in text
    assert_clean(text)
    # The model's path is shown as text: its markup as written, its control characters gone.
    assert "write_file path=[bold red]x[/]?]0;owned??[2J?evil.py (" in text


def test_the_live_view_shows_model_text_as_text(finished: Path) -> None:
    """On a terminal (rich): the path a model chose is neither markup nor escape codes."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160, color_system="truecolor")
    assert Watch(finished, console=console, from_start=True).follow() == 0
    screen = buf.getvalue()
    assert_clean(screen)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", screen)  # rich's own styling off
    assert "[bold red]x[/]?]0;owned??[2J?evil.py" in plain
    assert "last tool calls" in plain and "delivered" in plain
    assert f"cost {cost_of(finished)}" in plain  # the panel's model row


def test_a_budget_stop_exits_4_and_a_killed_run_1(
    tmp_path: Path, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    assert run_spec(out, example_playbook(), "--max-llm-calls", "5") == 4
    code, text, _ = watch(capsys, only_run(out).name[:8], "--out", str(out))
    assert code == 4 and text.startswith("budget_exhausted: Word count CLI - tests not run, ")
    assert "exit code 4" in text
    # A run whose process was killed: no run_end, no process; its trace ends in a torn line.
    killed = _copy(finished, tmp_path / "killed")
    trace = killed / rundir.TRACE_FILE
    lines = trace.read_bytes().splitlines(keepends=True)
    end = next(i for i, ln in enumerate(lines) if b'"kind": "run_end"' in ln)
    trace.write_bytes(b"".join(lines[:end]) + b'{"ts": "2026-01-01T00:00:00+00:00", "ki')
    code, text, _ = watch(capsys, str(killed))
    assert code == 1
    assert text.startswith("interrupted: Word count CLI")
    assert f"continue with: darkfactory resume {killed.name}" in text


def test_unknown_ambiguous_and_missing_runs_exit_2(
    tmp_path: Path, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = finished.parent
    code, _, err = watch(capsys, "no-such-run", "--out", str(out))
    assert code == 2 and "no run directory 'no-such-run' here" in err and finished.name in err
    code, _, err = watch(capsys, str(tmp_path / "gone"))
    assert code == 2 and "no run directory" in err
    _copy(finished, out / f"{finished.name}-copy")
    try:
        code, _, err = watch(capsys, finished.name[:10], "--out", str(out))
        assert code == 2 and "is the start of 2 runs' ids" in err
        assert watch(capsys, finished.name, "--out", str(out))[0] == 0  # an exact id wins
    finally:
        shutil.rmtree(out / f"{finished.name}-copy")


def test_ctrl_c_stops_watching_a_run_that_is_starting(tmp_path: Path, finished: Path) -> None:
    """A run directory being prepared (no trace yet, no process holding it): watch waits;
    Ctrl-C ends the watch (130), not the run."""
    starting = tmp_path / "runs" / "20260101-000000-starting-0000"
    (starting / rundir.SPEC_DIR).mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "darkfactory", "watch", str(starting)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stderr.readline() == f"{starting.name}: waiting for the run to start\n"
    time.sleep(1)
    assert proc.poll() is None  # still waiting
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "stopped watching 20260101-000000-starting-0000; the run goes on" in err
    assert "Traceback" not in err


def test_a_run_removed_while_being_prepared_ends_the_watch(tmp_path: Path) -> None:
    starting = tmp_path / "runs" / "20260101-000000-starting-0001"
    (starting / rundir.SPEC_DIR).mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "darkfactory", "watch", str(starting)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "waiting for the run to start" in proc.stderr.readline()
    shutil.rmtree(starting)  # what prepare_run does when it fails
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (out, err)
    assert "its directory is gone: it stopped while being prepared" in err


# -- pieces ------------------------------------------------------------------------------------
def test_the_trace_is_read_a_whole_line_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    tail = TraceTail(path)
    assert tail.read() == []  # not written yet
    path.write_bytes(b'{"kind": "phase_start", "phase": "design"}\n{"kind": "pha')
    assert [r["phase"] for r in tail.read()] == ["design"]
    with path.open("ab") as fh:
        fh.write(b'se_start", "phase": "implement"}\nnot json\n[1, 2]\n{"kind": "run_end"}')
    assert [r["kind"] for r in tail.read()] == ["phase_start"]
    assert [r["kind"] for r in tail.rest()] == ["run_end"]  # complete, if without a newline


def test_whether_a_run_is_busy_is_seen_without_taking_its_lock(tmp_path: Path) -> None:
    """Watching asks four times a second; taking the lock to ask would make a run that
    starts at that moment fail as busy."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert rundir.run_busy_seen(run_dir) is False  # no lock file yet
    with rundir.run_lock(run_dir):
        assert rundir.run_busy_seen(run_dir) is True
        if Path("/proc/locks").is_file():  # seen there, so never tried
            locks = Path("/proc/locks").read_text()
            assert f":{(run_dir / rundir.LOCK_FILE).stat().st_ino} " in locks
    assert rundir.run_busy_seen(run_dir) is False  # released (its process, this one, lives)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / rundir.LOCK_FILE).write_text(f"pid {dead.pid}")  # a holder that is gone
    assert rundir.run_busy_seen(run_dir) is False


def test_clean_leaves_one_line_of_plain_text() -> None:
    assert clean("a\tb\nc\x1b[31md\x9be\u202ef") == "a b c?[31md?e?f"
    assert clean({"path": "x"}) == '{"path": "x"}'
    assert clean("y" * 200, 10) == "yyyyyyy..."


def _copy(run_dir: Path, to: Path) -> Path:
    """The trace and spec of ``run_dir`` in a new run directory ``to`` (no process on it)."""
    (to / rundir.SPEC_DIR).mkdir(parents=True)
    shutil.copy2(run_dir / rundir.TRACE_FILE, to / rundir.TRACE_FILE)
    return to
