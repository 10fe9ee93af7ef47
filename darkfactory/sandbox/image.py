"""The docker backend's default image, built offline from Debian packages.

``build_image(name)`` makes ``darkfactory-sandbox:bookworm`` without pulling anything from a
registry: ``debootstrap --variant=minbase --include=python3,python3-pip,python3-pytest
bookworm DIR MIRROR`` into a temporary directory, with ``MIRROR`` read from this machine's
apt sources (``apt_mirror``: the deb822 ``URIs:`` of a stanza for the suite in
``/etc/apt/sources.list.d/*.sources``, else the ``deb`` line for it in
``/etc/apt/sources.list`` or ``sources.list.d/*.list``), never a built-in address. Then
the Python tools the pipeline runs inside the sandbox (``TOOLS``: pytest, mkdocs with its
theme and plugins, openapi-core) are added at the versions Dark Factory's own environment
has, which is where bwrap and local take them from, so every backend runs the same ones:
their wheels are downloaded on the host (``pip download --only-binary=:all:``) and
installed with the image's own pip (``chroot DIR python3 -m pip install --no-index``).
Last, the non-root user commands run as (``nobody``, uid and gid ``SANDBOX_UID``: Debian's
base system has it; it is added if not) is checked, apt's caches are dropped, and ``tar -C
DIR -c .`` is streamed into the engine's import (``docker import``). It needs root
(debootstrap and chroot do) and takes about a minute.

Online, a Dockerfile does the same from ``python:3.11-slim``: see
``examples/docker/Dockerfile``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from darkfactory.errors import InputError, SandboxUnavailable

DEFAULT_IMAGE = "darkfactory-sandbox:bookworm"
SUITE = "bookworm"
#: What the image holds beyond Debian's minimal base: an interpreter, pip (to install the
#: generated project's wheels from the wheelhouse) and pytest (Debian's; ``TOOLS`` brings
#: the version Dark Factory runs, which comes first on the path).
PACKAGES = ("python3", "python3-pip", "python3-pytest")
#: Python packages the pipeline runs inside the sandbox: pytest (the test suites), mkdocs
#: with the Material theme and mkdocstrings (the docs check builds the project's site),
#: openapi-core with werkzeug (contract tests generated from an OpenAPI spec).
TOOLS = (
    "pytest",
    "mkdocs-material",
    "mkdocstrings",
    "mkdocstrings-python",
    "openapi-core",
    "coverage",
)
#: What a built image must run (a smoke test after the import).
PYTHON_CHECK = (
    "python3",
    "import sys, pip, pytest, mkdocs, material, mkdocstrings, openapi_core, werkzeug, coverage\n"
    "print(f'python {sys.version.split()[0]}, pip {pip.__version__}, "
    "pytest {pytest.__version__}, mkdocs {mkdocs.__version__}')",
)
#: The image's non-root user (``nobody``): commands run as this uid:gid when Dark Factory
#: runs as root (see ``docker.py``).
SANDBOX_UID = 65534
APT_DIR = Path("/etc/apt")


def build_command(name: str) -> str:
    """The command line that builds image ``name`` (for messages)."""
    name_arg = "" if name == DEFAULT_IMAGE else f" --name {name}"
    return f"darkfactory sandbox build-image{name_arg}"


def apt_mirror(suite: str = SUITE, apt_dir: Path = APT_DIR) -> str:
    """The Debian mirror this machine's apt uses for ``suite``, or ``InputError``.

    deb822 ``*.sources`` files first (the first ``URIs:`` of an enabled ``deb`` stanza whose
    ``Suites:`` names ``suite`` exactly), then one-line ``deb`` entries in ``sources.list``
    and ``sources.list.d/*.list``.
    """
    for sources in sorted(glob.glob(str(apt_dir / "sources.list.d" / "*.sources"))):
        for stanza in _deb822(Path(sources).read_text(encoding="utf-8", errors="replace")):
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            if (
                "deb" in stanza.get("types", "").split()
                and suite in stanza.get("suites", "").split()
            ):
                uris = stanza.get("uris", "").split()
                if uris:
                    return uris[0]
    lists = [
        apt_dir / "sources.list",
        *sorted(Path(p) for p in glob.glob(str(apt_dir / "sources.list.d" / "*.list"))),
    ]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise InputError(
        f"no apt source for Debian {suite} on this machine (looked in "
        f"{apt_dir}/sources.list.d/*.sources, {apt_dir}/sources.list and *.list)",
        hint="name a Debian mirror: darkfactory sandbox build-image --mirror URL",
    )


def _deb822(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 file: lower-cased field names, continuation lines joined."""
    stanza: dict[str, str] = {}
    key = None
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
        elif line[0] in " \t" and key is not None:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            stanza[key] = value.strip()


def build_image(
    name: str = DEFAULT_IMAGE,
    *,
    mirror: str | None = None,
    suite: str = SUITE,
    progress: Callable[[str], None] = lambda msg: None,
) -> str:
    """Build image ``name`` offline (see the module doc); returns its id."""
    if os.geteuid() != 0:
        raise InputError("building the image needs root (debootstrap creates device files)")
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin")
    if debootstrap is None:
        raise InputError(
            "debootstrap is not installed", hint="apt-get install debootstrap, then try again"
        )
    client = docker_client()  # fail before the minute of debootstrap, not after it
    mirror = mirror or apt_mirror(suite)
    repo, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    with tempfile.TemporaryDirectory(prefix="darkfactory-image-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        log = Path(tmp) / "debootstrap.log"
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            suite,
            str(root),
            mirror,
        ]
        progress(f"{' '.join(argv[1:])} (about a minute)")
        with log.open("wb") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise InputError(
                f"debootstrap failed (exit code {done.returncode}):\n{tail}",
                hint=f"check that {mirror} serves Debian {suite}, or pass --mirror URL",
            )
        pins = tool_pins()
        progress(f"adding {' '.join(pins)}")
        _add_tools(root, pins)
        _finish_rootfs(root)
        progress(f"importing {root} as {name}")
        tar = subprocess.Popen(
            ["tar", "-C", str(root), "--numeric-owner", "-c", "."],
            stdout=subprocess.PIPE,
        )
        assert tar.stdout is not None
        try:
            client.api.import_image(
                src=iter(lambda: tar.stdout.read(1 << 20), b""),  # type: ignore[union-attr]
                stream_src=True,
                repository=repo,
                tag=tag,
                changes=[
                    "ENV LANG=C.UTF-8",
                    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                    f"USER {SANDBOX_UID}:{SANDBOX_UID}",
                    "WORKDIR /workspace",
                    'CMD ["python3"]',
                ],
            )
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise InputError(f"tar of {root} failed (exit code {tar.returncode})")
    image = client.images.get(name)
    check = [PYTHON_CHECK[0], "-c", PYTHON_CHECK[1]]
    out = client.containers.run(name, check, remove=True, network_mode="none")
    progress(f"built {name} ({image.short_id}): {out.decode(errors='replace').strip()}")
    return str(image.id)


def tool_pins() -> list[str]:
    """``TOOLS`` at the versions this environment has (unpinned where one is missing)."""
    import importlib.metadata  # 25-55 ms: only when an image is built, not for --help

    pins = []
    for tool in TOOLS:
        try:
            pins.append(f"{tool}=={importlib.metadata.version(tool)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(tool)
    return pins


def _add_tools(root: Path, pins: list[str]) -> None:
    """Download the wheels of ``pins`` on the host; install them with the image's pip."""
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,
    }
    version = subprocess.run(
        [chroot, str(root), "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if version.returncode != 0:
        raise InputError(f"the new image's python3 does not run: {version.stderr.strip()}")
    wheels = root / "tmp" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    steps = [
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            version.stdout.strip(),
            "--dest",
            str(wheels),
            *pins,
        ],
        [
            chroot,
            str(root),
            "python3",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            "--break-system-packages",
            "--no-cache-dir",
            "--no-index",
            "--find-links",
            "/tmp/wheels",
            *pins,
        ],
    ]
    for i, argv in enumerate(steps):
        done = subprocess.run(
            argv, capture_output=True, text=True, env=None if i == 0 else env, check=False
        )
        if done.returncode != 0:
            raise InputError(
                f"{' '.join(argv[:5])} ... failed (exit code {done.returncode}):\n"
                f"{(done.stderr or done.stdout)[-3000:]}"
            )
    shutil.rmtree(wheels)


def _finish_rootfs(root: Path) -> None:
    """The non-root user, an empty /workspace, no apt caches."""
    passwd, group = root / "etc" / "passwd", root / "etc" / "group"
    if f":{SANDBOX_UID}:" not in passwd.read_text(encoding="utf-8"):
        with passwd.open("a", encoding="utf-8") as f:
            f.write(f"nobody:x:{SANDBOX_UID}:{SANDBOX_UID}:nobody:/nonexistent:/usr/sbin/nologin\n")
    if f":{SANDBOX_UID}:" not in group.read_text(encoding="utf-8"):
        with group.open("a", encoding="utf-8") as f:
            f.write(f"nogroup:x:{SANDBOX_UID}:\n")
    (root / "workspace").mkdir(mode=0o755, exist_ok=True)
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in glob.glob(str(root / pattern)):
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)


def image_problem(client: object, name: str) -> str | None:
    """Why image ``name`` cannot be used (None: it exists)."""
    import docker

    assert isinstance(client, docker.DockerClient)
    try:
        client.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return f"image {name} is missing; build it: {build_command(name)}"
    except docker.errors.APIError as exc:
        raise SandboxUnavailable(f"docker: cannot inspect image {name}: {exc}") from exc
    return None


ENGINE_HINT = (
    "start the engine (dockerd, or systemctl start docker) or install it "
    "(apt-get install docker.io); or use the bwrap backend"
)


def docker_client() -> Any:
    """A client of the engine ``DOCKER_HOST`` (or the local socket) names, if it answers.

    Raises ``SandboxUnavailable`` saying how to get an engine.
    """
    try:
        import docker
    except ImportError as exc:  # a declared dependency; only a broken install lacks it
        raise SandboxUnavailable(
            "the docker Python package is not installed", hint="pip install docker"
        ) from exc
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(
            f"no Docker engine answers at {where} ({_short(exc)})", hint=ENGINE_HINT
        ) from exc
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__
