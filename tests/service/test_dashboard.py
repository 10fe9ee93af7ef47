"""The dashboard in a real browser: headless Chromium (Playwright) against a real
``darkfactory serve`` running the wordcount spec with the scripted model in bwrap.

``DARKFACTORY_SCREENSHOTS=1`` also writes the screenshots of docs/img/service-*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sync_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from darkfactory.service.web import PAGE_CSP  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "specs" / "wordcount.yaml"
MODEL = "scripted:examples/playbooks/wordcount.yaml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RUN_TIMEOUT_S = 120
IMG = REPO / "docs" / "img"
VIEWER = "vera-viewer-token-0123456789"
APPROVER = "abe-approver-token-0123456789"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="no /usr/bin/chromium"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="no bwrap: the runs need a sandbox"),
]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def submit(self, token: str | None = None, **options: Any) -> str:
        body = {"spec": {"filename": SPEC.name, "content": SPEC.read_text()}, "model": MODEL}
        return str(self.api("POST", "/api/runs", {**body, **options}, token)["id"])

    def wait(self, run_id: str, *statuses: str, token: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.api("GET", f"/api/runs/{run_id}", token=token)
            if run["status"] in statuses:
                return run
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} is still {run['status']}, not {statuses}")


@contextlib.contextmanager
def serve(out: Path, env: dict[str, str] | None = None, *args: str) -> Iterator[Server]:
    """``darkfactory serve --port 0`` in the repository (where the scripted playbook is)."""
    command = [str(Path(sys.executable).with_name("darkfactory")), "serve", "--port", "0"]
    log = (out / "server.log").open("w")
    proc = subprocess.Popen(
        [*command, "--out", str(out / "runs"), "--sandbox", "bwrap", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    try:
        found = re.search(r"(http://[^\s]+)", first[0] if first else "")
        assert found, (
            f"no URL on the server's first line: {first}; {(out / 'server.log').read_text()}"
        )
        yield Server(found.group(1).rstrip("/"), proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        with contextlib.suppress(ProcessLookupError):  # its workers, if any are left
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no tokens (loopback only): everyone is the local admin."""
    with serve(tmp_path_factory.mktemp("open")) as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    # A Content-Security-Policy violation or a script error is a console error; a form
    # refused with 413 or 422 is one too, and meant.
    answers = re.compile(r"status of (413|422) ")
    assert not [e for e in errors if not answers.search(e)], errors


def leave(page: Page) -> None:
    """Off the page before its server stops: its event stream would otherwise retry against
    a closed port, and the browser reports each retry as a console error."""
    page.goto("about:blank")


def shoot(page: Page, name: str, **options: Any) -> None:
    if os.environ.get("DARKFACTORY_SCREENSHOTS") == "1":
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / f"service-{name}.png"), **options)


def badge(page: Page) -> Any:
    return page.locator(".runhead [data-field=status]")


