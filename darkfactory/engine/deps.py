"""The generated project's dependencies: wheels downloaded on the host, installed in the sandbox.

The sandbox never has a network, so a dependency gets in like this:

1. ``read_requirements(workspace)``: what the project declares, ``requirements.txt``, else
   ``pyproject.toml``'s ``[project] dependencies``. Only plain requirements are taken (a
   PEP 508 name, extras, version specifiers, an environment marker). pip options (``-r``,
   ``-e``, ``--index-url``, ``-f`` ...), URLs (``name @ https://...``), paths, names
   that look like a file (``evil-1.0.tar.gz``, ``x.whl``: pip opens, and builds, a file
   of that name) and ``$`` (pip substitutes environment variables) are refused: with
   them, text the model wrote would choose which host files the host's pip reads or
   builds, which server it talks to, or which secret it prints.
2. ``download``: pip on the host, ``pip download --only-binary=:all: --python-version X.Y``
   of the checked requirements as ``packaging`` renders them, X.Y being the sandbox
   interpreter's version, in a new temporary directory (empty current directory, empty
   destination): nothing in the user's current directory or the wheelhouse can be taken
   for a requirement. Only the wheels it downloaded move on to ``RUN/wheelhouse``.
   Wheels only, on purpose: building a source distribution runs its build code
   (``setup.py``, a build backend), and that code, chosen by the model, would run on the
   host, outside any sandbox. A dependency without a wheel fails with pip's message,
   which goes to the fix task.
3. ``install``: pip in the sandbox, ``python -I -m pip install --no-index --find-links
   /wheelhouse --target /deps -r /wheelhouse/requirements.txt``. ``/wheelhouse`` is
   mounted read-only, ``/deps`` read-write and on every command's ``PYTHONPATH``
   (``mounts(run_dir)``, and ``DEPS_TARGET`` in ``SandboxSpec.pythonpath``).
   Installing a wheel runs none of its code.

``ensure`` does the three steps when the declared set (or the sandbox's Python) changed
since the last install, and nothing otherwise; its ``DepsResult`` says what is installed or
what failed (pip's output, trimmed), for the fix task and the trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement

from darkfactory.sandbox.base import ExecResult, Mount, Sandbox
from darkfactory.workspace import hostio

WHEELHOUSE_TARGET = "/wheelhouse"
DEPS_TARGET = "/deps"
#: The checked requirements as pip reads them, in the wheelhouse.
REQUIREMENTS = "requirements.txt"
#: The key of the last successful install, in the wheelhouse (read-only to the sandbox).
STAMP = ".installed"
MAX_ERROR_CHARS = 3000
#: Endings pip takes for a local archive when a requirement ends with one (its
#: ``ARCHIVE_EXTENSIONS``, and a few more): such a "name" is opened, and built, as a file.
ARCHIVE_SUFFIXES = (
    ".zip",
    ".whl",
    ".egg",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
    ".tar.zst",
    ".tzst",
)

Stage = Literal["read", "download", "install"]


@dataclass(frozen=True)
class DepsResult:
    """What ``ensure`` did: the requirements, what got installed, or where and why it failed."""

    source: str
    requirements: tuple[str, ...]
    installed: tuple[str, ...] = ()
    failed: Stage | None = None
    error: str = ""
    cached: bool = False
    #: The sandbox's pip install, when one ran.
    exec: ExecResult | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None

    def summary(self) -> str:
        """Text for the fix task: one line when it worked, pip's complaint when not."""
        if self.ok:
            return (
                f"Dependencies from {self.source} are installed in the sandbox: "
                f"{', '.join(self.installed) or '(none)'}."
            )
        what = {
            "read": f"{self.source} could not be used",
            "download": f"downloading the wheels for {self.source} failed (pip on the host)",
            "install": f"installing {self.source} in the sandbox failed (pip, no network)",
        }[self.failed or "read"]
        hint = {
            "read": (
                "Write one requirement per line (a package name, optional extras, version "
                "specifiers and marker); pip options, URLs, paths and file names are not "
                "accepted."
            ),
            "download": (
                "Only wheels are used (no source distribution is ever built): choose "
                "versions that exist and publish a wheel for this Python, or vendor the code."
            ),
            "install": "The sandbox has no network: everything must come from the wheels.",
        }[self.failed or "read"]
        return f"DEPENDENCIES FAILED: {what}.\n{hint}\n{self.error}".strip()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def mounts(run_dir: Path) -> list[Mount]:
    """The wheelhouse (read-only) and the install target (read-write) of a run."""
    wheelhouse, deps = Path(run_dir) / "wheelhouse", Path(run_dir) / "deps"
    for d in (wheelhouse, deps):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    return [
        Mount(wheelhouse, WHEELHOUSE_TARGET, read_only=True),
        Mount(deps, DEPS_TARGET, read_only=False),
    ]


