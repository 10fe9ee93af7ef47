"""The deploy step: ``deploy.command`` on the host, in a temporary export of the delivered commit,
with ``PYTHONSAFEPATH=1`` and only the variables ``environment`` lets through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from darkfactory.models.secrets import redact_secrets
from darkfactory.sandbox._proc import run_process
from darkfactory.sandbox.base import Limits
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace.git import UnsafeRepository

#: How much of the command's output (its end) is kept, secrets redacted.
OUTPUT_CHARS = 4000
#: Variables the command always gets (when set), besides ``LC_*`` and ``deploy.env``.
BASE_VARIABLES = ("PATH", "HOME", "LANG")
#: The export's directory name: the workspace's, for tools that name things after it.
EXPORT_NAME = "workspace"


@dataclass(frozen=True)
class DeployResult:
    argv: list[str]
    exit_code: int | None
    duration_s: float
    output: str
    killed: str | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


def environment(names: Sequence[str], source: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The deploy's environment: ``PATH`` (absolute entries only), ``HOME``, ``LANG``,
    ``LC_*`` and ``names`` as set in ``source``, and ``PYTHONSAFEPATH=1`` (Python 3.11+
    then puts neither the current directory nor a script's directory on ``sys.path``)."""
    env = {
        k: v for k, v in source.items() if k in BASE_VARIABLES or k.startswith("LC_") or k in names
    }
    if "PATH" in env:  # "" or "." would find a program in the export, written by a model
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if os.path.isabs(p))
    env["PYTHONSAFEPATH"] = "1"
    return env


def variables(names: Sequence[str]) -> list[str]:
    """What ``environment`` lets through, as shown to the person who approves the deploy."""
    return [*BASE_VARIABLES, "LC_*", *names]


def run(
    argv: Sequence[str],
    *,
    repo: Path,
    commit: str,
    env_names: Sequence[str] = (),
    timeout_s: float,
) -> DeployResult:
    """Export ``commit`` of ``repo``, run ``argv`` there, bounded and redacted; then clean up.

    Never raises for the command's failure, nor for an export that failed (a link in the
    commit that leaves it, for one): both are a failed ``DeployResult``.
    """
    env = environment(env_names)
    passed = [env[n] for n in env_names if n in env]
    tmp = Path(tempfile.mkdtemp(prefix="darkfactory-deploy-"))
    try:
        export = tmp / EXPORT_NAME
        try:
            gitrepo.export(repo, commit, export)
        except (OSError, tarfile.TarError, subprocess.CalledProcessError, UnsafeRepository) as exc:
            detail = (getattr(exc, "stderr", None) or str(exc)).strip()
            why = f"the commit {commit[:12]} could not be exported for the deploy: {detail}"
            return DeployResult(list(argv), None, 0.0, redact_secrets(why, extra=passed), None)
        try:
            res = run_process(argv, timeout=timeout_s, limits=Limits(), env=env, cwd=str(export))
        except OSError as exc:  # not found, not executable
            return DeployResult(list(argv), None, 0.0, redact_secrets(str(exc), extra=passed), None)
    finally:
        _remove(tmp)
    text = (res.stdout + ("\n" if res.stdout and res.stderr else "") + res.stderr).strip()
    return DeployResult(
        list(argv),
        None if res.killed else res.exit_code,
        round(res.duration_s, 3),
        redact_secrets(text[-OUTPUT_CHARS:], extra=passed),
        res.killed,
    )


def _remove(tree: Path) -> None:
    """Delete ``tree``, even where the command left a directory without permissions."""

    def open_up(path: str) -> None:
        if not os.path.islink(path):  # chmod would follow it
            os.chmod(path, 0o700)

    open_up(str(tree))
    for dirpath, dirnames, _ in os.walk(tree):  # lists a directory after open_up made it readable
        for name in dirnames:
            open_up(os.path.join(dirpath, name))
    shutil.rmtree(tree, ignore_errors=True)