def test_a_spec_submitted_through_the_form_is_delivered_live(
    open_server: Server, page: Page, browser: Browser
) -> None:
    url = open_server.url
    runs = browser.new_page()  # the run list, open before the run exists
    runs.goto(url + "/")
    runs.evaluate("window.dfMarker = 'list'")

    response = page.goto(url + "/submit")
    assert response is not None and response.headers["content-security-policy"] == PAGE_CSP
    page.fill("textarea[name=spec_text]", SPEC.read_text())
    page.fill("input[name=filename]", SPEC.name)
    page.fill("input[name=model]", MODEL)
    page.click("button:has-text('Queue the run')")
    page.wait_for_url(re.compile(r"/runs/[^/]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.dfMarker = 'run'")

    expect(badge(page)).to_have_text("delivered", timeout=RUN_TIMEOUT_S * 1000)
    assert page.evaluate("window.dfMarker") == "run", "the run page was reloaded"
    phases = page.locator("[data-timeline] li.phase .name").all_text_contents()
    assert {"intake", "design", "implement", "verify", "deliver"} <= set(phases), phases
    expect(page.locator("[data-timeline] li.end")).to_contain_text("delivered")
    expect(page.locator("[data-stream]")).to_contain_text("write_file")
    expect(page.locator("[data-stream]")).to_contain_text("verify round 0: acceptance 8/8")
    expect(page.locator("[data-matrix] tr[data-req=R1] .result")).to_have_text("passed")
    expect(page.locator("[data-diff]")).to_contain_text("+++ b/wordcount.py")
    expect(page.locator("a:has-text('Open the report')")).to_be_visible()
    expect(page.locator(".runhead .tag.scripted")).to_contain_text("not AI")
    expect(page.locator("button[data-action=cancel]")).to_be_hidden()

    row = runs.locator(f"tr[data-id='{run_id}']")
    expect(row.locator("[data-field=status]")).to_have_text("delivered", timeout=10_000)
    assert runs.evaluate("window.dfMarker") == "list", "the run list was reloaded"
    runs.close()


def test_an_output_review_is_approved_in_the_inbox(open_server: Server, page: Page) -> None:
    run_id = open_server.submit(checkpoints={"output_review": "ask"})
    open_server.wait(run_id, "awaiting_approval")

    page.goto(f"{open_server.url}/inbox#{run_id}")
    item = page.locator(f"article[id='{run_id}']")
    expect(item.locator(".badge.cp")).to_have_text("output review")
    expect(item.locator("[data-diff]")).to_contain_text("+++ b/wordcount.py")
    expect(item.locator("[data-suites]")).to_contain_text("8/8")  # acceptance
    expect(item.locator("[data-suites]")).to_contain_text("4/4")  # unit
    expect(item.locator("[data-suites]")).to_contain_text("examples 3/3")  # docs
    expect(page.locator("[data-inbox-count]")).to_have_text("1")

    item.locator("textarea[name=reason]").first.fill("looks right <b>to me</b>")
    item.locator("button[data-action=approve]").click()
    page.wait_for_url(f"**/runs/{run_id}")
    expect(badge(page)).to_have_text("delivered", timeout=RUN_TIMEOUT_S * 1000)
    expect(page.locator("[data-stream]")).to_contain_text(
        "output review: approved by local (admin, darkfactory serve) — looks right <b>to me</b>"
    )
    assert page.locator("[data-stream] b").count() == 0  # run text is text, never markup


def test_the_submit_form_shows_the_api_s_refusals(open_server: Server, page: Page) -> None:
    page.goto(open_server.url + "/submit")
    page.click("button:has-text('Queue the run')")  # no spec
    expect(page.locator("[data-error]")).to_have_text(
        "the form needs a spec: paste its text or choose its file"
    )
    bad_model = "scripted:/etc/hostname"
    page.fill("textarea[name=spec_text]", SPEC.read_text())
    page.fill("input[name=filename]", SPEC.name)
    page.fill("input[name=model]", bad_model)
    page.click("button:has-text('Queue the run')")
    with pytest.raises(urllib.error.HTTPError) as refused:
        open_server.submit(model=bad_model)
    assert refused.value.code == 422
    expect(page.locator("[data-error]")).to_have_text(json.loads(refused.value.read())["detail"])
    expect(page.locator("input[name=model]")).to_have_value(bad_model)  # the form is kept

    page.fill("textarea[name=spec_text]", "x" * 1_000_001)
    page.fill("input[name=model]", MODEL)
    page.click("button:has-text('Queue the run')")
    expect(page.locator("[data-error]")).to_have_text(
        "the spec is 1000001 bytes; this server takes at most 1000000"
    )


def test_what_a_run_wrote_is_shown_as_text(open_server: Server, page: Page) -> None:
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    spec = SPEC.read_text().replace("title: Word count CLI", f"title: '{hostile}'")
    body = {"spec": {"filename": SPEC.name, "content": spec}, "model": MODEL}
    run_id = open_server.api("POST", "/api/runs", body)["id"]
    open_server.api("POST", f"/api/runs/{run_id}/cancel")
    for path in ("/", f"/runs/{run_id}"):
        page.goto(open_server.url + path)
        page.wait_for_timeout(2500)  # a poll of the list, the events of the run
        expect(page.locator("main")).to_contain_text(hostile)
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("window.pwned") is None


def test_a_deploy_approval_shows_the_command(tmp_path: Path, page: Page) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    factory = yaml.safe_load((config / "factory.yaml").read_text())
    factory["deploy"]["command"] = ["echo", "<ship it>", "--to=prod"]
    (config / "factory.yaml").write_text(yaml.safe_dump(factory))
    with serve(tmp_path, None, "--config", str(config)) as server:
        run_id = server.submit()  # output review: auto (factory.yaml), deploy approval: ask
        server.wait(run_id, "awaiting_approval")
        page.goto(f"{server.url}/inbox#{run_id}")
        item = page.locator(f"article[id='{run_id}']")
        expect(item.locator(".badge.cp")).to_have_text("deploy approval")
        expect(item.locator("[data-command]")).to_have_text("echo '<ship it>' --to=prod")
        expect(item.locator("[data-suites]")).to_contain_text("8/8")
        item.locator("form.reject textarea[name=reason]").fill("not today")
        item.locator("button[data-action=reject]").click()
        page.wait_for_url(f"**/runs/{run_id}")
        expect(page.locator("[data-stream]")).to_contain_text(
            "deploy approval: rejected by local (admin, darkfactory serve) — not today",
            timeout=RUN_TIMEOUT_S * 1000,
        )
        leave(page)


def test_roles_csrf_and_login_with_tokens(tmp_path: Path, browser: Browser) -> None:
    tokens = f"vera:viewer:{VIEWER},abe:approver:{APPROVER}"
    with serve(tmp_path, {"DARKFACTORY_TOKENS": tokens}) as server:
        run_id = server.submit(APPROVER, checkpoints={"output_review": "ask"})
        server.wait(run_id, "awaiting_approval", token=APPROVER)
        context = browser.new_context()
        page = context.new_page()

        page.goto(server.url + "/inbox")  # no token: to the login page, then back
        assert page.url == server.url + "/login?next=/inbox"
        page.fill("input[name=token]", "not-a-token-of-this-server")
        page.click("button:has-text('Sign in')")
        expect(page.locator(".error")).to_contain_text("not known here")
        page.fill("input[name=token]", VIEWER)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(server.url + "/inbox")
        cookie = next(c for c in context.cookies() if c["name"] == "df_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        expect(page.locator(".who")).to_contain_text("vera")
        expect(page.locator(".who .role")).to_have_text("viewer")

        item = page.locator(f"article[id='{run_id}']")  # a viewer sees what waits...
        expect(item.locator("[data-diff]")).to_contain_text("+++ b/wordcount.py")
        expect(item).to_contain_text("an approver decides this")
        assert page.locator("button[data-action=approve]").count() == 0  # ...but may not decide
        assert page.locator("nav.main a:has-text('Submit')").count() == 0
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        refused = page.request.post(
            f"{server.url}/runs/{run_id}/approve", form={"csrf": csrf or ""}
        )
        assert refused.status == 403 and "needs approver" in refused.text()

        page.click("button:has-text('Sign out')")
        page.wait_for_url(re.compile(r"/login"))
        page.fill("input[name=token]", APPROVER)
        page.click("button:has-text('Sign in')")
        page.goto(f"{server.url}/inbox#{run_id}")
        expect(page.locator(f"article[id='{run_id}'] button[data-action=approve]")).to_be_visible()
        # No token, a forged one, the viewer's (another session's):
        forms: list[dict[str, str | float | bool]] = [{}, {"csrf": "0" * 64}, {"csrf": csrf or ""}]
        for form in forms:
            forged = page.request.post(f"{server.url}/runs/{run_id}/approve", form=form)
            assert forged.status == 403 and "CSRF" in forged.text(), form
        assert (
            server.api("GET", f"/api/runs/{run_id}", token=APPROVER)["status"]
            == "awaiting_approval"
        )
        context.close()


def test_the_pages_with_a_few_runs(tmp_path: Path, page: Page) -> None:
    """Also the screenshots of the docs, with DARKFACTORY_SCREENSHOTS=1."""
    with serve(tmp_path) as server:
        first = server.submit()
        delivered = server.submit()
        paused = server.submit(checkpoints={"output_review": "ask"})
        cancelled = server.submit()
        server.api("POST", f"/api/runs/{cancelled}/cancel")
        server.wait(first, "delivered")
        server.wait(delivered, "delivered")
        server.wait(paused, "awaiting_approval")

        page.goto(f"{server.url}/runs/{delivered}")
        expect(badge(page)).to_have_text("delivered")
        expect(page.locator("[data-timeline] li.end")).to_be_visible()
        page.wait_for_timeout(1500)  # the diff and the detail are fetched at the end
        shoot(page, "run", full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1900})

        page.goto(f"{server.url}/inbox#{paused}")
        shoot(page, "inbox", full_page=True)

        page.goto(server.url + "/")
        page.wait_for_timeout(2500)  # one poll
        statuses = page.locator("tbody [data-field=status]").all_text_contents()
        assert statuses == ["cancelled", "awaiting approval", "delivered", "delivered"]
        expect(page.locator("[data-count=delivered]")).to_have_text("2")
        shoot(page, "runs")
        page.click(".filters a:has-text('awaiting approval')")
        expect(page.locator("tbody tr")).to_have_count(1)
        expect(page.locator(f"tbody tr[data-id='{paused}']")).to_be_visible()
        leave(page)
