"""Issue 13, hole 5 and the disk quota: what a command leaves behind, on real backends.

After every command no setuid or setgid file or directory, device node, FIFO or socket is
left in the workspace or a read-write mount (``ExecResult.scrubbed`` says what was done),
nothing outside them is touched through a symlink, and a command that fills the disk
quota (``sandbox.disk_mb``) is killed (``killed="disk"``), which the verify phase
classifies as ``resource``. The session runs as root, so on bwrap a command runs as root
without capabilities: the setuid copy of ``/bin/sh`` it makes is root's.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from dockerd import docker_engine  # noqa: F401  (a fixture, which hostile asks for)
from test_hostile import ALL, Target, backends, hostile, py  # noqa: F401  (hostile: a fixture)

from darkfactory.engine.classify import diagnose
from darkfactory.reporting.trace import check_record
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Limits, Mount, SandboxSpec
from darkfactory.sandbox.testrun import run_pytest
from darkfactory.tools.run_command import RunCommandTool
from darkfactory.workspace.context import RunContext

_SPECIAL = (stat.S_ISFIFO, stat.S_ISSOCK, stat.S_ISCHR, stat.S_ISBLK)

#: Makes setuid and setgid things (a copy of /bin/sh, a directory) under each directory
#: given, and prints the modes the command saw: proof the attack worked inside.
SET_ID = """\
import json, os, shutil, sys
seen = {}
for top in sys.argv[1:]:
    os.makedirs(f"{top}/d/sub", exist_ok=True)
    for name, mode in (("sh", 0o4755), ("gsh", 0o2755), ("d/sub/both", 0o6755)):
        shutil.copy("/bin/sh", f"{top}/{name}")
        os.chmod(f"{top}/{name}", mode)
        seen[f"{top}/{name}"] = os.stat(f"{top}/{name}").st_mode & 0o7777
    os.chmod(f"{top}/d", 0o2755)
    seen[f"{top}/d"] = os.stat(f"{top}/d").st_mode & 0o7777