def read_requirements(workspace: Path) -> tuple[str, list[str], list[str]] | None:
    """(source file, requirements, problems), or None when the project declares nothing."""
    found = None
    for name in ("requirements.txt", "pyproject.toml"):
        kind = hostio.kind_of(Path(workspace), name)
        if kind is None:
            continue
        try:  # through hostio: a link could lead to a host file, a FIFO would block
            found = name, hostio.read_text(Path(workspace), name, errors="replace")
        except (hostio.Refused, FileNotFoundError) as exc:
            reason = exc.why if isinstance(exc, hostio.Refused) else "it vanished"
            return name, [], [f"{name} cannot be read ({reason}); write a plain file"]
        break
    if found is not None and found[0] == "requirements.txt":
        source, text = found
        lines = re.sub(r"\\\r?\n", " ", text).splitlines()
        entries = [
            (f"line {n}", " ".join(re.sub(r"(^|\s)#.*", "", ln).split()))
            for n, ln in enumerate(lines, 1)
        ]
    elif found is not None:
        source, text = found
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            return source, [], [f"pyproject.toml is not valid TOML: {exc}"]
        declared = project.get("dependencies", []) if isinstance(project, dict) else []
        if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
            return source, [], ["[project] dependencies must be a list of strings"]
        entries = [(f"dependencies[{i}]", d.strip()) for i, d in enumerate(declared)]
    else:
        return None
    requirements: list[str] = []
    problems: list[str] = []
    for where, entry in entries:
        if not entry:
            continue
        why = refusal(entry)
        if why is None:
            requirements.append(entry)
        else:
            problems.append(f"{source} {where}: {entry[:200]!r}: {why}")
    if not requirements and not problems:
        return None
    return source, requirements, problems


def refusal(entry: str) -> str | None:
    """Why ``entry`` is not a plain requirement (None: it is)."""
    if entry.startswith("-"):
        return "pip options are not accepted (only requirements)"
    if "$" in entry:  # pip would put an environment variable there (``${NAME}``)
        return "'$' is not accepted (pip would substitute an environment variable)"
    try:
        line = pip_line(entry)
    except InvalidRequirement as exc:
        return f"not a valid requirement ({str(exc).splitlines()[0]})"
    except ValueError as exc:
        return str(exc)
    if any(token.startswith("-") for token in line.split()):
        return "pip options are not accepted (only requirements)"
    return None


def pip_line(entry: str) -> str:
    """``entry`` as written for the host's pip: PEP 508, re-rendered by ``packaging``.

    Raises ``InvalidRequirement`` (not PEP 508), or ``ValueError`` for what pip would read
    as a URL, a path or a file: pip takes a requirement whose part before the marker
    holds a path separator, starts with a dot or whose name (or whole text) ends like an
    archive for a local file, and builds it, whatever ``--only-binary`` says.
    """
    req = Requirement(entry)
    if req.url:
        raise ValueError("URLs are not accepted; name the package and a version instead")
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    head = f"{req.name}{extras}{req.specifier}"
    looks_like_a_file = any(t.lower().endswith(ARCHIVE_SUFFIXES) for t in (req.name, head))
    if looks_like_a_file or "/" in head or "\\" in head or head.startswith("."):
        raise ValueError(
            "this names a file or a path (pip would open and build it on the host), not a "
            "package; write the project's name and a version instead, e.g. 'requests>=2.31'"
        )
    return f"{head}; {req.marker}" if req.marker else head


