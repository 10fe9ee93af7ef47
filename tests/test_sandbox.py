"""The sandbox backends, for real: what every backend must do, and each one's own machinery.

The basics (exit codes, streams, timeouts, the workspace, mounts, choosing a backend, the
command line) run on docker, bwrap and local where each claims them; hostile programs
(fork and memory bombs, huge output and files, the network, the host's files and
secrets) are in test_hostile.py, docker's own machinery in test_docker_sandbox.py. bwrap
tests need bubblewrap and docker tests an engine with the image (they are skipped, saying
how to get them, only if missing).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerd import IMAGE, docker_engine  # noqa: F401  (a fixture)

from darkfactory.cli import main
from darkfactory.errors import SandboxUnavailable
from darkfactory.sandbox import _cgroup, bwrap, check_backends, open_sandbox
from darkfactory.sandbox._cgroup import Cgroup, Hierarchy
from darkfactory.sandbox.base import ExecResult, Limits, Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.bwrap import OVERHEAD_PIDS, BwrapSandbox
from darkfactory.sandbox.local import LocalSandbox
from darkfactory.sandbox.testrun import run_pytest

HAVE_BWRAP = shutil.which("bwrap") is not None or os.access("/usr/bin/bwrap", os.X_OK)
needs_bwrap = pytest.mark.skipif(
    not HAVE_BWRAP, reason="bubblewrap is not installed: apt-get install bubblewrap"
)
BACKENDS = ["docker", pytest.param("bwrap", marks=needs_bwrap), "local"]
ISOLATING = ["docker", pytest.param("bwrap", marks=needs_bwrap)]
SMALL = Limits(timeout_s=20, memory_mb=256, cpu_s=10, pids=64, output_bytes=64_000, file_size_mb=1)


def make(
    backend: str, workspace: Path, limits: Limits = SMALL, mounts: list[Mount] | None = None
) -> Sandbox:
    workspace.mkdir(parents=True, exist_ok=True)
    # hand_over: these are test-made directories, like a run's (docker as root chowns them).
    spec = SandboxSpec(workspace=workspace, mounts=mounts or [], limits=limits, hand_over=True)
    return open_sandbox(backend, spec)


def py(sb: Sandbox, code: str, **kw: object) -> ExecResult:
    return sb.run([sb.python, "-c", code], **kw)  # type: ignore[arg-type]


@contextlib.contextmanager
def opened(request: pytest.FixtureRequest, backend: str, workspace: Path) -> Iterator[Sandbox]:
    """A sandbox of ``backend`` (docker: once the engine is there), closed at the end."""
    if backend == "docker":
        request.getfixturevalue("docker_engine")
    sandbox = make(backend, workspace)
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture(params=BACKENDS)
def sb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sandbox]:
    with opened(request, request.param, tmp_path / "ws") as sandbox:
        yield sandbox


@pytest.fixture(params=ISOLATING)
def iso(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sandbox]:
    """docker and bwrap: the backends that isolate."""
    with opened(request, request.param, tmp_path / "ws") as sandbox:
        yield sandbox


@pytest.fixture
def bw(tmp_path: Path) -> Sandbox:
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap is not installed: apt-get install bubblewrap")
    return make("bwrap", tmp_path / "ws")


def ws_of(sb: Sandbox) -> Path:
    spec: SandboxSpec = sb.spec  # type: ignore[attr-defined]
    return Path(spec.workspace)


def cgroups_of(sb: Sandbox) -> Hierarchy:
    """Where the sandbox puts its commands' cgroups; skips the test if it uses none."""
    where = sb.cgroups if isinstance(sb, BwrapSandbox) else None
    if where is None:
        pytest.skip(f"this process cannot create cgroups: {_cgroup.hierarchy()}")
    return where


def our_cgroups(where: Hierarchy) -> list[str]:
    """The cgroup directories this test process has now."""
    tag = f"-{os.getpid()}-"
    return [d for p in where.parents for d in glob.glob(f"{p}/{_cgroup.PREFIX}*") if tag in d]


def running_with(marker: str) -> list[str]:
    """pids of the host's processes whose command line holds ``marker``."""
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                if marker.encode() in f.read():
                    found.append(cmdline.split("/")[2])
        except OSError:
            continue
    return found


