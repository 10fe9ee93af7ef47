"""What a sandbox costs per command: each backend against a bare subprocess.

Two commands: ``python -c pass`` (the fixed cost of one command) and a 50-test pytest suite
(what the verify step runs), each run ``--runs`` times (median; one warm-up run first, not
counted) in these modes:

* ``bare``: a plain ``subprocess.run`` on the host, no sandbox (with the environment the
  sandboxes give commands, which matters: ``PYTHONDONTWRITEBYTECODE=1`` and an interpreter
  whose packages were installed without bytecode make every run compile them again);
* ``local``, ``bwrap``: those backends (``Sandbox.run``);
* ``docker cold``: ``containers.run`` per command (a new container each time, with the
  backend's options: no network, limits, read-only root, tmpfs, non-root user, mounts);
* ``docker warm``: the docker backend (``exec`` in its running container).

Prints a Markdown table with each median, its ratio to bare and the overhead in ms.
Targets: warm docker's command overhead at most 100 ms; the pytest suite at most 1.3x
bare on bwrap and on warm docker. Usage (root, engine running, image built)::

    .venv/bin/python benchmarks/sandbox_overhead.py [--runs 7] [--image NAME]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from darkfactory.sandbox import bwrap_problem, docker_problem, open_sandbox  # noqa: E402
from darkfactory.sandbox._proc import minimal_env  # noqa: E402
from darkfactory.sandbox.base import Limits, Sandbox, SandboxSpec  # noqa: E402
from darkfactory.sandbox.image import DEFAULT_IMAGE  # noqa: E402

SUITE = """\
import pytest


@pytest.mark.parametrize("n", range(50))
def test_n(n):
    assert n * n >= 0
"""
LIMITS = Limits(timeout_s=120)


def timed(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: caches, first container, imports
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def commands(python: str) -> dict[str, list[str]]:
    return {
        "python -c pass": [python, "-c", "pass"],
        "pytest, 50 tests": [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_suite.py",
        ],
    }


def in_sandbox(sb: Sandbox, argv: list[str]) -> Callable[[], object]:
    def run() -> object:
        r = sb.run(argv)
        if r.exit_code != 0:
            raise SystemExit(f"{sb.backend}: {argv} failed: {r}")
        return r

    return run


def docker_cold(ws: Path, image: str, argv: list[str]) -> Callable[[], object]:
    """One new container per command, with the warm backend's options."""
    from docker.types import Mount

    from darkfactory.sandbox.docker import PATH, WORKDIR, docker_client

    client = docker_client()
    mb = f"{LIMITS.memory_mb}m"

    def run() -> object:
        return client.containers.run(
            image,
            argv,
            remove=True,
            network_mode="none",
            mem_limit=mb,
            memswap_limit=mb,
            nano_cpus=int(LIMITS.cpus * 1e9),
            pids_limit=LIMITS.pids,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={mb},mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user="65534:65534",
            working_dir=WORKDIR,
            environment={"PATH": PATH, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
            mounts=[Mount(WORKDIR, str(ws), type="bind", read_only=False)],
        )

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="timed runs per cell (median; >= 5)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help="docker image")
    args = p.parse_args(argv)
    if args.runs < 5:
        p.error("--runs must be at least 5")
    with tempfile.TemporaryDirectory(prefix="darkfactory-bench-") as tmp:
        ws = Path(tmp)
        ws.chmod(0o755)
        (ws / "test_suite.py").write_text(SUITE)
        # hand_over: a directory made here for the benchmark, like a run's own.
        spec = SandboxSpec(workspace=ws, limits=LIMITS, image=args.image, hand_over=True)
        # The environment every sandbox gives its commands, so that only the sandbox differs.
        bare_env = minimal_env(f"{Path(sys.executable).parent}:/usr/bin:/bin", str(ws))
        rows: dict[str, dict[str, float | str]] = {}
        for label, cmd in commands(sys.executable).items():
            rows[label] = {
                "bare": timed(
                    lambda cmd=cmd: subprocess.run(
                        cmd, cwd=ws, env=bare_env, check=True, capture_output=True
                    ),
                    args.runs,
                )
            }
        backends = {"local": None, "bwrap": bwrap_problem(), "docker": docker_problem(args.image)}
        for backend, why in backends.items():
            if why is not None:
                for row in rows.values():
                    row[backend] = why
                    if backend == "docker":
                        row["docker cold"] = why
                continue
            sb = open_sandbox(backend, spec)
            try:
                for label, cmd in commands(sb.python).items():
                    name = "docker warm" if backend == "docker" else backend
                    rows[label][name] = timed(in_sandbox(sb, cmd), args.runs)
                    if backend == "docker":
                        rows[label]["docker cold"] = timed(
                            docker_cold(ws, args.image, cmd), args.runs
                        )
            finally:
                sb.close()
    modes = ["bare", "local", "bwrap", "docker cold", "docker warm"]
    print(f"median of {args.runs} runs each (after one warm-up); ratio to bare; overhead")
    print()
    print("| command | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    for label, row in rows.items():
        bare = float(row["bare"])
        cells = []
        for mode in modes:
            value = row.get(mode, "n/a")
            if isinstance(value, str):
                cells.append(f"unavailable ({value[:40]})")
            elif mode == "bare":
                cells.append(f"{value * 1000:.0f} ms")
            else:
                cells.append(
                    f"{value * 1000:.0f} ms ({value / bare:.2f}x, +{(value - bare) * 1000:.0f} ms)"
                )
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