print(json.dumps(seen))
"""

#: A FIFO, a listening Unix socket (left behind) and a device node, in each directory given.
SPECIAL = """\
import json, os, socket, stat, sys
made = {}
for top in sys.argv[1:]:
    os.makedirs(f"{top}/deep/er", exist_ok=True)
    os.mkfifo(f"{top}/deep/er/fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{top}/sock")
    s.listen()
    try:
        os.mknod(f"{top}/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made[f"{top}/null"] = "done"
    except OSError as e:
        made[f"{top}/null"] = e.strerror
print(json.dumps(made))
"""

#: Writes files of 64 KB (under RLIMIT_FSIZE) until ``argv[2]`` MB, into ``argv[1]``.
FLOOD = """\
import os, sys
top, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(top, exist_ok=True)
chunk = b"x" * 65536
for i in range(mb * 16):
    with open(f"{top}/f{i}", "wb") as f:
        f.write(chunk)
print("wrote everything")
"""

#: A read-write mount besides the workspace (what /deps is in a run).
RESULTS_TARGET = "/results"


def results_of(t: Target) -> Path:
    return t.ws.parent / "res"  # the hostile fixture's read-write results mount


def leftovers(*tops: Path) -> list[str]:
    """Everything under ``tops`` that must not survive a command (no link followed)."""
    bad = []
    for top in tops:
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                mode = os.lstat(os.path.join(root, name)).st_mode
                if mode & (stat.S_ISUID | stat.S_ISGID) or any(f(mode) for f in _SPECIAL):
                    bad.append(f"{os.path.join(root, name)} {stat.filemode(mode)}")
    return bad


def size_of(top: Path) -> int:
    return sum(p.lstat().st_size for p in top.rglob("*") if p.is_file() and not p.is_symlink())


# -- setuid, setgid -------------------------------------------------------------------------
@backends(*ALL)
def test_setuid_and_setgid_files_and_directories_are_stripped(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
) -> None:
    t = hostile(backend)
    res = t.sb.path_of(RESULTS_TARGET)
    r = py(t.sb, SET_ID, ".", res)
    assert (r.exit_code, r.killed) == (0, None), r
    seen = json.loads(r.stdout)
    # Inside, the attack worked: the bits were set (on bwrap run as root: root's /bin/sh).
    assert seen["./sh"] == 0o4755 and seen["./d/sub/both"] == 0o6755, seen
    assert seen["./gsh"] & stat.S_ISGID and seen["./d"] & stat.S_ISGID, seen
    # After it, nothing with either bit is left, here or in the read-write mount.
    assert leftovers(t.ws, results_of(t)) == []
    assert os.stat(t.ws / "sh").st_mode & 0o777 == 0o755  # the rest of the mode is kept
    assert (t.ws / "sh").read_bytes() == Path("/bin/sh").read_bytes()  # stripped, not removed
    scrubbed = set(r.scrubbed)
    assert {
        "sh: setuid bit stripped (4755)",
        "gsh: setgid bit stripped (2755)",
        "d/sub/both: setuid and setgid bits stripped (6755)",
        "/results/sh: setuid bit stripped (4755)",
    } <= scrubbed, r.scrubbed
    assert any(s.startswith("d: setgid bit stripped") for s in scrubbed), r.scrubbed
    t.assert_contained()


@backends(*ALL)
def test_a_git_directory_the_command_makes_is_scrubbed_too(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
) -> None:
    """Only a ``.git`` the sandbox bound read-only is skipped; a new one is writable."""
    t = hostile(backend)
    r = py(t.sb, SET_ID, ".git")
    assert (r.exit_code, r.killed) == (0, None), r
    assert leftovers(t.ws) == []
    assert ".git/sh: setuid bit stripped (4755)" in r.scrubbed, r.scrubbed
    t.assert_contained()


# -- FIFOs, sockets, device nodes -----------------------------------------------------------
@backends(*ALL)
def test_fifos_sockets_and_device_nodes_are_removed(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
) -> None:
    t = hostile(backend)
    res = t.sb.path_of(RESULTS_TARGET)
    r = py(t.sb, SPECIAL, ".", res)
    assert (r.exit_code, r.killed) == (0, None), r
    mknod = json.loads(r.stdout)
    assert leftovers(t.ws, results_of(t)) == []
    for where, shown in ((t.ws, ""), (results_of(t), "/results/")):
        assert not os.path.lexists(where / "sock") and not os.path.lexists(where / "null")
        assert (where / "deep" / "er").is_dir()  # only the special files go
        assert f"{shown}deep/er/fifo: FIFO removed" in r.scrubbed, r.scrubbed
        assert f"{shown}sock: socket removed" in r.scrubbed, r.scrubbed
    if backend == "local":  # run as root without isolation, mknod works: and is undone
        assert set(mknod.values()) == {"done"}, mknod
        assert "null: character device removed" in r.scrubbed, r.scrubbed
    else:  # no capability to make one at all
        assert set(mknod.values()) == {"Operation not permitted"}, mknod
    t.assert_contained()


@backends(*ALL)
def test_a_symlink_never_leads_the_scrub_outside(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
    tmp_path: Path,
) -> None:
    """Links to a host setuid file, a host FIFO and a host directory: none is touched."""
    bait = tmp_path / "bait"
    bait.mkdir()
    (bait / "suid").write_bytes(b"#!/bin/sh\n")
    (bait / "suid").chmod(0o4755)
    (bait / "dir").mkdir()
    (bait / "dir").chmod(0o2755)
    os.mkfifo(bait / "fifo")
    t = hostile(backend)
    r = t.sb.run(
        [
            "sh",
            "-c",
            f"ln -s {bait}/suid suid && ln -s {bait}/fifo fifo && ln -s {bait} dir "
            f"&& mkdir sub && ln -s {bait}/dir sub/dir",
        ]
    )
    assert (r.exit_code, r.killed, r.scrubbed) == (0, None, ()), r
    assert (bait / "suid").stat().st_mode & 0o7777 == 0o4755
    assert (bait / "dir").stat().st_mode & 0o7777 == 0o2755
    assert stat.S_ISFIFO((bait / "fifo").lstat().st_mode)
    assert all((t.ws / n).is_symlink() for n in ("suid", "fifo", "dir", "sub/dir"))
    t.assert_contained()


# -- the disk quota -------------------------------------------------------------------------
@backends(*ALL)
def test_filling_the_disk_quota_kills_the_command(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
) -> None:
    t = hostile(backend, disk_mb=5)  # file_size_mb=1: RLIMIT_FSIZE never fires on 64 KB
    start = time.monotonic()
    r = py(t.sb, FLOOD, "flood", "400")
    assert (r.exit_code, r.killed) == (137, "disk"), r
    assert "wrote everything" not in r.stdout
    assert time.monotonic() - start < 15
    assert 5 << 20 < size_of(t.ws) < 400 << 20
    t.assert_contained()  # the next command (that writes nothing) still works
    # Over the quota now: a command that writes more is killed, even a quick one ...
    r = py(t.sb, FLOOD, "more", "1")
    assert r.killed == "disk", r
    # ... until files are deleted; a command that deletes is never killed for it.
    r = t.sb.run(["rm", "-rf", "flood", "more"])
    assert (r.exit_code, r.killed) == (0, None), r
    r = py(t.sb, FLOOD, "small", "2")
    assert (r.exit_code, r.killed, r.stdout) == (0, None, "wrote everything\n"), r
    # The read-write mounts count as well.
    r = py(t.sb, FLOOD, f"{t.sb.path_of(RESULTS_TARGET)}/flood", "400")
    assert r.killed == "disk", r
    t.assert_contained()


@backends(*ALL)
def test_empty_files_count_too(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
) -> None:
    """Each inode counts at least 4 KB: a flood of empty files cannot eat the host's inodes."""
    t = hostile(backend, disk_mb=5)
    r = py(
        t.sb,
        "import os\nos.mkdir('e')\nfor i in range(200_000):\n    open(f'e/{i}', 'w').close()\n"
        "print('made them all')",
    )
    assert r.killed == "disk" and "made them all" not in r.stdout, r
    assert len(os.listdir(t.ws / "e")) < 100_000
    t.assert_contained()


def test_a_disk_kill_in_a_test_run_is_a_resource_failure(tmp_path: Path) -> None:
    ws, acc, res = tmp_path / "ws", tmp_path / "acc", tmp_path / "res"
    for d in (ws, acc, res):
        d.mkdir()
    (acc / "test_spec.py").write_text(
        "def test_fills_the_disk():\n"
        "    for i in range(1000):\n"
        "        with open(f'f{i}', 'wb') as f:\n"
        "            f.write(b'x' * 65536)\n"
    )
    sb = open_sandbox(
        "local",
        SandboxSpec(
            workspace=ws,
            mounts=[Mount(acc, "/acceptance"), Mount(res, RESULTS_TARGET, read_only=False)],
            limits=Limits(timeout_s=60, disk_mb=2),
        ),
    )
    run = run_pytest(sb, [sb.path_of("/acceptance")], timeout=60)
    assert run.exec.killed == "disk", run.exec
    diagnosis = diagnose(run, None, ws)
    assert diagnosis.primary == "resource" and diagnosis.route == "developer"
    assert diagnosis.failures[0].detail == "killed by the disk limit"


# -- what the agent and the trace are told ----------------------------------------------------
@backends("bwrap")
def test_run_command_tells_the_agent_and_the_trace(
    hostile: Callable[..., Target],  # noqa: F811
    backend: str,
) -> None:
    t = hostile(backend)
    events: list[tuple[str, dict[str, object]]] = []
    ctx = RunContext(
        workspace=t.ws,
        sandbox=t.sb,
        test_timeout_s=20,
        on_event=lambda kind, data: events.append((kind, data)),
    )
    out = RunCommandTool(ctx=ctx)._run(
        argv=["sh", "-c", "cp /bin/sh 'x\ny' && chmod 4755 'x\ny' && mkfifo pipe"]
    )
    assert "removed/stripped after the command" in out
    assert "  'x\\ny': setuid bit stripped (4755)" in out  # a name shown, never raw
    assert "  pipe: FIFO removed" in out
    assert [kind for kind, _ in events] == ["sandbox_exec", "security"]
    data = events[-1][1]
    assert (data["tool"], data["what"]) == ("run_command", "scrubbed_after_command")
    assert sorted(data["paths"]) == ["'x\\ny'", "pipe"]  # type: ignore[call-overload]
    assert sorted(data["done"]) == [  # type: ignore[call-overload]
        "'x\\ny': setuid bit stripped (4755)",
        "pipe: FIFO removed",
    ]
    assert not check_record({"ts": "", "kind": "security", "phase": None, **data})
