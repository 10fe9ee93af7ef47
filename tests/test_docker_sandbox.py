"""The docker backend's own machinery, against the real engine.

The properties every backend shares are in test_sandbox.py and test_hostile.py (both run
on docker too). Here: how the container is made (limits, hardening, mounts), that one warm
container serves every command, that it never outlives its owner, ownership of what it
writes (git keeps working), the image and engine messages, and the image build's parts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerd import IMAGE, docker_engine  # noqa: F401  (a fixture)

from darkfactory.errors import InputError, SandboxUnavailable
from darkfactory.sandbox import docker_problem, open_sandbox
from darkfactory.sandbox.base import Limits, Mount, SandboxSpec
from darkfactory.sandbox.docker import LABEL, OWN_PIDS, OWNER_LABEL, DockerSandbox, _remove_stale
from darkfactory.sandbox.image import SANDBOX_UID, _finish_rootfs, apt_mirror

SMALL = Limits(
    timeout_s=20, memory_mb=256, cpu_s=10, pids=64, output_bytes=64_000, file_size_mb=1, cpus=1.5
)
needs_engine = pytest.mark.usefixtures("docker_engine")

#: A read-write mount besides the workspace (what /deps is in a run).
RESULTS_TARGET = "/results"


@pytest.fixture
def make(tmp_path: Path, docker_engine: None) -> Iterator[Any]:  # noqa: F811
    made: list[DockerSandbox] = []

    def make(ws: Path | None = None, **kw: Any) -> DockerSandbox:
        ws = ws or tmp_path / "ws"
        ws.mkdir(parents=True, exist_ok=True)
        kw.setdefault("hand_over", True)  # directories made for the test, like a run's
        spec = SandboxSpec(workspace=ws, limits=kw.pop("limits", SMALL), image=IMAGE, **kw)
        sb = DockerSandbox(spec)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.close()


def inspect(sb: DockerSandbox) -> dict[str, Any]:
    info: dict[str, Any] = sb.client.api.inspect_container(sb.container_id)
    return info


def gone(sb: DockerSandbox, cid: str, within: float = 10.0) -> bool:
    import docker

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            sb.client.api.inspect_container(cid)
        except docker.errors.NotFound:
            return True
        time.sleep(0.1)
    return False


# -- the container ------------------------------------------------------------------------
def test_the_container_is_locked_down_and_limited(make: Any, tmp_path: Path) -> None:
    acc, res = tmp_path / "acc", tmp_path / "res"
    acc.mkdir()
    res.mkdir()
    sb = make(mounts=[Mount(acc, "/acceptance"), Mount(res, RESULTS_TARGET, read_only=False)])
    info = inspect(sb)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == host["MemorySwap"] == SMALL.memory_mb * 1024 * 1024
    assert host["NanoCpus"] == int(SMALL.cpus * 1e9)
    assert host["PidsLimit"] == SMALL.pids + OWN_PIDS
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={SMALL.memory_mb}m,mode=1777"}
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False and host["AutoRemove"] is True
    uid = SANDBOX_UID if os.geteuid() == 0 else os.getuid()
    assert info["Config"]["User"].split(":")[0] == str(uid) != "0"
    # Only the workspace (read-write) and the spec's mounts; no host environment.
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in info["Mounts"]}
    assert mounts == {
        "/workspace": (str((tmp_path / "ws").resolve()), True),
        "/acceptance": (str(acc.resolve()), False),
        "/results": (str(res.resolve()), True),
    }
    assert {e.split("=")[0] for e in info["Config"]["Env"]} <= {"PATH", "HOSTNAME", "LANG"}
    labels = info["Config"]["Labels"]
    assert labels[LABEL] == "1"
    assert json.loads(labels[OWNER_LABEL])["pid"] == str(os.getpid())
    # Inside: not root, no capabilities, no new privileges.
    r = sb.run(["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"])
    assert r.stdout.split() == [str(uid), "CapEff:", "0000000000000000", "NoNewPrivs:", "1"], r


def test_one_warm_container_serves_every_command(make: Any) -> None:
    sb = make()
    cid = sb.container_id
    r = sb.run(["sh", "-c", "echo a > /tmp/left; cat /proc/1/cmdline | tr '\\0' ' '"])
    assert "sys.stdin.buffer.read" in r.stdout  # pid 1 is the sandbox's own init
    times = [sb.run(["true"]).duration_s for _ in range(7)]
    assert sb.container_id == cid
    assert statistics.median(times) < 0.25, times  # an exec, not a container start
    # Every command gets an empty /tmp, like a fresh sandbox.
    assert sb.run(["ls", "-A", "/tmp"]).stdout == ""


def test_close_removes_the_container(make: Any) -> None:
    sb = make()
    cid = sb.container_id
    sb.close()
    assert gone(sb, cid, within=0.5)
    with pytest.raises(RuntimeError, match="closed"):
        sb.run(["true"])
    sb.close()  # twice is fine


OWNER = """\
import sys, time
from pathlib import Path
from darkfactory.sandbox.base import SandboxSpec
from darkfactory.sandbox.docker import DockerSandbox
sb = DockerSandbox(SandboxSpec(workspace=Path(sys.argv[1]), image=sys.argv[2], hand_over=True))
print(sb.container_id, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_container_dies_with_its_owner(make: Any, tmp_path: Path, how: int) -> None:
    sb = make()  # (for its client)
    ws = tmp_path / "owner-ws"
    ws.mkdir()
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(ws), IMAGE], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    cid = owner.stdout.readline().strip()
    assert cid and not gone(sb, cid, within=0.2)
    owner.send_signal(how)
    owner.wait(timeout=10)
    assert gone(sb, cid, within=10)


