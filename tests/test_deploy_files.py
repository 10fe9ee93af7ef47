"""deploy/: the systemd units, the env example, compose.yaml and the Dockerfile say what
darkfactory accepts, and the units' commands start a real server and worker here.

Every command line is parsed by darkfactory's own parser after its ``${VARS}`` are filled
in, so an option renamed in the code fails here, not on someone's server. The last test
starts the units' two commands against a real redis-server on loopback.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from runhelp import NEEDS_BWRAP

from darkfactory.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SYSTEMD = DEPLOY / "systemd"
UNITS = {
    "serve": SYSTEMD / "darkfactory-serve.service",
    "worker": SYSTEMD / "darkfactory-worker@.service",
}
ENV_EXAMPLE = SYSTEMD / "darkfactory.env.example"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
#: ``${NAME}``, and compose's ``${NAME:-default}`` / ``${NAME-default}``.
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}")
SECRET = re.compile(r"TOKEN|SECRET|KEY|PASSWORD")
#: What bwrap creates for each sandbox (``--unshare-all --unshare-user``).
BWRAP_NAMESPACES = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}
#: Options that break bwrap or what it runs (the worker unit's comments say why).
BREAK_BWRAP = (
    "ProtectKernelTunables",
    "ProtectKernelLogs",
    "ProcSubset",
    "ProtectControlGroups",
    "PrivateDevices",
    "ProtectClock",
    "DeviceAllow",
    "SystemCallFilter",
    "MemoryDenyWriteExecute",
)
REDIS = shutil.which("redis-server")


# -- reading the files ---------------------------------------------------------------------
def env_example() -> dict[str, str]:
    """The example's ``NAME=value`` lines (commented-out ones are not settings)."""
    values = {}
    for n, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, eq, value = line.partition("=")
        assert eq and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"{ENV_EXAMPLE.name}:{n}: {line}"
        assert name not in values, f"{ENV_EXAMPLE.name}:{n}: {name} twice"
        values[name] = value
    return values


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(UNITS[name].read_text(encoding="utf-8"), source=str(UNITS[name]))
    return parser


def unit_lines(name: str, key: str) -> list[str]:
    """Every value of ``key`` (systemd adds up repeated keys; configparser keeps the last)."""
    text = UNITS[name].read_text(encoding="utf-8")
    return re.findall(rf"^{key}=(.*)$", text, flags=re.MULTILINE)


def substitute(text: str, values: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        assert m[1] in values, f"no test value for ${{{m[1]}}}"
        return values[m[1]]

    return VAR.sub(value, text)


def exec_argv(name: str, values: dict[str, str], instance: str = "a") -> list[str]:
    """The unit's ExecStart as argv, as systemd would run it with ``values`` set."""
    line = unit(name)["Service"]["ExecStart"]
    line = re.sub(r"\\\n\s*", " ", line)  # systemd's line continuation
    assert not re.search(r"\$(?!\{)", line), f"{name}: only ${{NAME}} (one word each): {line}"
    line = substitute(line, values).replace("%i", instance).replace("%%", "%")
    return shlex.split(line)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def darkfactory_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in doc["services"].items()
        if svc.get("command") and svc["command"][0] == "darkfactory"
    }


