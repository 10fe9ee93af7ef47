"""A Docker engine for the tests: the one that answers, or one started here.

``engine_problem()`` is None when the docker backend can run: an engine answers and the
test image exists. If no engine answers and ``dockerd`` is installed and we are root, it
starts ``dockerd --bridge=none --iptables=false`` in the background (its log in a temp
file), waits for it (bounded) and stops it again at the end of the session
(``stop_started_engine``). Otherwise it says what is missing and how to get it; tests skip
with that text (and fail the session in CI, where ``DARKFACTORY_NO_SKIPS=1``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from darkfactory.errors import SandboxUnavailable
from darkfactory.sandbox.image import DEFAULT_IMAGE, build_command

#: The image the docker tests run (the default image; CI builds it).
IMAGE = os.environ.get("DARKFACTORY_TEST_IMAGE", DEFAULT_IMAGE)
START_WAIT_S = 60.0
_started: list[subprocess.Popen[bytes]] = []


@functools.cache
def engine_problem() -> str | None:
    """Why the docker tests cannot run here (None: they can); starts dockerd if it may."""
    from darkfactory.sandbox.docker import docker_client, docker_problem

    try:
        docker_client()
    except SandboxUnavailable as exc:
        why = _start_dockerd(exc.message)
        if why is not None:
            return why
    problem = docker_problem(IMAGE)
    if problem is not None and "missing" in problem:
        return f"{problem} (CI: .ci/run builds it; by hand: {build_command(IMAGE)})"
    return problem


def _start_dockerd(why_not: str) -> str | None:
    from darkfactory.sandbox.docker import docker_client

    dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if dockerd is None:
        return f"{why_not}; dockerd is not installed: apt-get install docker.io"
    if os.geteuid() != 0:
        return f"{why_not}; start it (dockerd needs root): sudo dockerd --bridge=none &"
    with tempfile.NamedTemporaryFile(
        prefix="darkfactory-dockerd-", suffix=".log", delete=False
    ) as log:
        proc = subprocess.Popen(
            [dockerd, "--bridge=none", "--iptables=false"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _started.append(proc)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"{why_not}; dockerd exited with {proc.returncode} (log: {log.name})"
        try:
            docker_client()
            return None
        except SandboxUnavailable:
            time.sleep(0.5)
    return f"{why_not}; dockerd did not answer within {START_WAIT_S:g} s (log: {log.name})"


def stop_started_engine() -> None:
    """Stop the dockerd this session started, if it did."""
    while _started:
        proc = _started.pop()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """Skips (saying how to get it) unless the docker backend can run; import it to use it."""
    why = engine_problem()
    if why is not None:
        pytest.skip(f"docker backend unavailable: {why}")
    yield
    stop_started_engine()
