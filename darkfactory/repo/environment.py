"""A repository's environment in the sandbox: its dependencies, cached; the project importable.

``prepare_environment`` downloads the project's requirements as wheels on the host
(``engine.deps.download``: binary only, names checked) and installs them in a sandbox
(``engine.deps.install``: no network) into a cache entry under ``repo.cache_dir``, one per
(repository, dependency set, sandbox Python). An entry is built in a temporary directory
and renamed into place when complete, under a lock, so concurrent runs never see half of
one; a second ticket on the same repository reuses it without running pip, and without
starting a sandbox when the sandbox's Python is known (``_interpreter``). A run mounts
the entry read-only (``RepoEnvironment.mounts``) and ``project_sandbox`` puts the
workspace, its ``src/`` and the entry on every command's ``PYTHONPATH``.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import darkfactory.engine.deps as deps
from darkfactory.errors import SandboxUnavailable
from darkfactory.repo.errors import EnvironmentFailed
from darkfactory.repo.project import Project, check_python
from darkfactory.sandbox import open_sandbox, with_pythonpath
from darkfactory.sandbox.base import ExecResult, Limits, Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.image import DEFAULT_IMAGE, docker_client, image_problem
from darkfactory.workspace import hostio

#: Where a run's sandbox sees the cached dependencies (read-only).
REPO_DEPS_TARGET = "/repo-deps"
#: Bump when an entry's layout changes: older entries are then rebuilt, never misread.
LAYOUT = 1
META = "meta.json"
SITE = "site"
#: What the sandbox's Python said (``_probe``), by interpreter (``_interpreter``).
PROBES = ".probes"
#: Temporary build directories older than this are a crashed build's: removed.
STALE_BUILD_S = 24 * 3600
_PROBE = (
    "import json, platform, sys, sysconfig; print(json.dumps(["
    "'%d.%d' % sys.version_info[:2], sys.implementation.cache_tag, "
    "sysconfig.get_platform(), platform.python_version()]))"
)


@dataclass(frozen=True)
class RepoEnvironment:
    """A repository's installed environment: the cache entry and how it came to be."""

    key: str
    #: The cache entry; its ``site/`` is what a run mounts at ``REPO_DEPS_TARGET``.
    entry: Path
    python_version: str
    requirements: tuple[str, ...]
    #: ``name version`` of each installed distribution.
    installed: tuple[str, ...]
    #: Optional (``dev``) requirements left out because they had no wheel.
    dropped: tuple[str, ...]
    #: Modules of the pytest plugins installed (``pytest11`` entry points), for ``-p``.
    pytest_plugins: tuple[str, ...]
    #: Reused from the cache (no pip ran).
    cached: bool
    setup_s: float
    notes: tuple[str, ...] = ()

    @property
    def site(self) -> Path:
        return self.entry / SITE

    def mounts(self) -> list[Mount]:
        """The entry, read-only, for a run's ``SandboxSpec``."""
        return [Mount(self.site, REPO_DEPS_TARGET, read_only=True)]

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "entry": str(self.entry),
            "python_version": self.python_version,
            "requirements": list(self.requirements),
            "installed": list(self.installed),
            "dropped": list(self.dropped),
            "pytest_plugins": list(self.pytest_plugins),
            "cached": self.cached,
            "setup_s": round(self.setup_s, 3),
            "notes": list(self.notes),
        }


