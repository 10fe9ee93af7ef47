"""Hostile programs against every backend: each one must end contained.

For every attack and every backend that claims the property it attacks, four things are
checked: the command is killed or refused; the host is unchanged (the files outside the
workspace, the read-only acceptance suite, the host's processes, its loopback listener);
the next command in the same sandbox still works; and the ``ExecResult`` says which limit
fired (``killed``), or the command failed because the sandbox refused what it tried.

What each backend claims (its module doc says why):

* ``docker`` and ``bwrap``: everything here.
* ``local``: the limits (time, CPU, memory, output, file size) and the minimal environment
  only. It is not isolation: no network, file-system or process containment (as root not
  even a process limit), so those attacks are not run against it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from dockerd import docker_engine  # noqa: F401  (a fixture)

from darkfactory.sandbox import (
    ACCEPTANCE_TARGET,
    bwrap_problem,
    open_sandbox,
)
from darkfactory.sandbox.base import ExecResult, Limits, Mount, Sandbox, SandboxSpec

ISOLATING = ("docker", "bwrap")
ALL = ("docker", "bwrap", "local")
SMALL = Limits(timeout_s=20, memory_mb=256, cpu_s=10, pids=64, output_bytes=64_000, file_size_mb=1)
SECRET = "host-secret-7f3a9c"
ACCEPTANCE_TEST = "def test_spec():\n    assert True\n"

#: A read-write mount besides the workspace (what /deps is in a run).
RESULTS_TARGET = "/results"


def backends(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("backend", names)


@dataclass
class Target:
    """A sandbox built the way a run builds it, and the host files around it."""

    sb: Sandbox
    ws: Path
    acceptance: Path
    outside: Path
    before: dict[str, tuple[bytes, int, int, int]] = field(default_factory=dict)

    @property
    def secret(self) -> Path:
        return self.outside / "secret.txt"

    def host_state(self) -> dict[str, tuple[bytes, int, int, int]]:
        """Content, mode and owner of every file outside the workspace that we made."""
        state = {}
        for top in (self.outside, self.acceptance):
            for path in sorted(top.rglob("*")):
                st = path.lstat()
                data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
                state[str(path)] = (data, st.st_mode, st.st_uid, st.st_gid)
        return state

    def assert_contained(self) -> None:
        """The host is unchanged and the next command in the same sandbox works."""
        assert self.host_state() == self.before
        for path in ("/pwned", "/etc/pwned", "/root/pwned", "/tmp/pwned"):
            assert not os.path.exists(path), path
        nxt = self.sb.run([self.sb.python, "-c", "print(6 * 7)"])
        assert (nxt.exit_code, nxt.stdout, nxt.killed) == (0, "42\n", None), nxt


@pytest.fixture
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Target]]:
    """``hostile(backend, **limits)``: a fresh target; closed after the test."""
    made: list[Sandbox] = []

    def make(backend: str, **limits: float) -> Target:
        if backend == "docker":
            request.getfixturevalue("docker_engine")
        if backend == "bwrap" and bwrap_problem() is not None:
            pytest.skip(f"bwrap does not work here: {bwrap_problem()}")
        root = tmp_path / backend
        ws, acceptance, results, outside = (root / d for d in ("ws", "acc", "res", "outside"))
        for d in (ws, acceptance, results, outside):
            d.mkdir(parents=True)
        (acceptance / "test_spec.py").write_text(ACCEPTANCE_TEST)
        (outside / "secret.txt").write_text(SECRET + "\n")
        (outside / "secret.txt").chmod(0o644)
        spec = SandboxSpec(
            workspace=ws,
            mounts=[
                Mount(acceptance, ACCEPTANCE_TARGET),
                Mount(results, RESULTS_TARGET, read_only=False),
            ],
            limits=replace(SMALL, **limits),  # type: ignore[arg-type]
            hand_over=True,  # directories made for this test, like a run's
        )
        sb = open_sandbox(backend, spec)
        made.append(sb)
        target = Target(sb, ws, acceptance, outside)
        target.before = target.host_state()
        return target

    yield make
    for sb in made:
        sb.close()


def py(sb: Sandbox, code: str, *args: str, timeout: float | None = None) -> ExecResult:
    return sb.run([sb.python, "-c", code, *args], timeout=timeout)


#: Tries each (name, action) and prints {name: "done" or the error} as JSON.
ATTEMPTS = """\
import json, os, sys
def attempt(action):
    try:
        exec(action, {"os": os})
        return "done"
    except OSError as e:
        return e.strerror or str(e)
