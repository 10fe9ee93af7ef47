"""A package index on loopback, built and served by the test session (no network at all).

``build_index(root)`` writes a PEP 503 "simple" index under ``root``:

- ``six`` 1.16.0 and 1.17.0, wheels made here with ``zipfile`` from the ``six.py`` of Dark
  Factory's own environment, ``__version__`` set to the wheel's version (nothing is built
  or downloaded; the wheels are what ``pip download`` would fetch for a pure module);
- ``dfsdistonly`` 1.0, a source distribution only, whose ``setup.py`` would write
  ``root/sdist-was-built`` if anything ran it: with ``--only-binary=:all:`` pip must not
  even fetch it.

``serve(root)`` serves it from a thread on ``127.0.0.1`` (an ephemeral port) and records
the paths requested. conftest.py's ``local_index`` fixture does both once per session and
points ``PIP_INDEX_URL`` at it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import importlib.util
import io
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: The versions of six on the index (Dark Factory's environment has 1.17.0; tests pin 1.16.0).
SIX_VERSIONS = ("1.16.0", "1.17.0")
#: A project that publishes no wheel.
SDIST_ONLY = "dfsdistonly"


@dataclass
class LocalIndex:
    url: str  # ".../simple/", for PIP_INDEX_URL
    root: Path
    requested: list[str] = field(default_factory=list)

    @property
    def sdist_marker(self) -> Path:
        """Where the sdist's setup.py writes when it runs (it never should)."""
        return self.root / "sdist-was-built"

    def files_requested(self) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p in self.requested if p.startswith("/files/")]


def build_index(root: Path) -> Path:
    """Write the index (module doc) under ``root``; returns ``root``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("six")
    assert spec is not None and spec.origin is not None, "six is not installed"
    module = Path(spec.origin).read_text(encoding="utf-8")
    projects: dict[str, list[Path]] = {"six": [], SDIST_ONLY: []}
    for version in SIX_VERSIONS:
        text, n = re.subn(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"', module)
        assert n == 1, "six.py has no __version__ line"
        projects["six"].append(
            wheel(files, "six", version, {"six.py": text}, tag="py2.py3-none-any")
        )
    projects[SDIST_ONLY].append(sdist(files, SDIST_ONLY, "1.0", marker=root / "sdist-was-built"))
    links = "".join(f'<a href="{name}/">{name}</a>\n' for name in sorted(projects))
    _page(root / "simple", links)
    for name, dists in projects.items():
        links = "".join(
            f'<a href="../../files/{d.name}#sha256={_sha256(d.read_bytes()).hex()}">'
            f"{html.escape(d.name)}</a>\n"
            for d in dists
        )
        _page(root / "simple" / name, links)
    return root


def wheel(dest: Path, name: str, version: str, modules: dict[str, str], *, tag: str) -> Path:
    """A pure-Python wheel of ``modules`` (path in the wheel -> source), written to ``dest``."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {path: text.encode() for path, text in modules.items()}
    contents[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Summary: test stand-in served by tests/pypi_local.py\n"
    ).encode()
    contents[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: tests/pypi_local.py\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    contents[f"{dist_info}/top_level.txt"] = "".join(
        p.split("/")[0].removesuffix(".py") + "\n" for p in modules
    ).encode()
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(_sha256(data)).rstrip(b'=').decode()},"
        f"{len(data)}\n"
        for path, data in contents.items()
    )
    contents[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    target = dest / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in contents.items():
            zf.writestr(path, data)
    return target


def sdist(dest: Path, name: str, version: str, *, marker: Path) -> Path:
    """A source distribution whose setup.py, if run, writes ``marker``."""
    base = f"{name}-{version}"
    members = {
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{base}/setup.py": (
            f"open({str(marker)!r}, 'w').write('built')\n"
            "from setuptools import setup\n"
            f"setup(name={name!r}, version={version!r}, py_modules=[])\n"
        ),
    }
    target = dest / f"{base}.tar.gz"
    with tarfile.open(target, "w:gz") as tf:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return target


@contextlib.contextmanager
def serve(root: Path) -> Iterator[LocalIndex]:
    """Serve ``root`` on 127.0.0.1 (ephemeral port) from a thread while the block runs."""
    index = LocalIndex(url="", root=root)

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            index.requested.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    index.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    thread = threading.Thread(target=server.serve_forever, name="pypi-local", daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _page(directory: Path, links: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text(
        f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n", encoding="utf-8"
    )


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