def prepare_environment(
    project: Project,
    *,
    identity: str,
    backend: str,
    limits: Limits,
    cache_dir: Path,
    image: str | None = None,
    timeout_s: float = 300.0,
) -> RepoEnvironment:
    """The environment of ``project`` (module doc), built unless the cache has it.

    A warm entry is found without starting a sandbox when what the sandbox's Python said
    is remembered for its interpreter (``_interpreter``: a changed one is asked again).
    ``identity`` names the repository (``RepoSource.identity``). ``EnvironmentFailed``
    (exit code 2) when the wheels cannot be downloaded or installed, with pip's output;
    ``RepoError`` when the sandbox's Python is not the one ``.darkfactory.yaml`` asks for.
    """
    started = time.monotonic()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    interpreter = _interpreter(backend, image)
    known = _remembered(cache_dir, interpreter) if interpreter is not None else None
    if known is not None:  # a warm entry is then read without starting a sandbox
        notes = check_python(project, known[0])
        key = _key(identity, project, known)
        with _locked(cache_dir, key):
            found = _read_entry(cache_dir / key[:40], key)
        if found is not None:
            return _environment(cache_dir / key[:40], key, known, found, True, started, notes)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        for d in ("workspace", "wheelhouse", SITE):
            (build / d).mkdir(mode=0o755)
        build.chmod(0o755)
        spec = SandboxSpec(
            workspace=build / "workspace",
            mounts=[
                Mount(build / "wheelhouse", deps.WHEELHOUSE_TARGET, read_only=True),
                Mount(build / SITE, deps.DEPS_TARGET, read_only=False),
            ],
            limits=limits,
            image=image,
            hand_over=True,  # a directory Dark Factory made (docker as root: see docker.py)
        )
        sandbox = open_sandbox(backend, spec)
        try:
            fingerprint = _probe(sandbox)
            # Remembered only for the interpreter ``_interpreter`` names, if nothing changed
            # while the sandbox opened and answered.
            runs = sandbox.backend == "docker" or sandbox.python == sys.executable
            if interpreter and runs and _interpreter(backend, image) == interpreter:
                _remember(cache_dir, interpreter, fingerprint)
            notes = check_python(project, fingerprint[0])
            key = _key(identity, project, fingerprint)
            entry = cache_dir / key[:40]
            with _locked(cache_dir, key):
                found = _read_entry(entry, key)
                if found is None:
                    _build(sandbox, build, project, fingerprint[0], key, identity, timeout_s)
                    _publish(build, entry)
                    found = _read_entry(entry, key)
                    cached = False
                else:
                    cached = True
        finally:
            sandbox.close()
    finally:
        hostio.remove(build)
        _remove_stale(cache_dir)
    if found is None:  # a published entry that cannot be read back: a bug
        raise RuntimeError(f"the environment {entry} was not readable after it was built")
    return _environment(entry, key, fingerprint, found, cached, started, notes)


def _environment(
    entry: Path,
    key: str,
    fingerprint: list[str],
    found: dict[str, list[str]],
    cached: bool,
    started: float,
    notes: list[str],
) -> RepoEnvironment:
    return RepoEnvironment(
        key=key,
        entry=entry,
        python_version=fingerprint[0],
        requirements=tuple(found["requirements"]),
        installed=tuple(found["installed"]),
        dropped=tuple(found["dropped"]),
        pytest_plugins=tuple(found["pytest_plugins"]),
        cached=cached,
        setup_s=time.monotonic() - started,
        notes=tuple(notes),
    )


def project_sandbox(
    sandbox: Sandbox, project: Project, targets: Sequence[str] = (REPO_DEPS_TARGET,)
) -> Sandbox:
    """``sandbox`` with the project importable: on every command's ``PYTHONPATH`` the
    workspace, its import roots (``src/``) and the mounts ``targets``, in that order."""
    workdir = sandbox.workdir.rstrip("/")
    paths = [f"{workdir}/{r}" if r != "." else workdir for r in project.import_roots]
    return with_pythonpath(sandbox, [*paths, *(sandbox.path_of(t) for t in targets)])


def run_setup(sandbox: Sandbox, project: Project, *, timeout_s: float) -> list[ExecResult]:
    """``setup:`` of ``.darkfactory.yaml``, each argv in the sandbox, up to the first failure."""
    results = []
    for argv in project.setup:
        result = sandbox.run(list(argv), timeout=timeout_s)
        results.append(result)
        if result.exit_code != 0 or result.killed is not None:
            break
    return results


# -- building an entry ---------------------------------------------------------------------


def _probe(sandbox: Sandbox) -> list[str]:
    """[X.Y, cache tag, platform, full version] of the sandbox's Python."""
    result = sandbox.run([sandbox.python, "-I", "-c", _PROBE], timeout=60)
    try:
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        found = None
    if result.exit_code != 0 or not _is_fingerprint(found):
        raise RuntimeError(f"the sandbox's {sandbox.python} does not run: {result}")
    return [str(x) for x in found]


