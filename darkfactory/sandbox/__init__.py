"""Sandboxes: one protocol (``base.Sandbox``), backends chosen by name.

``open_sandbox(backend, spec)`` builds one: ``bwrap`` (bubblewrap namespaces), ``local`` (a
plain subprocess with rlimits: no isolation, only when named), ``docker`` (not yet), or
``auto``: bwrap if it works on this machine, else ``SandboxUnavailable`` saying how to get
bwrap or docker. ``auto`` never falls back to ``local``.

Test reports: a caller that runs tests mounts a host directory read-write at
``RESULTS_TARGET`` (``results_mount(dir)``) and passes the same directory as
``RunContext.results_dir``; ``run_tests`` and ``testrun.run_pytest`` write JUnit XML there,
never into the workspace. The read-only acceptance suite, if any, is mounted at
``ACCEPTANCE_TARGET``.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from darkfactory.errors import SandboxUnavailable
from darkfactory.sandbox.base import ExecResult, Killed, Limits, Mount, Sandbox, SandboxSpec

__all__ = [
    "ACCEPTANCE_TARGET",
    "BACKENDS",
    "RESULTS_TARGET",
    "ExecResult",
    "Killed",
    "Limits",
    "Mount",
    "Sandbox",
    "SandboxSpec",
    "SandboxUnavailable",
    "check_backends",
    "open_sandbox",
    "results_mount",
]

BACKENDS = ("auto", "bwrap", "local", "docker")
RESULTS_TARGET = "/results"
ACCEPTANCE_TARGET = "/acceptance"
DOCKER_MISSING = "not implemented yet; use bwrap"


def results_mount(results_dir: Path) -> Mount:
    """The read-write mount test reports go through (see the module doc)."""
    return Mount(Path(results_dir), RESULTS_TARGET, read_only=False)


def open_sandbox(backend: str, spec: SandboxSpec) -> Sandbox:
    """A sandbox of ``backend`` around ``spec``, or ``SandboxUnavailable`` saying why not."""
    if backend == "auto":
        why = bwrap_problem()
        if why is not None:
            raise SandboxUnavailable(
                f"no sandbox backend works on this machine (bwrap: {why}; docker: {DOCKER_MISSING})",
                key="sandbox.backend",
                hint="install bubblewrap (apt-get install bubblewrap) or docker; "
                "'local' runs without isolation and must be named explicitly",
            )
        backend = "bwrap"
    if backend == "bwrap":
        from darkfactory.sandbox.bwrap import BwrapSandbox

        why = bwrap_problem()
        if why is not None:
            raise SandboxUnavailable(f"bwrap backend: {why}", key="sandbox.backend")
        return BwrapSandbox(spec)
    if backend == "local":
        from darkfactory.sandbox.local import LocalSandbox

        return LocalSandbox(spec)
    if backend == "docker":
        raise SandboxUnavailable(f"docker backend: {DOCKER_MISSING}", key="sandbox.backend")
    raise SandboxUnavailable(
        f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}",
        key="sandbox.backend",
    )


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


def check_backends() -> dict[str, str | None]:
    """Each concrete backend and why it does not work (None: it works)."""
    return {"bwrap": bwrap_problem(), "docker": DOCKER_MISSING, "local": None}
