"""``local``: a plain subprocess with rlimits. NOT isolation.

Use it only when you trust the code you run, or where nothing else works, and only when
the user names it (``auto`` never picks it). What it does: the command runs in its own
session, with the workspace as its working directory, an explicit minimal environment
(nothing of the host's), rlimits on memory (RLIMIT_AS), CPU time, file size and core
dumps, its output capped, and its whole process group killed on a timeout, on too much
output, and when the command ends. Like every backend it holds the workspace and the
mounts' sources that are not read-only to ``disk_mb`` and scrubs them after every command
(``_scrub.py``); the workspace's ``.git`` is writable here, so it is scanned and counted.

What it does not do: the command sees the whole host file system with the rights of the
user running Dark Factory, and the network. A process that leaves its process group
(``setsid``, a double-forking daemon) escapes the kill. RLIMIT_NPROC (``limits.pids``) is
not enforced at all for root, so a fork bomb run as root is not contained; for other users
the kernel counts every process of the user, so the limit is set to ``pids`` more than the
user already runs. Mounts are not mounted anywhere: ``path_of(target)`` returns the mount's
host directory, so callers write argv that works with either backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from darkfactory.errors import InputError
from darkfactory.sandbox._proc import Report, limit_prefix, minimal_env, run_process
from darkfactory.sandbox._scrub import Guard, Place
from darkfactory.sandbox.base import ExecResult, SandboxSpec


class LocalSandbox:
    """Runs commands as plain host processes in the workspace (see the module doc)."""

    backend = "local"

    def __init__(self, spec: SandboxSpec, *, python: str | None = None) -> None:
        workspace = Path(os.path.realpath(spec.workspace))
        if not workspace.is_dir():
            raise InputError(f"sandbox workspace is not a directory: {spec.workspace}")
        self.spec = spec
        self.limits = spec.limits
        self.workdir = str(workspace)
        self.python = python or sys.executable
        self._targets = {
            m.target.rstrip("/") or "/": str(Path(m.source).resolve()) for m in spec.mounts
        }
        #: What a command can write that the host scrubs (it can write everything else too).
        self._places = [Place(workspace)] + [
            Place(Path(m.source).resolve(), m.target) for m in spec.mounts if not m.read_only
        ]

    def path_of(self, target: str) -> str:
        """The host directory mounted at ``target`` (or a path below it)."""
        target = target.rstrip("/") or "/"
        for mount, source in sorted(self._targets.items(), key=lambda kv: -len(kv[0])):
            if target == mount:
                return source
            if target.startswith(mount + "/"):
                return source + target[len(mount) :]
        raise KeyError(f"no mount with target {target!r} in this sandbox")

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        if not argv:
            raise ValueError("argv is empty")
        path = os.pathsep.join(
            [str(Path(self.python).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        )
        guard = Guard(self._places, self.limits.disk_mb)
        with Report() as report:
            prefix = limit_prefix(self.python, self.limits, nproc=self._nproc(), report=report)
            result = run_process(
                [*prefix, *argv],
                timeout=self.limits.timeout_s if timeout is None else timeout,
                limits=self.limits,
                env=minimal_env(path, self.workdir, env),
                cwd=self.workdir,
                stdin=stdin,
                report=report,
                guard=guard,
            )
        return guard.finish(result)

    def close(self) -> None:
        pass

    def _nproc(self) -> int | None:
        """RLIMIT_NPROC counts all of the user's tasks, so allow ``pids`` more than now."""
        uid = os.getuid()
        if uid == 0:
            return None  # not enforced for root; do not pretend
        return self.limits.pids + _count_tasks(uid)


def _count_tasks(uid: int) -> int:
    """Threads of all processes of ``uid`` (what the kernel compares with RLIMIT_NPROC)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return count