def mounts_of(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's ``volumes`` as {target: source}."""
    return {dst: src for src, dst, *_ in (str(v).split(":") for v in service["volumes"])}


def parse(argv: list[str]) -> Any:
    """``argv`` (after the program) as darkfactory parses it; a bad option fails the test."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"darkfactory does not take {shlex.join(argv)}") from exc


# -- the env example -----------------------------------------------------------------------
def test_the_env_example_lists_every_variable_the_units_and_compose_use() -> None:
    used = {p.name: set(VAR.findall(p.read_text(encoding="utf-8"))) for p in UNITS.values()}
    used[COMPOSE.name] = set(VAR.findall(COMPOSE.read_text(encoding="utf-8")))
    listed = set(env_example())
    missing = {f: sorted(names - listed) for f, names in used.items() if names - listed}
    assert not missing, f"used but not in {ENV_EXAMPLE.name}: {missing}"
    assert {"BROKER", "STORE", "WORK", "RUNS", "QUEUE"} <= set().union(*used.values())


def test_secrets_stay_in_the_env_file_empty_in_the_example_and_never_in_a_unit() -> None:
    values = env_example()
    secrets = [n for n in values if SECRET.search(n)]
    assert "DARKFACTORY_TOKENS" in secrets
    assert not [n for n in secrets if values[n]], "the example holds a secret's value"
    for name in UNITS:
        inline = [a.split("=")[0] for line in unit_lines(name, "Environment") for a in line.split()]
        # BROKER may carry the broker's password (redis://:PASSWORD@host/0).
        leaked = [n for n in inline if SECRET.search(n) or n == "BROKER"]
        assert not leaked, f"{name}: set with Environment= (any user may read it): {leaked}"
        files = unit_lines(name, "EnvironmentFile")
        assert "/etc/darkfactory/darkfactory.env" in files, files
        # The units' defaults and the example agree.
        for line in unit_lines(name, "Environment"):
            for assignment in line.split():
                key, _, default = assignment.partition("=")
                assert values[key] == default, f"{name}: {key}={default}, example: {values[key]}"


def test_the_paths_of_the_env_example_are_writable_under_the_units_hardening() -> None:
    values = env_example()
    for name, paths in {"serve": ("STORE", "RUNS"), "worker": ("STORE", "WORK")}.items():
        service = unit(name)["Service"]
        assert service["ProtectSystem"] == "strict"
        writable = [p.lstrip("-") for p in service["ReadWritePaths"].split()]
        writable += [f"/var/lib/{d}" for d in service["StateDirectory"].split()]
        for var in paths:
            path = Path(values[var])
            assert any(path.is_relative_to(w) for w in writable), f"{name}: {var}={path}"


# -- the systemd units ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_units_exec_start_parses_with_darkfactorys_own_parser(name: str) -> None:
    values = env_example()
    parsed = unit(name)
    assert {"Unit", "Service", "Install"} <= set(parsed.sections())
    argv = exec_argv(name, values, instance="b")
    assert argv[0].startswith("/") and Path(argv[0]).name == "darkfactory", argv[0]
    args = parse(argv[1:])
    assert args.command == name
    assert (args.broker, args.store, args.queue) == (
        values["BROKER"],
        Path(values["STORE"]),
        values["QUEUE"],
    )
    if name == "worker":
        assert args.work == Path(values["WORK"]) / "b"  # each instance its own
        assert args.sandbox == values["SANDBOX"] and args.concurrency == int(values["CONCURRENCY"])
    else:
        assert (args.host, args.port, args.out) == (
            values["HOST"],
            int(values["PORT"]),
            Path(values["RUNS"]),
        )


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_units_restart_on_failure_kill_the_group_and_run_unprivileged(name: str) -> None:
    service = unit(name)["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillMode"] == "control-group"
    assert service["User"] not in ("", "root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_the_worker_unit_leaves_bwrap_the_namespaces_it_needs() -> None:
    worker = unit("worker")["Service"]
    assert set(worker["RestrictNamespaces"].split()) >= BWRAP_NAMESPACES
    assert "AF_NETLINK" in worker["RestrictAddressFamilies"].split()  # the sandbox's loopback
    assert not [k for k in BREAK_BWRAP if k in worker], "set on the worker: breaks bwrap"
    assert "PrivateUsers" not in worker
    # The server runs no sandbox: no namespaces at all, few syscalls.
    serve = unit("serve")["Service"]
    assert serve["RestrictNamespaces"] == "yes"
    assert "@system-service" in unit_lines("serve", "SystemCallFilter")


# -- compose and the image -----------------------------------------------------------------
def test_compose_runs_redis_the_server_and_two_workers_on_one_store() -> None:
    doc = compose()
    services = doc["services"]
    workers = sorted(n for n in services if n.startswith("worker-"))
    assert {"redis", "serve"} <= set(services) and len(workers) >= 2, sorted(services)

    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert mounts_of(redis).get("/data") in doc["volumes"], "the append-only file in a volume"

    values = env_example()
    stores = {}
    for name, svc in darkfactory_services(doc).items():
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE.parent / svc["build"]["context"] / "deploy/Dockerfile").is_file()
        argv = [substitute(str(a), values) for a in svc["command"]]
        args = parse(argv[1:])
        assert args.broker.startswith("redis://redis:"), args.broker  # the redis service
        mounts = mounts_of(svc)
        assert str(args.store) in mounts, f"{name}: --store {args.store} is no volume"
        stores[name] = mounts[str(args.store)]
        assert stores[name] in doc["volumes"], f"{name}: not a named volume"
        assert svc.get("env_file"), f"{name}: secrets come from an env_file"
    assert set(stores) == {"serve", *workers}
    assert len(set(stores.values())) == 1, f"not one shared store: {stores}"
    for name in workers:
        opts = set(services[name]["security_opt"])
        # bwrap in the container: see the comment at the top of compose.yaml.
        assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= opts
        assert "no-new-privileges:true" in opts and services[name]["cap_drop"] == ["ALL"]
        argv = [substitute(str(a), values) for a in services[name]["command"]]
        assert parse(argv[1:]).sandbox == "bwrap"
    assert "seccomp=unconfined" not in services["serve"].get("security_opt", [])
    assert services["serve"].get("stop_signal", "SIGTERM") == kill_signal("serve").name


def test_the_dockerfile_installs_the_package_and_bubblewrap_as_a_user() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    assert re.search(r"apt-get install[^\n]*\bbubblewrap\b", text)
    assert re.search(r"pip install[^\n]*/src\b", text)
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    # Every COPY source exists, and the wheel's sources are all copied.
    copied: list[str] = []
    for line in re.findall(r"^COPY\s+(.+)$", text, flags=re.MULTILINE):
        *sources, _ = line.split()
        copied += sources
    assert not [s for s in copied if not (REPO / s).exists()], copied
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]
    needed = [*wheel["build"]["targets"]["wheel"]["packages"], "pyproject.toml", "hatch_build.py"]
    needed += list(wheel["build"]["targets"]["wheel"]["force-include"])
    missing = [n for n in needed if not any(n == c or n.startswith(f"{c}/") for c in copied)]
    assert not missing, f"the wheel needs these, the Dockerfile does not copy them: {missing}"


# -- the units' commands, started here -----------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own on a free loopback port."""
    if REDIS is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(data)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not listen within 20 s"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(20)


def start(argv: list[str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    """``argv`` as the unit would run it, with ``darkfactory`` this interpreter's, in the
    repository (its config/ is the project's), in a process group of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DARKFACTORY_")}
    env["PYTHONPATH"] = str(REPO)
    with out.open("ab") as stdout, err.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "darkfactory", *argv[1:]],
            cwd=REPO, env=env, stdout=stdout, stderr=stderr, start_new_session=True,
        )  # fmt: skip


def kill_signal(name: str) -> signal.Signals:
    return signal.Signals[unit(name)["Service"].get("KillSignal", "SIGTERM")]


def clean_exits(name: str) -> set[int]:
    """The exit codes systemd counts as a clean stop of the unit (0 and SuccessExitStatus=)."""
    listed = unit(name)["Service"].get("SuccessExitStatus", "").split()
    return {0, *(int(code) for code in listed if code.isdigit())}


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """``sig`` to its process group (systemd's KillMode=control-group), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(what: str, found: Any, procs: list[subprocess.Popen[bytes]], logs: Path) -> Any:
    deadline = time.monotonic() + 120
    while (result := found()) is None:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: exited {p.returncode}\n{read_logs(logs)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within 120 s\n{read_logs(logs)}")
        time.sleep(0.2)
    return result


def read_logs(logs: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}" for p in logs.iterdir())


@NEEDS_BWRAP
def test_the_units_start_the_same_commands_here(tmp_path: Path, redis_url: str) -> None:
    values = {
        **env_example(),
        "BROKER": redis_url,
        "STORE": str(tmp_path / "store"),
        "WORK": str(tmp_path / "work"),
        "RUNS": str(tmp_path / "runs"),
        "HOST": "127.0.0.1",
        "PORT": "0",
        "CONCURRENCY": "1",
    }
    (tmp_path / "store").mkdir()  # the shared filesystem, mounted
    logs = tmp_path / "logs"
    logs.mkdir()
    worker_log = logs / "worker.log"
    worker = start(exec_argv("worker", values, instance="a"), worker_log, worker_log)
    serve = start(exec_argv("serve", values), logs / "serve.out", logs / "serve.err")
    try:

        def url() -> str | None:  # its first line: "darkfactory serve: URL (...)"
            out = (logs / "serve.out").read_text(encoding="utf-8", errors="replace")
            if "\n" not in out:
                return None
            assert out.startswith("darkfactory serve: "), out
            return out.split()[2]

        base = wait_for("the server", url, [serve], logs)
        assert base.startswith("http://127.0.0.1:"), base
        health = httpx.get(f"{base}/api/health", timeout=10)
        assert health.status_code == 200, health.text

        def ready() -> bool | None:  # Celery's word for it
            return "ready." in worker_log.read_text(errors="replace") or None

        wait_for("the worker", ready, [worker], logs)
        assert (tmp_path / "work" / "a").is_dir()  # WORK/%i: the instance's own
        assert {"jobs", "runs"} <= {p.name for p in (tmp_path / "store").iterdir()}
    finally:
        stop(serve, kill_signal("serve"))
        stop(worker, kill_signal("worker"))
    # The units' KillSignal ends each one cleanly (Celery's warm shutdown; the server's own).
    assert serve.returncode in clean_exits("serve"), read_logs(logs)
    assert worker.returncode in clean_exits("worker"), read_logs(logs)