def owners(top: Path) -> dict[str, tuple[int, int, int]]:
    """(uid, gid, mode) of ``top`` and of every path under it, by relative path."""
    found = {".": _owner(top)}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(root, name)
            found[str(path.relative_to(top))] = _owner(path)
    return found


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, st.st_mode


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


# -- memory (the bombs are in test_hostile.py) -----------------------------------------------
@pytest.mark.parametrize("backend", [pytest.param("bwrap", marks=needs_bwrap), "local"])
def test_a_crash_after_using_most_memory_counts_as_memory(backend: str, tmp_path: Path) -> None:
    # The rlimit backends' heuristic (docker reports only the kernel's OOM kills): a crash
    # after using most of the memory counts as a memory kill; a small crash does not.
    sb = make(backend, tmp_path / "ws")
    crash = (
        "import os, signal\nb = bytearray({} * 1024 * 1024)\nos.kill(os.getpid(), signal.SIGSEGV)"
    )
    big = py(sb, crash.format(SMALL.memory_mb * 3 // 4))
    assert (big.exit_code, big.killed) == (128 + 11, "memory"), big
    small = py(sb, crash.format(1))
    assert (small.exit_code, small.killed) == (128 + 11, None), small


# -- the workspace and mounts -------------------------------------------------------------
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


@pytest.mark.parametrize("backend", ISOLATING)
def test_git_dir_is_read_only_inside(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)  # there when the sandbox is made, as in a run
    (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    with opened(request, backend, ws) as bw:
        _git_dir_is_read_only(bw)


def _git_dir_is_read_only(bw: Sandbox) -> None:
    ws = ws_of(bw)
    r = bw.run(["sh", "-c", "echo evil > .git/hooks-pre-commit || exit 9; echo x >> .git/HEAD"])
    assert r.exit_code == 9
    assert sorted(p.name for p in (ws / ".git").iterdir()) == ["HEAD"]
    assert (ws / ".git" / "HEAD").stat().st_uid == os.getuid()


def test_a_planted_git_symlink_exposes_nothing(iso: Sandbox, tmp_path: Path) -> None:
    # A command plants .git -> a host directory; neither the next command nor the next
    # sandbox around the same workspace may bind that directory there.
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "marker").write_text("host-only-content\n")
    host_dir.chmod(0o755)
    assert iso.run(["ln", "-s", str(host_dir), ".git"]).exit_code == 0
    again = make(iso.backend, ws_of(iso))
    try:
        for sandbox in (iso, again):
            r = sandbox.run(["sh", "-c", "ls -a .git/; cat .git/marker"])
            assert r.exit_code != 0 and "host-only-content" not in r.stdout, r
            assert "marker" not in r.stdout, r
    finally:
        again.close()


@pytest.mark.parametrize("backend", ISOLATING)
def test_mounts_read_only_and_read_write(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "docker":
        request.getfixturevalue("docker_engine")  # (make() needs an engine)
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    (data / "f.txt").write_text("data\n")
    sb = make(
        backend,
        tmp_path / "ws",
        mounts=[Mount(data, "/data"), Mount(out, "/out", read_only=False)],
    )
    try:
        assert sb.path_of("/data") == "/data"
        with pytest.raises(KeyError):
            sb.path_of("/nope")
        r = sb.run(["sh", "-c", "cat /data/f.txt && echo x > /out/o.txt && echo y > /data/g.txt"])
        assert r.stdout == "data\n"
        assert r.exit_code != 0
        assert "Read-only file system" in r.stderr
        assert sorted(p.name for p in data.iterdir()) == ["f.txt"]
        assert (out / "o.txt").read_text() == "x\n"
    finally:
        sb.close()


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


# -- bwrap's cgroups (the hostile programs are in test_hostile.py) -------------------------
@needs_bwrap
def test_memory_of_all_processes_together_is_bounded(bw: Sandbox) -> None:
    cgroups_of(bw)
    # Four processes of 100 MB each: every one is under RLIMIT_AS (256 MB); together
    # they are not, and the cgroup's OOM killer ends one.
    r = py(
        bw,
        "import os, time\npids = []\nfor _ in range(4):\n    pid = os.fork()\n"
        "    if pid == 0:\n        b = bytearray(100 * 1024 * 1024)\n        time.sleep(3)\n"
        "        os._exit(0)\n    pids.append(pid)\n"
        "codes = [os.waitpid(p, 0)[1] for p in pids]\nprint(codes)\n"
        "raise SystemExit(1 if any(codes) else 0)",
    )
    assert (r.exit_code, r.killed) == (1, "memory"), r
    assert "9" in r.stdout  # a child died of SIGKILL


@needs_bwrap
def test_a_pytest_the_oom_killer_ends_is_a_memory_kill(bw: Sandbox) -> None:
    cgroups_of(bw)
    # pytest holds 150 MB, then its test's child asks for 150 MB: each is under RLIMIT_AS,
    # together they are over the cgroup, and the OOM killer ends the biggest, pytest. Its
    # parent, the runner, still reports; that must read as the memory limit, never as
    # "pytest exit code 137" (which the classification took for an import error).
    tests = ws_of(bw) / "tests"
    tests.mkdir()
    (tests / "test_oom.py").write_text(
        "import subprocess, sys\n\ndef test_memory():\n    held = bytearray(150 << 20)\n"
        "    subprocess.run([sys.executable, '-c', 'bytearray(150 << 20)'])\n"
        "    assert held\n"
    )
    run = run_pytest(bw, ["tests"], timeout=60)
    assert (run.exec.exit_code, run.killed) == (128 + 9, "memory"), run.exec


@needs_bwrap
def test_each_command_gets_a_cgroup_that_is_removed_after_it(bw: Sandbox) -> None:
    where = cgroups_of(bw)
    assert our_cgroups(where) == []
    seen: dict[str, str] = {}

    def watch() -> None:  # until the command is in its cgroup (every hierarchy's)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            dirs = our_cgroups(where)
            with contextlib.suppress(FileNotFoundError):
                if dirs and all(Path(d, "cgroup.procs").read_text().strip() for d in dirs):
                    for d in dirs:
                        for name in ("pids.max", "memory.limit_in_bytes", "memory.max"):
                            if os.path.exists(f"{d}/{name}"):
                                seen[name] = Path(d, name).read_text().strip()
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = bw.run(["sleep", "1"])
    watcher.join()
    assert r.exit_code == 0
    assert seen, "the command was never seen in its cgroup"
    assert seen["pids.max"] == str(SMALL.pids + OVERHEAD_PIDS)
    memory = seen.get("memory.limit_in_bytes", seen.get("memory.max"))
    assert memory == str(SMALL.memory_mb * 1024 * 1024)
    assert our_cgroups(where) == []  # removed after the command
    bw.close()
    assert our_cgroups(where) == []


@needs_bwrap
def test_cgroups_of_dead_owners_are_removed(bw: Sandbox) -> None:
    where = cgroups_of(bw)
    dead = subprocess.Popen(["true"])
    dead.wait()
    ns = os.stat("/proc/self/ns/pid").st_ino
    stale = [f"{p}/{_cgroup.PREFIX}{ns}-{dead.pid}-1-1" for p in where.parents]
    for d in stale:
        os.mkdir(d)
    alive = Cgroup(where, SMALL)  # ours: this process is alive, it stays
    try:
        removed = _cgroup.remove_stale(where)
        # Other dead owners' leftovers (e.g. a killed run on this machine) go too.
        assert set(stale) <= set(removed)
        assert not any(os.path.exists(d) for d in stale)
        assert all(os.path.isdir(d) for d in alive.dirs)
    finally:
        assert alive.remove()
    assert our_cgroups(where) == []


@needs_bwrap
def test_root_without_cgroups_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root needs cgroups; other users get rlimits in a user namespace")
    monkeypatch.setattr(bwrap, "hierarchy", lambda: "cgroups are read-only here")
    with pytest.raises(SandboxUnavailable, match="cgroups are read-only here"):
        BwrapSandbox(SandboxSpec(workspace=tmp_path))


# -- ownership: the sandbox never changes who owns the user's files --------------------------
@needs_bwrap
def test_the_sandbox_never_changes_who_owns_files(bw: Sandbox) -> None:
    ws = ws_of(bw)
    git = ["git", "-C", str(ws), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (ws / "src").mkdir()
    (ws / "src" / "app.py").write_text("x = 1\n")
    (ws / ".venv" / "bin").mkdir(parents=True)
    (ws / ".venv" / "bin" / "tool").write_text("#!/bin/sh\n")
    subprocess.run([*git, "add", "src"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (ws / "shared.txt").write_text("shared\n")
    (ws / "shared.txt").chmod(0o666)
    if os.geteuid() == 0:  # a file of another user, writable by all: written, never taken
        os.chown(ws / "shared.txt", 1234, 1234)
    before = owners(ws)

    r = bw.run(
        [
            "sh",
            "-c",
            "echo y = 2 >> src/app.py && mkdir -p new/sub && echo n > new/sub/f.txt "
            "&& echo top > top.txt && echo more >> shared.txt && git status --porcelain",
        ]
    )
    assert r.exit_code == 0, r.stderr
    assert "?? new/" in r.stdout  # git works inside too, on the read-only .git
    r = py(bw, "import os\nos.makedirs('pkg/mod')\nopen('pkg/mod/__init__.py', 'w').close()")
    assert r.exit_code == 0, r.stderr

    after = owners(ws)
    assert {k: after[k] for k in before} == before  # owner, group and mode unchanged
    created = set(after) - set(before)
    assert created >= {"new", "new/sub", "new/sub/f.txt", "top.txt", "pkg", "pkg/mod"}
    assert {after[k][:2] for k in created} == {(os.getuid(), os.getgid())}
    assert (ws / "shared.txt").read_text() == "shared\nmore\n"
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert " M src/app.py" in status.stdout and "?? new/" in status.stdout


@needs_bwrap
def test_an_interpreter_under_tmp_works(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        sb = BwrapSandbox(
            SandboxSpec(workspace=tmp_path, limits=SMALL), python=str(venv / "bin" / "python")
        )
        r = sb.run([sb.python, "-c", "import sys; print(sys.prefix)"])
        assert (r.exit_code, r.stdout.strip()) == (0, str(venv)), r


# -- choosing a backend -------------------------------------------------------------------
@pytest.mark.usefixtures("docker_engine")
@needs_bwrap
def test_auto_prefers_docker_then_bwrap_and_check_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import darkfactory.sandbox as sandbox_pkg
    from darkfactory.sandbox.docker import DockerSandbox

    auto = make("auto", tmp_path / "ws")
    try:
        assert isinstance(auto, DockerSandbox)
    finally:
        auto.close()
    status = check_backends(IMAGE)
    assert status == {"docker": None, "bwrap": None, "local": None}
    # No engine, or no image: bwrap.
    monkeypatch.setattr(sandbox_pkg, "docker_problem", lambda image: "image x is missing")
    assert isinstance(make("auto", tmp_path / "ws"), BwrapSandbox)


def test_auto_never_falls_back_to_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import darkfactory.sandbox as sandbox_pkg

    monkeypatch.setattr(sandbox_pkg, "bwrap_problem", lambda: "bwrap (bubblewrap) is not installed")
    monkeypatch.setattr(sandbox_pkg, "docker_problem", lambda image: "no Docker engine answers")
    with pytest.raises(SandboxUnavailable) as exc:
        make("auto", tmp_path / "ws")
    message = str(exc.value)
    assert "bwrap (bubblewrap) is not installed" in message
    assert "no Docker engine answers" in message
    assert "apt-get install bubblewrap" in message  # how to get either
    assert "apt-get install docker.io" in message and "build-image" in message


def test_unknown_backends_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend"):
        make("chroot", tmp_path / "ws")


# -- the command line ---------------------------------------------------------------------
def cli(argv: list[str]) -> int:
    return main(argv)


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


@pytest.mark.usefixtures("docker_engine")
def test_cli_bad_workspace_and_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sandbox", "exec", "--workspace", str(tmp_path / "missing"), "--", "true"]) == 2
    assert "not a directory" in capsys.readouterr().err
    argv = ["sandbox", "exec", "--backend", "docker", "--image", "darkfactory-nope:1"]
    assert cli([*argv, "--workspace", str(tmp_path), "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "image darkfactory-nope:1 is missing" in err
    assert "darkfactory sandbox build-image --name darkfactory-nope:1" in err


@pytest.mark.usefixtures("docker_engine")
@needs_bwrap
def test_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sandbox", "check", "--image", IMAGE]) == 0
    out = capsys.readouterr().out
    assert "docker: ok" in out and "bwrap: ok" in out and "local: ok" in out
    assert cli(["sandbox", "check", "--image", "darkfactory-nope:1"]) == 0  # bwrap works
    out = capsys.readouterr().out
    assert "docker: unavailable: image darkfactory-nope:1 is missing; build it: " in out
    assert "darkfactory sandbox build-image --name darkfactory-nope:1" in out