print(json.dumps({a: attempt(a) for a in sys.argv[1:]}))
"""


def attempts(sb: Sandbox, *actions: str) -> dict[str, str]:
    r = py(sb, ATTEMPTS, *actions)
    assert (r.exit_code, r.killed) == (0, None), r
    result: dict[str, str] = json.loads(r.stdout)
    return result


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


# -- processes ------------------------------------------------------------------------------
@backends(*ISOLATING)
def test_fork_bomb(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend, pids=32)
    marker = f"fork-bomb-{os.getpid()}-{time.monotonic_ns()}"
    most = [0]
    done = threading.Event()

    def count() -> None:  # how many of its processes the host ever saw at once
        while not done.is_set():
            most[0] = max(most[0], len(running_with(marker)))
            time.sleep(0.05)

    counter = threading.Thread(target=count)
    counter.start()
    start = time.monotonic()
    try:
        r = py(
            t.sb,
            f"# {marker}\nimport os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass",
            timeout=3,
        )
    finally:
        done.set()
        counter.join()
    assert r.killed == "timeout", r
    assert time.monotonic() - start < 10
    assert 0 < most[0] <= 32 + 8, most  # the process limit held it; nothing else did
    assert running_with(marker) == []  # and nothing of it survives
    t.assert_contained()


@backends(*ISOLATING)
def test_a_daemon_that_leaves_the_session_dies_with_the_command(
    hostile: Callable[..., Target], backend: str
) -> None:
    t = hostile(backend)
    marker = f"escapee-{os.getpid()}-{time.monotonic_ns()}"
    daemon = (
        f"# {marker}\nimport os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(1.5)\n"
        "        open(sys.argv[1], 'w').write('escaped')\n"
        "    os._exit(0)\n"
    )
    # Killed on a timeout while the daemon (its own session, double-forked) waits.
    r = py(t.sb, daemon + "time.sleep(30)\n", "timeout.txt", timeout=0.7)
    assert (r.exit_code, r.killed) == (137, "timeout"), r
    # Or the command ends at once and leaves the daemon behind.
    r = py(t.sb, daemon + "time.sleep(0.2)\n", "ended.txt")
    assert (r.exit_code, r.killed) == (0, None), r
    time.sleep(2)
    assert sorted(p.name for p in t.ws.iterdir()) == []
    assert running_with(marker) == []
    t.assert_contained()


# -- time and CPU ---------------------------------------------------------------------------
@backends(*ALL)
def test_infinite_loop(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend, cpu_s=1)
    busy = py(t.sb, "while True: pass", timeout=15)
    assert busy.killed == "cpu", busy
    assert busy.duration_s < 10
    idle = py(t.sb, "import time\nwhile True:\n    time.sleep(0.01)", timeout=1)
    assert (idle.exit_code, idle.killed) == (137, "timeout"), idle
    assert idle.duration_s < 4
    t.assert_contained()


# -- memory -------------------------------------------------------------------------------
@backends(*ALL)
def test_memory_bomb(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend)
    at_once = py(t.sb, f"b = bytearray({2 * SMALL.memory_mb} * 1024 * 1024)")
    assert at_once.exit_code != 0 and at_once.killed == "memory", at_once
    growing = py(t.sb, "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))")
    assert growing.exit_code != 0 and growing.killed == "memory", growing
    within = py(t.sb, f"b = bytearray({SMALL.memory_mb // 4} * 1024 * 1024); print(len(b))")
    assert (within.exit_code, within.killed) == (0, None), within
    t.assert_contained()


# -- output and disk ------------------------------------------------------------------------
@backends(*ALL)
def test_a_gigabyte_to_stdout(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend)
    r = py(
        t.sb,
        "import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n"
        "    sys.stdout.buffer.write(chunk)",
    )
    assert r.killed == "output", r.exit_code
    assert len(r.stdout) == SMALL.output_bytes
    assert r.duration_s < 10
    err = py(t.sb, "import sys\nwhile True:\n    sys.stderr.write('x' * 100000)")
    assert err.killed == "output" and len(err.stderr) == SMALL.output_bytes
    t.assert_contained()


@backends(*ALL)
def test_a_large_file(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend)
    limit = SMALL.file_size_mb * 1024 * 1024
    r = t.sb.run(["sh", "-c", "head -c 1073741824 /dev/zero > big.bin"])
    assert r.killed == "file_size", r
    assert (t.ws / "big.bin").stat().st_size <= limit
    r = t.sb.run(["sh", "-c", "head -c 1073741824 /dev/zero > /tmp/big.bin"])
    assert r.killed == "file_size", r
    # Python ignores SIGXFSZ: the write fails instead, and the program says so.
    r = py(t.sb, "open('big2.bin', 'wb').write(b'x' * (8 << 20))")
    assert r.exit_code != 0 and "File too large" in r.stderr, r
    assert (t.ws / "big2.bin").stat().st_size <= limit
    t.assert_contained()


# -- network --------------------------------------------------------------------------------
@backends(*ISOLATING)
def test_connecting_to_a_host_listener(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        r = py(t.sb, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)")
        assert r.exit_code != 0 and r.killed is None
        assert "ConnectionRefusedError" in r.stderr or "unreachable" in r.stderr, r.stderr
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached the host's listener
    r = py(t.sb, "import socket; socket.getaddrinfo('pypi.org', 443)")
    assert r.exit_code != 0
    r = py(t.sb, "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert r.stdout.strip() == "['lo']", r  # a loopback of its own, nothing else
    t.assert_contained()


# -- the host's secrets and files -----------------------------------------------------------
@backends(*ALL)
def test_a_secret_in_the_host_environment(
    hostile: Callable[..., Target], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DARKFACTORY_HOSTILE_SECRET", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + SECRET)
    t = hostile(backend)
    r = t.sb.run(["env"], env={"EXTRA": "yes"})
    assert r.exit_code == 0 and SECRET not in r.stdout
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert set(env) - {"PWD"} == {
        "PATH",
        "HOME",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPATH",
        "EXTRA",
    }
    assert (env["HOME"], env["PYTHONPATH"], env["LANG"]) == ("/tmp", t.sb.workdir, "C.UTF-8")
    if backend in ISOLATING:  # nor through another process's environment
        r = t.sb.run(["sh", "-c", "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'"])
        assert SECRET not in r.stdout
    t.assert_contained()


@backends(*ISOLATING)
def test_reading_and_writing_outside_the_workspace(
    hostile: Callable[..., Target], backend: str
) -> None:
    t = hostile(backend)
    r = t.sb.run(["sh", "-c", f"cat {t.secret}; cat /etc/shadow; ls /root /home"])
    assert SECRET not in r.stdout and r.exit_code != 0
    done = attempts(
        t.sb,
        f"open({str(t.secret)!r}, 'a').write('pwned')",
        f"open({str(t.outside / 'pwned.txt')!r}, 'w').write('pwned')",
        "os.unlink('/etc/passwd')",
    )
    assert "done" not in done.values(), done
    # Writing the sandbox's own / may work (bwrap's is a private tmpfs); the host's never.
    attempts(
        t.sb,
        "open('/etc/pwned', 'w').write('pwned')",
        "open('/pwned', 'w').write('pwned')",
        "open('/root/pwned', 'w').write('pwned')",
    )
    t.assert_contained()  # no /etc/pwned, /pwned, /root/pwned on the host


@backends(*ISOLATING)
def test_a_symlink_planted_in_the_workspace(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend)
    (t.ws / "link.txt").symlink_to(t.secret)
    (t.ws / "linkdir").symlink_to(t.outside)
    r = t.sb.run(["sh", "-c", "cat link.txt; ls linkdir/"])
    assert SECRET not in r.stdout and "secret.txt" not in r.stdout, r
    done = attempts(
        t.sb,
        "open('link.txt', 'a').write('pwned')",
        "open('linkdir/new.txt', 'w').write('pwned')",
        "os.unlink('linkdir/secret.txt')",
    )
    assert "done" not in done.values(), done
    # One the command plants, for the host (or a hand-over of the workspace) to follow.
    r = t.sb.run(["ln", "-s", str(t.secret), "planted"])
    assert r.exit_code == 0, r
    t.assert_contained()  # runs another command, and whatever happens before it
    assert os.readlink(t.ws / "planted") == str(t.secret)


@backends(*ISOLATING)
def test_writing_an_acceptance_test(hostile: Callable[..., Target], backend: str) -> None:
    t = hostile(backend)
    acc = t.sb.path_of(ACCEPTANCE_TARGET)
    done = attempts(
        t.sb,
        f"open('{acc}/test_spec.py', 'w').write('def test_spec(): pass')",
        f"open('{acc}/test_spec.py', 'a').write('# appended')",
        f"open('{acc}/test_new.py', 'w').write('def test_new(): pass')",
        f"os.unlink('{acc}/test_spec.py')",
        f"os.rename('{acc}/test_spec.py', '{acc}/old.py')",
        f"os.chmod('{acc}/test_spec.py', 0o777)",
    )
    assert "done" not in done.values(), done
    assert "Read-only file system" in done.values(), done
    assert hashlib.sha256((t.acceptance / "test_spec.py").read_bytes()).hexdigest() == (
        hashlib.sha256(ACCEPTANCE_TEST.encode()).hexdigest()
    )
    t.assert_contained()
