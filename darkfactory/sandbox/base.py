"""The sandbox interface every backend implements.

A sandbox runs an argv (never a shell string built from model output) with the run's
workspace as its working directory, no network, and bounded CPU, memory, processes, time,
output and disk; what a command leaves is scrubbed after it (``_scrub.py``). Backends:
``bwrap`` (bubblewrap), ``local`` (a plain subprocess with rlimits, no isolation: only when
named) and ``docker`` (a warm container, commands run by ``exec``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

#: Which limit ended a command: wall-clock time, memory, output size, CPU time, file size,
#: the workspace's disk quota.
Killed = Literal["timeout", "memory", "output", "cpu", "file_size", "disk"]


@dataclass(frozen=True)
class ExecResult:
    """What one command did. ``killed`` says which limit ended it, if one did;
    ``scrubbed`` what was removed or stripped after it (``"path: what was done"``, paths
    relative to the workspace, or under a mount's target)."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    killed: Killed | None = None
    scrubbed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Mount:
    """A host directory made visible inside the sandbox at ``target``."""

    source: Path
    target: str
    read_only: bool = True


def mounted_path(mounts: list[Mount], target: str) -> str:
    """``target`` as a command in a sandbox with these ``mounts`` sees it (the same path),
    if it is a mount's target or below one; else ``KeyError``."""
    target = target.rstrip("/") or "/"
    for m in mounts:
        if target == m.target or target.startswith(m.target + "/"):
            return target
    raise KeyError(f"no mount with target {target!r} in this sandbox")


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every command (``sandbox:`` in config/factory.yaml)."""

    timeout_s: float = 120.0
    memory_mb: int = 1024
    cpu_s: int = 300
    pids: int = 256
    output_bytes: int = 1_000_000
    file_size_mb: int = 256
    #: Most the workspace and the read-write mounts may hold together, in MB (``_scrub.py``).
    disk_mb: int = 1024
    #: CPUs the sandbox may use (docker's CPU quota; other backends ignore it).
    cpus: float = 1.0


@dataclass
class SandboxSpec:
    """What to build a sandbox around: the workspace (read-write) and extra mounts."""

    workspace: Path
    mounts: list[Mount] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    #: Mount targets put on PYTHONPATH after the workspace (e.g. installed dependencies).
    pythonpath: list[str] = field(default_factory=list)
    #: docker: the image to run (None: ``image.DEFAULT_IMAGE``); other backends ignore it.
    image: str | None = None
    #: docker, run as root: hand the workspace's content and the read-write mounts to the
    #: sandbox's unprivileged user (chown). Only for directories Dark Factory made for a
    #: run; without it a root-owned workspace is refused and no file changes owner.
    hand_over: bool = False


@runtime_checkable
class Sandbox(Protocol):
    """One protocol, several backends."""

    backend: str
    #: The workspace's path as commands inside the sandbox see it.
    workdir: str
    #: The Python interpreter to use inside the sandbox (has pytest).
    python: str

    def path_of(self, target: str) -> str:
        """The path a mount ``target`` (e.g. ``/acceptance``) has inside this sandbox.

        Raises ``KeyError`` if no mount of this sandbox has that target.
        """
        ...

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the workspace; never raises for the command's own failure."""
        ...

    def close(self) -> None:
        """Release what the sandbox holds (containers, temp dirs)."""
        ...