def test_containers_of_dead_owners_are_removed(make: Any) -> None:
    sb = make()
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = json.loads(inspect(sb)["Config"]["Labels"][OWNER_LABEL])
    stale = sb.client.api.create_container(
        IMAGE,
        ["python3", "-c", "import time; time.sleep(600)"],
        labels={LABEL: "1", OWNER_LABEL: json.dumps({**here, "pid": str(dead.pid)})},
        host_config=sb.client.api.create_host_config(network_mode="none"),
    )["Id"]
    sb.client.api.start(stale)
    assert _remove_stale(sb.client, again=True) >= 1
    assert gone(sb, stale, within=1)
    assert inspect(sb)["State"]["Running"]  # ours: its owner is alive


def test_the_sandbox_survives_its_init_being_poked_or_its_container_dying(make: Any) -> None:
    sb = make()
    r = sb.run(["sh", "-c", "kill -INT 1; kill -TERM 1; kill -KILL 1; echo sent"])
    assert r.stdout == "sent\n"
    assert sb.run(["true"]).exit_code == 0
    first = sb.container_id
    sb.client.api.kill(first)  # e.g. the OOM killer took pid 1, or someone ran docker kill
    assert gone(sb, first)
    r = sb.run([sb.python, "-c", "print('back')"])
    assert (r.exit_code, r.stdout) == (0, "back\n")
    assert sb.container_id != first


def test_a_replaced_mount_and_a_new_git_dir_are_seen(make: Any, tmp_path: Path) -> None:
    acc = tmp_path / "acc"
    acc.mkdir()
    (acc / "test_old.py").write_text("old\n")
    sb = make(mounts=[Mount(acc, "/acceptance")])
    assert sb.run(["ls", "/acceptance"]).stdout == "test_old.py\n"
    shutil.rmtree(acc)  # how the pipeline freezes the acceptance tests
    acc.mkdir()
    (acc / "test_new.py").write_text("new\n")
    assert sb.run(["ls", "/acceptance"]).stdout == "test_new.py\n"
    # A .git made after the sandbox is mounted read-only from the next command on.
    (tmp_path / "ws" / ".git").mkdir()
    r = sb.run(["sh", "-c", "touch .git/hooks-planted"])
    assert r.exit_code != 0 and "Read-only file system" in r.stderr, r
    assert list((tmp_path / "ws" / ".git").iterdir()) == []