def _is_fingerprint(found: object) -> TypeGuard[list[str]]:
    return (
        isinstance(found, list)
        and len(found) == 4
        and all(isinstance(x, str) for x in found)
        and re.fullmatch(r"\d+\.\d+", found[0]) is not None
    )


def _interpreter(backend: str, image: str | None) -> str | None:
    """What names the Python a sandbox of ``backend`` runs, without starting one (None:
    nothing does): bwrap and local run this process's interpreter, named by its path and
    its file's identity, size and times; docker runs the image's, named by the image id.
    ``auto`` chooses its backend only when a sandbox opens."""
    if backend in ("bwrap", "local"):
        try:
            st = os.stat(sys.executable)  # the file a link points to
        except OSError:
            return None
        real = os.path.realpath(sys.executable)
        times = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        return json.dumps([backend, sys.executable, real, *times])
    if backend == "docker":
        name = image or DEFAULT_IMAGE
        try:
            client = docker_client()
        except SandboxUnavailable:
            return None
        try:
            if image_problem(client, name) is not None:
                return None
            return json.dumps([backend, name, client.api.inspect_image(name)["Id"]])
        except SandboxUnavailable:
            return None
        finally:
            client.close()
    return None


def _remembered(cache_dir: Path, interpreter: str) -> list[str] | None:
    """What ``_probe`` said of ``interpreter`` before (None: nothing yet)."""
    rel = f"{PROBES}/{hashlib.sha256(interpreter.encode()).hexdigest()[:40]}.json"
    try:
        data = json.loads(hostio.read_text(cache_dir, rel))
    except (FileNotFoundError, hostio.Refused, ValueError):
        return None
    if not isinstance(data, dict) or data.get("interpreter") != interpreter:
        return None
    found = data.get("fingerprint")
    return found if _is_fingerprint(found) else None


def _remember(cache_dir: Path, interpreter: str, fingerprint: list[str]) -> None:
    """Keep what ``_probe`` said of ``interpreter`` (written whole, then renamed)."""
    probes = cache_dir / PROBES
    probes.mkdir(mode=0o700, exist_ok=True)
    name = hashlib.sha256(interpreter.encode()).hexdigest()[:40]
    data = {"interpreter": interpreter, "fingerprint": fingerprint}
    fd, tmp = tempfile.mkstemp(prefix=".probe-", dir=probes)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data) + "\n")
    os.replace(tmp, probes / f"{name}.json")


def _key(identity: str, project: Project, fingerprint: list[str]) -> str:
    data = [LAYOUT, identity, project.dependency_hash(), fingerprint]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def _build(
    sandbox: Sandbox,
    build: Path,
    project: Project,
    python_version: str,
    key: str,
    identity: str,
    timeout_s: float,
) -> None:
    """Download the wheels into ``build/wheelhouse``, install them into ``build/site``."""
    wheelhouse = build / "wheelhouse"
    required, optional = list(project.requirements), list(project.optional)
    dropped: list[str] = []
    if required or optional:
        error = deps.download(required + optional, wheelhouse, python_version, timeout_s=timeout_s)
        if error is not None and optional:
            dropped = optional
            _empty(wheelhouse)
            error = deps.download(required, wheelhouse, python_version, timeout_s=timeout_s)
        if error is not None:
            raise EnvironmentFailed(
                "the repository's dependencies could not be downloaded as wheels (pip on "
                f"the host, binary only):\n{error}",
                hint="only wheels are used (no source distribution is ever built on the "
                "host): pin versions that publish a wheel for the sandbox's Python "
                f"{python_version}",
            )
        wanted = [r for r in required + optional if r not in dropped]
        (wheelhouse / deps.REQUIREMENTS).write_text("\n".join(wanted) + "\n", encoding="utf-8")
        result = deps.install(sandbox, timeout_s=timeout_s)
        if result.exit_code != 0 or result.killed is not None:
            killed = f", killed by the {result.killed} limit" if result.killed else ""
            raise EnvironmentFailed(
                f"installing the repository's dependencies in the sandbox failed (pip exit "
                f"code {result.exit_code}{killed}, no network):\n"
                + (result.stderr + "\n" + result.stdout).strip()[-3000:],
            )
    if project.name:
        _project_metadata(build / SITE, project)
    meta = {
        "layout": LAYOUT,
        "key": key,
        "identity": identity,
        "python": python_version,
        "requirements": [r for r in (*required, *optional) if r not in dropped],
        "dropped": dropped,
        "installed": _installed(build / SITE),
        "pytest_plugins": _pytest_plugins(build / SITE),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (build / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _empty(wheelhouse)


def _project_metadata(site: Path, project: Project) -> None:
    """A ``.dist-info`` naming the project, so ``importlib.metadata.version(name)`` works
    for code that reads its own version (the project itself runs from the workspace)."""
    name = re.sub(r"[^A-Za-z0-9.]+", "_", project.name or "")
    version = project.version or "0"
    if not name or not re.fullmatch(r"[A-Za-z0-9.+!_-]+", version):
        version = "0"
    info = site / f"{name}-{version.replace('-', '_')}.dist-info"
    if info.exists() or info.is_symlink():
        return
    info.mkdir(mode=0o755)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project.name}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "INSTALLER").write_text("darkfactory\n", encoding="utf-8")


