"""Sandboxes: one protocol (``base.Sandbox``), backends chosen by name.

``open_sandbox(backend, spec)`` builds one: ``docker`` (a warm container per sandbox,
commands run by ``exec``), ``bwrap`` (bubblewrap namespaces), ``local`` (a plain
subprocess with rlimits: no isolation, only when named), or ``auto``: docker if an engine
answers and the image exists (and, run as root, the workspace is a run's or not root's:
docker refuses the others rather than give their files to its user), else bwrap if it
works on this machine, else ``SandboxUnavailable`` saying how to get either. ``auto``
never falls back to ``local``.

Every backend holds the workspace and the read-write mounts to ``Limits.disk_mb`` while a
command runs (``killed="disk"``) and scrubs them after it: setuid and setgid bits stripped,
device nodes, FIFOs and sockets removed, listed on ``ExecResult.scrubbed`` (``_scrub.py``).

The read-only acceptance suite, if any, is mounted at ``ACCEPTANCE_TARGET``; test outcomes
leave the sandbox on the runner's own output (``testrun``), never through a file. ``SandboxSpec.pythonpath`` names mount targets every command gets
on ``PYTHONPATH`` after the workspace (the generated project's installed dependencies,
``darkfactory.engine.deps``).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from darkfactory.errors import SandboxUnavailable
from darkfactory.sandbox.base import ExecResult, Killed, Limits, Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.image import DEFAULT_IMAGE

__all__ = [
    "ACCEPTANCE_TARGET",
    "BACKENDS",
    "ExecResult",
    "Killed",
    "Limits",
    "Mount",
    "Sandbox",
    "SandboxSpec",
    "SandboxUnavailable",
    "bwrap_problem",
    "check_backends",
    "docker_problem",
    "open_sandbox",
    "with_pythonpath",
]

BACKENDS = ("auto", "bwrap", "local", "docker")
ACCEPTANCE_TARGET = "/acceptance"


def open_sandbox(backend: str, spec: SandboxSpec) -> Sandbox:
    """A sandbox of ``backend`` around ``spec``, or ``SandboxUnavailable`` saying why not."""
    if backend == "auto":
        backend = _auto(spec)
    if backend == "docker":
        from darkfactory.sandbox.docker import DockerSandbox

        return DockerSandbox(spec)
    if backend == "bwrap":
        from darkfactory.sandbox.bwrap import BwrapSandbox

        why = bwrap_problem()
        if why is not None:
            raise SandboxUnavailable(f"bwrap backend: {why}", key="sandbox.backend")
        return _with_pythonpath(BwrapSandbox(spec), spec)
    if backend == "local":
        from darkfactory.sandbox.local import LocalSandbox

        return _with_pythonpath(LocalSandbox(spec), spec)
    raise SandboxUnavailable(
        f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}",
        key="sandbox.backend",
    )


def _auto(spec: SandboxSpec) -> str:
    """docker if it works for ``spec``, else bwrap if it works, else why neither does."""
    why_docker = docker_problem(spec.image or DEFAULT_IMAGE) or _docker_refuses(spec)
    if why_docker is None:
        return "docker"
    why_bwrap = bwrap_problem()
    if why_bwrap is None:
        return "bwrap"
    raise SandboxUnavailable(
        f"no sandbox backend works on this machine (docker: {why_docker}; bwrap: {why_bwrap})",
        key="sandbox.backend",
        hint="get docker (apt-get install docker.io, start dockerd, then "
        "darkfactory sandbox build-image) or bubblewrap (apt-get install bubblewrap); "
        "'local' runs without isolation and must be named explicitly",
    )


def _docker_refuses(spec: SandboxSpec) -> str | None:
    """Why docker, with an engine and the image, would still refuse ``spec`` (docker.py)."""
    if os.geteuid() != 0 or spec.hand_over:
        return None
    try:
        owner = os.stat(spec.workspace).st_uid
    except OSError:
        return None  # the backend chosen says what is wrong with the workspace
    if owner == 0:
        return "the workspace belongs to root and is not a run's (no file changes owner)"
    return None


def docker_problem(image: str | None = None) -> str | None:
    """Why the docker backend does not work here with ``image`` (None: it does)."""
    from darkfactory.sandbox import docker

    return docker.docker_problem(image)


@functools.cache
def bwrap_problem() -> str | None:
    """Why bwrap does not work here (None: it does). Probed once per process."""
    from darkfactory.sandbox.bwrap import BwrapSandbox

    try:
        with tempfile.TemporaryDirectory(prefix="darkfactory-probe-") as tmp:
            result = BwrapSandbox(SandboxSpec(workspace=Path(tmp))).run(["true"], timeout=30)
    except SandboxUnavailable as exc:
        return f"{exc.message}; {exc.hint}" if exc.hint else exc.message
    if result.exit_code != 0:
        detail = (result.stderr or result.stdout).strip()[-500:] or f"exit code {result.exit_code}"
        return f"bwrap is installed but cannot create a sandbox here: {detail}"
    return None


def check_backends(image: str | None = None) -> dict[str, str | None]:
    """Each concrete backend and why it does not work (None: it works)."""
    return {"docker": docker_problem(image), "bwrap": bwrap_problem(), "local": None}


class _WithPythonPath:
    """A backend that knows only the minimal environment, with ``spec.pythonpath`` added.

    (docker puts ``spec.pythonpath`` on ``PYTHONPATH`` itself; bwrap and local get it here,
    before any environment the caller passes.)
    """

    def __init__(self, inner: Sandbox, pythonpath: str) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.workdir = inner.workdir
        self.python = inner.python
        self._pythonpath = pythonpath

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def path_of(self, target: str) -> str:
        return self.inner.path_of(target)

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        merged = {"PYTHONPATH": self._pythonpath, **(env or {})}
        return self.inner.run(argv, timeout=timeout, stdin=stdin, env=merged)

    def close(self) -> None:
        self.inner.close()


def _with_pythonpath(sandbox: Sandbox, spec: SandboxSpec) -> Sandbox:
    if not spec.pythonpath:
        return sandbox
    return with_pythonpath(
        sandbox, [sandbox.workdir, *(sandbox.path_of(t) for t in spec.pythonpath)]
    )


def with_pythonpath(sandbox: Sandbox, dirs: list[str]) -> Sandbox:
    """``sandbox`` whose every command gets ``dirs`` as ``PYTHONPATH`` (unless it passes one)."""
    return _WithPythonPath(sandbox, ":".join(dirs))
