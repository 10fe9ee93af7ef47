"""The site's Mermaid diagrams render in a real browser with no internet.

Built with ``mkdocs build --strict`` and served on 127.0.0.1, each page with a diagram is
opened in headless Chromium where every other name is unresolvable and every other
connection goes to a closed port, driven over the DevTools protocol
(``--remote-debugging-pipe``: no port, no extra library). Material draws a diagram into a
*closed* shadow root, which ``--dump-dom`` cannot see; ``DOM.getDocument`` with ``pierce``
can. (Served, not opened as ``file://``: there ``navigation.instant`` completes Material's
``document$`` before the page loads, and no component of the theme starts.)
"""

from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_docs import REPO

#: The pages with diagrams, and words their diagram must show once drawn.
DIAGRAMS = {
    "how-it-works": ["spec approval", "docs_check", "deliver (exit 0)"],
    "architecture": ["cli/", "engine/", "sandbox/", "reporting/", "yamlio.py"],
    "scaling-out": ["Redis broker", "run store", "machine B"],
}
#: What Material fetches Mermaid from when the page has no ``mermaid`` of its own.
CDN = "unpkg.com"
VENDORED = REPO / "docs" / "assets" / "javascripts" / "mermaid.min.js"
#: The vendored version, as docs/architecture.md and mkdocs.yml name it.
MERMAID_VERSION = "11.17.2"
#: Nothing may leave the machine: no name resolves but the site's address, and every
#: connection but to it (loopback is never proxied) goes to a closed port.
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pings",
    "--disable-domain-reliability",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1280,1600",
]


#: Run as ``python -c LAUNCHER IN OUT BROWSER ARGS...``: IN and OUT become fds 3 and 4.
LAUNCHER = """
import os, sys
inp, out = int(sys.argv[1]), int(sys.argv[2])
os.dup2(inp, 3)
os.dup2(out, 4)
os.close(inp)
os.close(out)
os.execv(sys.argv[3], sys.argv[3:])
"""


def above_9(fd: int) -> int:
    """``fd`` moved to a free descriptor above 9."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, browser: str, profile: Path) -> None:
        # Chromium's ends of the pipes must be its fds 3 and 4. A small launcher puts them
        # there and execs it (no preexec_fn: the test's server thread is running); they
        # start above 9 so that moving one cannot overwrite the other.
        to_browser, self._write = (above_9(fd) for fd in os.pipe())
        self._read, from_browser = (above_9(fd) for fd in os.pipe())
        argv = [browser, *OFFLINE, "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(to_browser), str(from_browser), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_browser, from_browser),
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command, collect events until its answer, return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._read], [], [], left)[0]:
                    raise TimeoutError(f"Chromium did not answer {method}")
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            else:
                return dict(reply["result"])

    def close(self) -> None:
        os.close(self._write)
        os.close(self._read)
        self.proc.kill()
        self.proc.wait(timeout=10)


def text_under(node: dict[str, Any]) -> str:
    """The text of every text node under ``node``, shadow roots and SVG included."""
    kids = [*node.get("shadowRoots", []), *node.get("children", [])]
    return (node.get("nodeValue", "") if node.get("nodeType") == 3 else "") + " ".join(
        text_under(kid) for kid in kids
    )


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for kid in [*node.get("shadowRoots", []), *node.get("children", [])]:
        yield from walk(kid)


def drawn_diagrams(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``<svg>`` inside each ``div.mermaid``'s shadow root: what Material drew."""
    svgs = []
    for node in walk(document):
        attrs = node.get("attributes", [])
        classes = dict(zip(attrs[::2], attrs[1::2], strict=True)).get("class", "")
        if node.get("nodeName") == "DIV" and "mermaid" in classes.split():
            for root in node.get("shadowRoots", []):
                svgs += [n for n in walk(root) if n.get("nodeName", "").lower() == "svg"]
    return svgs


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site on a free port of 127.0.0.1, as a web server would serve it."""
    handler = functools.partial(QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def test_mermaid_is_vendored_and_loaded_by_every_page_with_a_diagram(site: Path) -> None:
    """The page defines the global ``mermaid`` itself, so Material never asks the CDN."""
    assert f'version:"{MERMAID_VERSION}"'.encode() in VENDORED.read_bytes()
    for note in (REPO / "docs" / "architecture.md", REPO / "mkdocs.yml"):
        assert f"{MERMAID_VERSION} (MIT" in " ".join(note.read_text().split()), note
    assert (site / "assets" / "javascripts" / "mermaid.min.js").read_bytes() == (
        VENDORED.read_bytes()
    )
    for name in DIAGRAMS:
        html = (site / name / "index.html").read_text(encoding="utf-8")
        assert '<pre class="mermaid">' in html, f"{name}: no mermaid fence in the built page"
        scripts = re.findall(r'<script src="([^"]+)"', html)
        assert scripts[-1].endswith("assets/javascripts/mermaid.min.js"), scripts
        assert not any(CDN in s for s in scripts)


def test_diagrams_render_offline_in_headless_chromium(
    site: Path, served: str, tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed: apt-get install chromium")
    artifacts = Path(os.environ.get("DARKFACTORY_ARTIFACTS", Path(__file__).parent / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    chrome = Chromium(browser, tmp_path / "profile")
    try:
        target = chrome.call("Target.createTarget", url="about:blank")["targetId"]
        session = chrome.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        chrome.call("Network.enable", session)
        for name, words in DIAGRAMS.items():
            html = (site / name / "index.html").read_text(encoding="utf-8")
            expected = html.count('<pre class="mermaid">')
            chrome.call("Page.navigate", session, url=f"{served}/{name}/")
            # Material replaces each <pre class="mermaid"> by a <div class="mermaid"> only
            # once Mermaid has drawn it; a Mermaid that never loads leaves the <pre>.
            done = (
                "document.readyState === 'complete' && "
                f"document.querySelectorAll('div.mermaid').length === {expected}"
            )
            deadline = time.monotonic() + 15
            while not chrome.call("Runtime.evaluate", session, expression=done)["result"]["value"]:
                assert time.monotonic() < deadline, f"{name}: the diagram was not drawn in 15 s"
                time.sleep(0.1)
            document = chrome.call("DOM.getDocument", session, depth=-1, pierce=True)["root"]
            svgs = drawn_diagrams(document)
            assert len(svgs) == expected, f"{name}: {len(svgs)} of {expected} diagrams drawn"
            drawn = text_under(svgs[0])
            missing = [w for w in words if w not in drawn]
            assert not missing, f"{name}: not in the drawn diagram: {missing}"
            # A picture of the first diagram, to look at (CI keeps tests/artifacts/).
            box = chrome.call(
                "Runtime.evaluate",
                session,
                returnByValue=True,
                expression="(() => { const r = document.querySelector('div.mermaid')"
                ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY,"
                " width: r.width, height: r.height}; })()",
            )["result"]["value"]
            shot = chrome.call(
                "Page.captureScreenshot",
                session,
                clip={**box, "scale": 1},
                captureBeyondViewport=True,
            )
            (artifacts / f"diagram-{name}.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        chrome.close()
    requested = [
        e["params"]["request"]["url"]
        for e in chrome.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    scripts = [
        e["params"]["request"]["url"]
        for e in chrome.events
        if e.get("method") == "Network.requestWillBeSent" and e["params"].get("type") == "Script"
    ]
    assert any(u.endswith("/mermaid.min.js") for u in scripts), scripts
    assert [u for u in scripts if not u.startswith(served)] == [], "a script from outside"
    assert not any(CDN in u for u in requested), "Mermaid was fetched from the CDN"