def ensure(
    sandbox: Sandbox, workspace: Path, run_dir: Path, *, timeout_s: float = 300.0
) -> DepsResult | None:
    """Make the sandbox's installed deps match what the workspace declares (module doc).

    None when nothing is declared (and nothing is installed). Never raises for what pip or
    the requirements did; a failure is in the result.
    """
    wheelhouse, deps = Path(run_dir) / "wheelhouse", Path(run_dir) / "deps"
    declared = read_requirements(workspace)
    if declared is None:
        if (wheelhouse / STAMP).exists() or (deps.is_dir() and any(deps.iterdir())):
            _empty(deps)
            (wheelhouse / STAMP).unlink(missing_ok=True)
        return None
    source, requirements, problems = declared
    reqs = tuple(requirements)
    if problems:
        return DepsResult(source, reqs, failed="read", error="\n".join(problems))
    version = sandbox.run(
        [sandbox.python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        timeout=60,
    )
    python_version = version.stdout.strip()
    if version.exit_code != 0 or not re.fullmatch(r"\d+\.\d+", python_version):
        raise RuntimeError(f"the sandbox's {sandbox.python} does not run: {version}")
    key = hashlib.sha256(json.dumps([python_version, sorted(reqs)]).encode()).hexdigest()
    stamp = wheelhouse / STAMP
    if stamp.is_file() and stamp.read_text().strip() == key and any(deps.iterdir()):
        return DepsResult(source, reqs, installed=_installed(deps), cached=True)
    stamp.unlink(missing_ok=True)
    # What pip reads is our rendering of the checked requirements, never a workspace file.
    lines = [pip_line(r) for r in reqs]
    (wheelhouse / REQUIREMENTS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = download(lines, wheelhouse, python_version, timeout_s=timeout_s)
    if error is not None:
        return DepsResult(source, reqs, failed="download", error=error)
    _empty(deps)
    result = install(sandbox, timeout_s=timeout_s)
    if result.exit_code != 0 or result.killed is not None:
        killed = f", killed by the {result.killed} limit" if result.killed else ""
        error = _trim(
            f"pip install exit code {result.exit_code}{killed}\n{result.stderr}\n{result.stdout}"
        )
        return DepsResult(source, reqs, failed="install", error=error, exec=result)
    stamp.write_text(key + "\n", encoding="utf-8")
    return DepsResult(source, reqs, installed=_installed(deps), exec=result)


def download(
    lines: list[str], wheelhouse: Path, python_version: str, *, timeout_s: float
) -> str | None:
    """pip-download the wheels of ``lines`` (``pip_line``s) to ``wheelhouse``; None, or why not.

    pip runs in a new temporary directory that holds only its requirements file, an empty
    current directory and an empty destination, and only the wheels it downloaded move on
    to the wheelhouse: pip takes a requirement that names a file for that file (from its
    current directory, the requirements file's or one "already downloaded" to its
    destination) and builds it, so no directory it looks in may hold anything else.
    """
    with tempfile.TemporaryDirectory(prefix="darkfactory-pip-") as tmp:
        cwd, dest, listed = Path(tmp) / "cwd", Path(tmp) / "wheels", Path(tmp) / REQUIREMENTS
        cwd.mkdir()
        dest.mkdir()
        listed.write_text("\n".join(lines) + "\n", encoding="utf-8")
        argv = [
            sys.executable,
            "-P",  # nothing from the current directory on sys.path (it is empty anyway)
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-input",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--dest",
            str(dest),
            "-r",
            str(listed),
        ]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired:
            return f"pip download took longer than {timeout_s:g} s (sandbox.deps_timeout_s)"
        if done.returncode != 0:
            return _trim(f"pip download exit code {done.returncode}\n{done.stderr}\n{done.stdout}")
        for entry in os.scandir(dest):
            if entry.name.endswith(".whl") and entry.is_file(follow_symlinks=False):
                shutil.move(entry.path, wheelhouse / entry.name)
    return None


def install(sandbox: Sandbox, *, timeout_s: float) -> ExecResult:
    """pip-install the wheelhouse's requirements into /deps, in the sandbox, from wheels only."""
    wheels = sandbox.path_of(WHEELHOUSE_TARGET)
    argv = [
        sandbox.python,
        "-I",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--no-cache-dir",
        "--no-compile",
        "--no-index",
        "--find-links",
        wheels,
        "--target",
        sandbox.path_of(DEPS_TARGET),
        "-r",
        f"{wheels}/{REQUIREMENTS}",
    ]
    return sandbox.run(argv, timeout=timeout_s)


def _installed(deps: Path) -> tuple[str, ...]:
    """``name version`` of every distribution in ``deps`` (from its ``.dist-info``)."""
    found = []
    for entry in sorted(os.listdir(deps)):
        m = re.fullmatch(r"(.+?)-([^-]+)\.dist-info", entry)
        if m:
            found.append(f"{m.group(1)} {m.group(2)}")
    return tuple(found)


def _empty(directory: Path) -> None:
    """Delete what is in ``directory`` (never following a symlink out of it)."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _trim(text: str) -> str:
    """pip's output, at most ``MAX_ERROR_CHARS``: its ERROR lines first, then the tail."""
    text = text.strip()
    errors = [ln for ln in text.splitlines() if ln.startswith("ERROR:")]
    head = "\n".join(errors[:10])
    if len(text) <= MAX_ERROR_CHARS - len(head):
        return text
    tail = text[-(MAX_ERROR_CHARS - len(head) - 20) :]
    return f"{head}\n[...]\n{tail}" if head else f"[...]\n{tail}"