def test_a_command_that_closes_its_output_is_still_timed(make: Any) -> None:
    sb = make()
    r = sb.run(["sh", "-c", "exec >&- 2>&-; sleep 30"], timeout=1)
    assert (r.exit_code, r.killed) == (137, "timeout"), r
    assert r.duration_s < 5


def test_memory_kill_is_reported_by_the_kernels_count(make: Any) -> None:
    sb = make()
    # Four processes of 100 MB: none is big alone; the container's memory limit ends one.
    r = sb.run(
        [
            sb.python,
            "-c",
            "import os, time\npids = []\nfor _ in range(4):\n    pid = os.fork()\n"
            "    if pid == 0:\n        b = bytearray(100 * 1024 * 1024)\n        time.sleep(3)\n"
            "        os._exit(0)\n    pids.append(pid)\n"
            "codes = [os.waitpid(p, 0)[1] for p in pids]\nprint(codes)\n"
            "raise SystemExit(1 if any(codes) else 0)",
        ]
    )
    assert (r.exit_code, r.killed) == (1, "memory"), r
    assert "darkfactory-sandbox: memory limit (256 MB) reached" in r.stderr


# -- files: who owns what the container writes -----------------------------------------------
def test_git_keeps_working_after_the_container_writes(make: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    git = ["git", "-C", str(ws), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (ws / "app.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    top = ws.stat()
    config = (ws / ".git" / "config").read_text()
    sb = make(ws)
    r = sb.run(
        [
            "sh",
            "-c",
            "echo y = 2 >> app.py && mkdir -p pkg && echo z > pkg/new.py && "
            "(echo evil > .git/hooks/pre-commit; echo '[core]' >> .git/config) 2>/dev/null; "
            "ls -ln pkg/new.py",
        ]
    )
    assert r.exit_code == 0, r
    uid = SANDBOX_UID if os.geteuid() == 0 else os.getuid()
    assert r.stdout.split()[2] == str(uid)  # written by the sandbox's user
    # The host (root or the user) still reads, writes and commits all of it.
    (ws / "pkg" / "new.py").write_text("z = 3\n")
    (ws / "host.py").write_text("h = 1\n")  # a host file the next command must be able to edit
    assert sb.run(["sh", "-c", "echo more >> host.py"]).exit_code == 0
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "sandbox work"], check=True)
    log = subprocess.run([*git, "log", "--format=%s"], capture_output=True, text=True, check=True)
    assert log.stdout.split("\n")[:2] == ["sandbox work", "init"]
    # .git is read-only inside: no hook, no config planted; it and the workspace directory
    # keep their owner (git refuses a repository owned by someone else).
    assert not (ws / ".git" / "hooks" / "pre-commit").exists()
    assert (ws / ".git" / "config").read_text() == config
    assert {p.lstat().st_uid for p in (ws / ".git").rglob("*")} == {os.getuid()}
    assert ws.stat().st_uid == top.st_uid


@needs_engine
def test_a_directory_that_is_not_a_runs_never_changes_owner(tmp_path: Path) -> None:
    # ``sandbox exec --workspace DIR`` as root: handing DIR over would give every file
    # under it to nobody, so a root-owned workspace without hand_over is refused.
    if os.geteuid() != 0:
        pytest.skip("only root hands files over")
    ws = tmp_path / "users-dir"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "f.txt").write_text("x\n")
    before = {p: (p.lstat().st_uid, p.lstat().st_gid, p.lstat().st_mode) for p in ws.rglob("*")}
    top = ws.stat()
    with pytest.raises(SandboxUnavailable, match="belongs to root") as exc:
        open_sandbox("docker", SandboxSpec(workspace=ws, image=IMAGE))
    assert "use the bwrap backend" in str(exc.value)
    after = {p: (p.lstat().st_uid, p.lstat().st_gid, p.lstat().st_mode) for p in ws.rglob("*")}
    assert after == before
    assert (ws.stat().st_uid, ws.stat().st_gid, ws.stat().st_mode) == (
        top.st_uid,
        top.st_gid,
        top.st_mode,
    )