def _publish(build: Path, entry: Path) -> None:
    """Move the complete build into place with one rename: never half an entry in sight."""
    staged = build / "entry"
    staged.mkdir(mode=0o755)
    for name in (SITE, META):
        os.rename(build / name, staged / name)
    if entry.exists() or entry.is_symlink():
        hostio.remove(entry)  # an older layout's, or damaged: the caller holds its key's lock
    os.rename(staged, entry)


def _read_entry(entry: Path, key: str | None) -> dict[str, list[str]] | None:
    """An entry's meta (requirements, dropped, installed) if it is complete (for ``key``)."""
    if hostio.kind_of(entry.parent, f"{entry.name}/{SITE}") != "dir":
        return None
    try:
        meta = json.loads(hostio.read_text(entry.parent, f"{entry.name}/{META}"))
    except (FileNotFoundError, hostio.Refused, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("layout") != LAYOUT:
        return None
    if key is not None and meta.get("key") != key:
        return None
    fields = ("requirements", "dropped", "installed", "pytest_plugins")
    if not all(isinstance(meta.get(f), list) for f in fields):
        return None
    return {f: [str(x) for x in meta[f]] for f in fields}


@contextlib.contextmanager
def _locked(cache_dir: Path, key: str) -> Iterator[None]:
    """An exclusive lock on ``key`` in ``cache_dir``: a second builder waits, then reuses."""
    locks = cache_dir / ".locks"
    locks.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(locks / f"{key[:40]}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _installed(site: Path) -> list[str]:
    found = []
    with os.scandir(site) as it:
        for entry in sorted(it, key=lambda e: e.name):
            m = re.fullmatch(r"(.+?)-([^-]+)\.dist-info", entry.name)
            if m and entry.is_dir(follow_symlinks=False):
                found.append(f"{m.group(1)} {m.group(2)}")
    return found


def _pytest_plugins(site: Path) -> list[str]:
    """The modules of the ``pytest11`` entry points of what is installed in ``site``.

    The runner disables plugin auto-loading, so a repository's test plugins (pytest-mock,
    pytest-asyncio...) are named with ``-p``. Read as text through ``hostio``; nothing runs.
    """
    found: set[str] = set()
    with os.scandir(site) as it:
        infos = [e.name for e in it if e.name.endswith(".dist-info")]
    for info in sorted(infos):
        rel = f"{info}/entry_points.txt"
        parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
        try:
            parser.read_string(hostio.read_text(site, rel, errors="replace"))
        except (configparser.Error, hostio.Refused, FileNotFoundError):
            continue
        if parser.has_section("pytest11"):
            for value in parser["pytest11"].values():
                module = value.split(":", 1)[0].strip()
                if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module):
                    found.add(module)
    return sorted(found)


def _empty(directory: Path) -> None:
    for entry in os.scandir(directory):
        hostio.remove(Path(entry.path))


def _remove_stale(cache_dir: Path) -> None:
    """Remove build directories a crashed run left (older than ``STALE_BUILD_S``)."""
    now = time.time()
    for entry in os.scandir(cache_dir):
        if entry.name.startswith(".build-") and entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_BUILD_S:
                    hostio.remove(Path(entry.path))
