"""The sandbox backends, for real: every limit is hit by a real process and must hold.

bwrap tests need bubblewrap (they are skipped, saying how to install it, only if ``bwrap``
is missing). Each property is checked on ``local`` too where it holds there (limits, kills,
environment); isolation properties (network, file system, processes) only on bwrap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from darkfactory.errors import SandboxUnavailable
from darkfactory.sandbox import check_backends, open_sandbox
from darkfactory.sandbox.base import ExecResult, Limits, Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.bwrap import BwrapSandbox
from darkfactory.sandbox.cli import add_parser
from darkfactory.sandbox.local import LocalSandbox

HAVE_BWRAP = shutil.which("bwrap") is not None or os.access("/usr/bin/bwrap", os.X_OK)
needs_bwrap = pytest.mark.skipif(
    not HAVE_BWRAP, reason="bubblewrap is not installed: apt-get install bubblewrap"
)
BACKENDS = [pytest.param("bwrap", marks=needs_bwrap), "local"]
SMALL = Limits(timeout_s=20, memory_mb=256, cpu_s=10, pids=64, output_bytes=64_000, file_size_mb=1)


def make(
    backend: str, workspace: Path, limits: Limits = SMALL, mounts: list[Mount] | None = None
) -> Sandbox:
    workspace.mkdir(parents=True, exist_ok=True)
    return open_sandbox(
        backend, SandboxSpec(workspace=workspace, mounts=mounts or [], limits=limits)
    )


def py(sb: Sandbox, code: str, **kw: object) -> ExecResult:
    return sb.run([sb.python, "-c", code], **kw)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def sb(request: pytest.FixtureRequest, tmp_path: Path) -> Sandbox:
    return make(request.param, tmp_path / "ws")


@pytest.fixture
def bw(tmp_path: Path) -> Sandbox:
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap is not installed: apt-get install bubblewrap")
    return make("bwrap", tmp_path / "ws")


def ws_of(sb: Sandbox) -> Path:
    spec: SandboxSpec = sb.spec  # type: ignore[attr-defined]
    return Path(spec.workspace)


# -- basics -------------------------------------------------------------------------------
def test_exit_code_streams_and_stdin(sb: Sandbox) -> None:
    r = sb.run(["sh", "-c", "cat; echo oops >&2; exit 3"], stdin="from stdin\n")
    assert (r.exit_code, r.stdout, r.stderr, r.killed) == (3, "from stdin\n", "oops\n", None)
    missing = sb.run(["no-such-program-xyz"])
    assert missing.exit_code == 127
    assert "no-such-program-xyz" in missing.stderr


def test_python_with_pytest_runs_inside(sb: Sandbox) -> None:
    r = py(sb, "import os, pytest; print(os.getcwd())")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == sb.workdir


def test_signal_death_is_reported_as_128_plus_n(sb: Sandbox) -> None:
    r = sb.run(["sh", "-c", "kill -TERM $$"])
    assert r.exit_code == 128 + 15


# -- time ---------------------------------------------------------------------------------
def test_timeout_kills_the_command_and_its_children(sb: Sandbox) -> None:
    start = time.monotonic()
    r = sb.run(["sh", "-c", "(sleep 1; echo late > marker) & sleep 30"], timeout=0.5)
    assert r.killed == "timeout"
    assert r.exit_code == 137
    assert time.monotonic() - start < 3
    time.sleep(1.5)  # the child would have written by now
    assert not (ws_of(sb) / "marker").exists()


def test_background_processes_die_when_the_command_ends(sb: Sandbox) -> None:
    start = time.monotonic()
    r = sb.run(["sh", "-c", "(sleep 1; echo late > marker) & echo started"])
    assert (r.exit_code, r.stdout, r.killed) == (0, "started\n", None)
    assert time.monotonic() - start < 1
    time.sleep(1.5)
    assert not (ws_of(sb) / "marker").exists()


def test_cpu_limit(tmp_path: Path) -> None:
    for name in ["local", *(["bwrap"] if HAVE_BWRAP else [])]:
        sb = make(name, tmp_path / name, replace(SMALL, cpu_s=1))
        r = py(sb, "while True: pass")
        assert r.killed == "cpu", (name, r)


# -- output -------------------------------------------------------------------------------
def test_output_is_capped_and_the_command_killed(sb: Sandbox) -> None:
    start = time.monotonic()
    r = sb.run(["yes"])
    assert r.killed == "output"
    assert len(r.stdout) == SMALL.output_bytes
    r2 = py(sb, "import sys\nwhile True: sys.stderr.write('x' * 100000)")
    assert r2.killed == "output"
    assert len(r2.stderr) == SMALL.output_bytes
    assert time.monotonic() - start < 5


# -- memory and files ---------------------------------------------------------------------
def test_memory_limit(sb: Sandbox) -> None:
    r = py(sb, f"b = bytearray({2 * SMALL.memory_mb} * 1024 * 1024)")
    assert r.killed == "memory", r
    assert r.exit_code != 0
    assert "MemoryError" in r.stderr
    ok = py(sb, f"b = bytearray({SMALL.memory_mb // 4} * 1024 * 1024); print(len(b))")
    assert (ok.exit_code, ok.killed) == (0, None), ok
    # A crash after using most of the memory counts as a memory kill; a small crash does not.
    crash = (
        "import os, signal\nb = bytearray({} * 1024 * 1024)\nos.kill(os.getpid(), signal.SIGSEGV)"
    )
    big = py(sb, crash.format(SMALL.memory_mb * 3 // 4))
    assert (big.exit_code, big.killed) == (128 + 11, "memory"), big
    small = py(sb, crash.format(1))
    assert (small.exit_code, small.killed) == (128 + 11, None), small


def test_file_size_limit(sb: Sandbox) -> None:
    big = 2 * SMALL.file_size_mb * 1024 * 1024
    r = py(sb, f"open('big.bin', 'wb').write(b'x' * {big})")
    assert r.exit_code != 0
    assert "File too large" in r.stderr
    assert (ws_of(sb) / "big.bin").stat().st_size <= SMALL.file_size_mb * 1024 * 1024
    r = sb.run(["sh", "-c", f"head -c {big} /dev/zero > big2.bin"])
    assert r.killed == "file_size", r


# -- environment --------------------------------------------------------------------------
def test_no_host_environment(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DARKFACTORY_FAKE_SECRET", "hunter2-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    r = sb.run(["env"], env={"EXTRA": "yes"})
    assert r.exit_code == 0
    assert "hunter2-secret" not in r.stdout and "sk-fake" not in r.stdout
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert set(env) - {"PWD"} == {
        "PATH",
        "HOME",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPATH",
        "EXTRA",
    }
    assert (env["HOME"], env["PYTHONPATH"], env["LANG"]) == ("/tmp", sb.workdir, "C.UTF-8")


# -- the workspace and mounts -------------------------------------------------------------
def test_workspace_is_writable_and_host_keeps_access(sb: Sandbox) -> None:
    ws = ws_of(sb)
    (ws / "host.txt").write_text("from host\n")
    r = sb.run(["sh", "-c", "echo more >> host.txt && mkdir -p d && echo new > d/new.txt"])
    assert r.exit_code == 0, r.stderr
    assert (ws / "host.txt").read_text() == "from host\nmore\n"
    assert (ws / "d" / "new.txt").read_text() == "new\n"
    with (ws / "d" / "new.txt").open("a") as f:  # the host can still write what it wrote
        f.write("host again\n")
    shutil.rmtree(ws / "d")
    assert ws.stat().st_uid == os.getuid()  # git refuses a repository owned by another uid


@needs_bwrap
def test_handing_the_workspace_over_never_follows_symlinks(bw: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host.txt").write_text("host\n")
    ws = ws_of(bw)
    (ws / "link.txt").symlink_to(outside / "host.txt")
    (ws / "linkdir").symlink_to(outside)
    r = bw.run(["sh", "-c", "echo x > link.txt; echo y > linkdir/new.txt"])
    assert r.exit_code != 0
    assert (outside / "host.txt").read_text() == "host\n"
    assert sorted(p.name for p in outside.iterdir()) == ["host.txt"]
    for p in (outside, outside / "host.txt"):
        assert p.stat().st_uid == os.getuid()


@needs_bwrap
def test_git_dir_is_read_only_inside(bw: Sandbox) -> None:
    ws = ws_of(bw)
    (ws / ".git").mkdir()
    (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    r = bw.run(["sh", "-c", "echo evil > .git/hooks-pre-commit || exit 9; echo x >> .git/HEAD"])
    assert r.exit_code == 9
    assert sorted(p.name for p in (ws / ".git").iterdir()) == ["HEAD"]
    assert (ws / ".git" / "HEAD").stat().st_uid == os.getuid()


@needs_bwrap
def test_a_planted_git_symlink_exposes_nothing(bw: Sandbox) -> None:
    # A command plants .git -> /etc; the next run must not bind the host's /etc there.
    assert bw.run(["ln", "-s", "/etc", ".git"]).exit_code == 0
    assert os.path.exists("/etc/shadow")
    r = bw.run(["ls", ".git/"])
    assert "passwd" in r.stdout and "shadow" not in r.stdout


@needs_bwrap
def test_mounts_read_only_and_read_write(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    (data / "f.txt").write_text("data\n")
    sb = make(
        "bwrap",
        tmp_path / "ws",
        mounts=[Mount(data, "/data"), Mount(out, "/out", read_only=False)],
    )
    assert sb.path_of("/data") == "/data"
    with pytest.raises(KeyError):
        sb.path_of("/nope")
    r = sb.run(["sh", "-c", "cat /data/f.txt && echo x > /out/o.txt && echo y > /data/g.txt"])
    assert r.stdout == "data\n"
    assert r.exit_code != 0
    assert "Read-only file system" in r.stderr
    assert sorted(p.name for p in data.iterdir()) == ["f.txt"]
    assert (out / "o.txt").read_text() == "x\n"


def test_local_path_of_is_the_host_source(tmp_path: Path) -> None:
    acc = tmp_path / "acc"
    acc.mkdir()
    sb = make("local", tmp_path / "ws", mounts=[Mount(acc, "/acceptance")])
    assert isinstance(sb, LocalSandbox)
    assert sb.path_of("/acceptance") == str(acc.resolve())
    assert sb.path_of("/acceptance/test_x.py") == f"{acc.resolve()}/test_x.py"
    assert sb.workdir == str((tmp_path / "ws").resolve())
    with pytest.raises(KeyError):
        sb.path_of("/results")


# -- isolation (bwrap only) ---------------------------------------------------------------
@needs_bwrap
def test_no_network(bw: Sandbox) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        r = py(bw, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)")
        assert r.exit_code != 0
        assert "ConnectionRefusedError" in r.stderr or "unreachable" in r.stderr, r.stderr
        with pytest.raises(BlockingIOError):
            server.accept()
    r = py(bw, "import socket; socket.getaddrinfo('pypi.org', 443)")
    assert r.exit_code != 0


@needs_bwrap
def test_files_outside_the_workspace_are_not_visible(bw: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("top secret\n")
    secret.chmod(0o644)
    r = bw.run(["sh", "-c", f"cat {secret}; ls /home /etc/shadow /root/.ssh; ls /etc"])
    assert "top secret" not in r.stdout
    assert "No such file" in r.stderr
    etc = set(r.stdout.split())
    assert "passwd" in etc and "shadow" not in etc and "ssh" not in etc
    assert str(tmp_path) not in py(bw, "import os; print(os.listdir('/tmp'))").stdout


@needs_bwrap
def test_fork_bomb_is_contained(tmp_path: Path) -> None:
    limits = replace(SMALL, pids=32)
    sb = make("bwrap", tmp_path / "ws", limits)
    # First measure the limit without harm: a bounded loop of sleeping children.
    counted = py(
        sb,
        "import os, time\nn = 0\nfor _ in range(200):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n    n += 1\nprint(n)",
    )
    assert counted.exit_code == 0, counted.stderr
    assert 0 < int(counted.stdout) < limits.pids
    # Now a real one: every process forks forever.
    start = time.monotonic()
    r = py(
        sb,
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        timeout=3,
    )
    assert r.killed == "timeout"
    assert time.monotonic() - start < 8
    if os.geteuid() == 0:  # nothing of the sandbox's uid survives it
        time.sleep(0.3)
        left = subprocess.run(["ps", "-o", "pid=", "-u", "65534"], capture_output=True, text=True)
        assert left.stdout.strip() == ""


# -- choosing a backend -------------------------------------------------------------------
@needs_bwrap
def test_auto_picks_bwrap_and_check_reports(tmp_path: Path) -> None:
    assert isinstance(make("auto", tmp_path / "ws"), BwrapSandbox)
    status = check_backends()
    assert status["bwrap"] is None and status["local"] is None
    assert status["docker"] == "not implemented yet; use bwrap"


def test_auto_never_falls_back_to_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import darkfactory.sandbox as sandbox_pkg

    monkeypatch.setattr(sandbox_pkg, "bwrap_problem", lambda: "bwrap (bubblewrap) is not installed")
    with pytest.raises(SandboxUnavailable) as exc:
        make("auto", tmp_path / "ws")
    assert "apt-get install bubblewrap" in str(exc.value)
    assert "docker" in str(exc.value)


def test_docker_and_unknown_backends_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="not implemented yet; use bwrap"):
        make("docker", tmp_path / "ws")
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend"):
        make("chroot", tmp_path / "ws")


# -- the command line ---------------------------------------------------------------------
def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_exec_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backend = "bwrap" if HAVE_BWRAP else "local"
    ws = tmp_path / "ws"
    ws.mkdir()
    cmd = ["sh", "-c", "echo hi; echo err >&2; exit 3"]
    assert (
        cli(["sandbox", "exec", "--backend", backend, "--workspace", str(ws), "--json", "--", *cmd])
        == 3
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["exit_code"], out["stdout"], out["stderr"], out["killed"]) == (
        3,
        "hi\n",
        "err\n",
        None,
    )
    assert (
        cli(
            [
                "sandbox",
                "exec",
                "--backend",
                backend,
                "--workspace",
                str(ws),
                "--timeout",
                "0.5",
                "--",
                "sleep",
                "5",
            ]
        )
        == 137
    )
    assert "timeout" in capsys.readouterr().err


def test_cli_bad_workspace_and_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sandbox", "exec", "--workspace", str(tmp_path / "missing"), "--", "true"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert (
        cli(["sandbox", "exec", "--backend", "docker", "--workspace", str(tmp_path), "--", "true"])
        == 2
    )
    assert "not implemented yet" in capsys.readouterr().err


@needs_bwrap
def test_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sandbox", "check"]) == 0
    out = capsys.readouterr().out
    assert "bwrap: ok" in out and "docker: unavailable" in out