# -- the image and the engine ----------------------------------------------------------------
@needs_engine
def test_a_missing_image_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as exc:
        open_sandbox("docker", SandboxSpec(workspace=tmp_path, image="darkfactory-nope:1"))
    assert "image darkfactory-nope:1 is missing" in str(exc.value)
    assert "darkfactory sandbox build-image --name darkfactory-nope:1" in str(exc.value)
    assert (
        "build-image --name"
        not in (docker_problem("darkfactory-nope:1") or "").split("build it: ")[0]
    )


def test_no_engine_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    why = docker_problem()
    assert why is not None and f"no Docker engine answers at unix://{tmp_path}" in why
    assert "apt-get install docker.io" in why and "dockerd" in why
    with pytest.raises(SandboxUnavailable, match="no Docker engine answers"):
        open_sandbox("docker", SandboxSpec(workspace=tmp_path))


def test_the_apt_mirror_comes_from_the_machines_sources(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    with pytest.raises(InputError, match="no apt source for Debian bookworm"):
        apt_mirror("bookworm", apt)
    (apt / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main\n"
    )
    assert apt_mirror("bookworm", apt) == "http://list.example/debian"
    (apt / "sources.list.d" / "other.list").write_text(
        "deb https://vendor.example/apt vendor-bookworm main\n"
    )
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://disabled.example/debian\nSuites: bookworm\n"
        "Enabled: no\n\n"
        "Types: deb\nURIs: http://deb822.example/debian\n  http://second.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert apt_mirror("bookworm", apt) == "http://deb822.example/debian"
    assert apt_mirror("bookworm-security", apt) == "http://security.example/debian-security"
    (apt / "sources.list.d" / "nodesource.sources.disabled-by-someone").write_text(
        "Types: deb\nURIs: http://ignored.example\nSuites: trixie\n"
    )
    with pytest.raises(InputError, match="--mirror URL"):
        apt_mirror("trixie", apt)


def test_the_rootfs_gets_its_user_and_loses_its_caches(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    for d in ("etc", "var/cache/apt/archives", "var/lib/apt/lists"):
        (root / d).mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "var/cache/apt/archives/python3.deb").write_bytes(b"x")
    (root / "var/lib/apt/lists/deb.example_Packages").write_bytes(b"x")
    _finish_rootfs(root)
    assert f"nobody:x:{SANDBOX_UID}:{SANDBOX_UID}:" in (root / "etc" / "passwd").read_text()
    assert f"nogroup:x:{SANDBOX_UID}:" in (root / "etc" / "group").read_text()
    assert (root / "workspace").is_dir()
    assert list((root / "var/cache/apt/archives").iterdir()) == []
    assert list((root / "var/lib/apt/lists").iterdir()) == []
    _finish_rootfs(root)  # idempotent: one user, not two
    assert (root / "etc" / "passwd").read_text().count(":65534:") == 1


@needs_engine
def test_the_image_has_what_the_sandbox_needs() -> None:
    from darkfactory.sandbox.docker import docker_client
    from darkfactory.sandbox.image import PYTHON_CHECK

    out = docker_client().containers.run(
        IMAGE, [PYTHON_CHECK[0], "-c", PYTHON_CHECK[1]], remove=True, network_mode="none"
    )
    assert out.decode().startswith("python 3.")
    assert "pip " in out.decode() and "pytest " in out.decode()
