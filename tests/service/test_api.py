"""``darkfactory serve``'s REST API against a live server on a loopback port.

Real server process, real workers, real crew, tools and bwrap sandbox; the scripted model
(a test tool, not AI) plays each run's playbook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from runhelp import NEEDS_BWRAP, example_playbook, good_code
from svc import (
    Server,
    put_playbook,
    restart,
    spec_body,
    sse,
    start_server,
    trace_kinds,
    wait_status,
)

from darkfactory.cli import main
from darkfactory.reporting.trace import read_trace

pytestmark = [pytest.mark.e2e, NEEDS_BWRAP]

TOKENS = {
    "viewer": "v" * 24,
    "submitter": "s" * 24,
    "approver": "a" * 24,
    "admin": "d" * 24,
}
SERVICE = {
    "tokens": [
        {"name": f"{role}-user", "role": role, "token_env": f"TOKEN_{role.upper()}"}
        for role in TOKENS
    ],
    "max_spec_bytes": 20_000,
}
SECRET = "hook-secret-for-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("serve")
    put_playbook(root)
    srv = start_server(
        root,
        jobs=2,
        service=SERVICE,
        tokens=TOKENS,
        extra_env={"DARKFACTORY_GITHUB_SECRET": SECRET},
    )
    yield srv
    srv.stop()


def run_dir(server: Server, run_id: str) -> Path:
    return server.runs / run_id


def test_submit_follow_the_events_and_the_run_is_delivered(server: Server) -> None:
    with server.client("submitter") as c:
        r = c.post("/api/runs", json=spec_body())
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        assert r.json()["status"] == "queued"
        statuses, trace, ids = [], [], []
        for event, ident, data in sse(c, run_id):
            if event == "status":
                statuses.append(json.loads(data)["status"])
            elif event == "trace":
                trace.append(data)
                ids.append(int(ident))
        assert statuses[-1] == "delivered" and "running" in statuses
        kinds = trace_kinds(trace)
        assert kinds[0] == "run_start" and kinds[-1] == "run_end"
        assert ids == list(range(1, len(ids) + 1))  # every record, once, numbered
        # The stream resumes where a client left it.
        again = [int(i) for e, i, _ in sse(c, run_id, last_id=str(ids[-5])) if e == "trace"]
        assert again == ids[-4:]
        detail = c.get(f"/api/runs/{run_id}").json()
    assert detail["status"] == "delivered" and detail["llm"]["calls"] == 25
    assert detail["scripted_model"] is True
    assert detail["submitted_by"] == "submitter-user"
    records = read_trace(run_dir(server, run_id) / "trace.jsonl")
    assert [r["kind"] for r in records].count("run_start") == 1
    with server.client("viewer") as c:
        listed = c.get("/api/runs", params={"status": "delivered"}).json()
        assert run_id in [r["id"] for r in listed]
        html = c.get(f"/api/runs/{run_id}/report.html")
        assert html.status_code == 200 and "Word count CLI" in html.text
        assert "script-src" not in html.headers["content-security-policy"]  # no script runs
        f = c.get(f"/api/runs/{run_id}/files/wordcount.py")
        assert f.status_code == 200 and f.headers["content-type"].startswith("text/plain")
        assert "def main" in f.text
        assert "wordcount.py" in c.get(f"/api/runs/{run_id}/diff").text


def test_output_review_pauses_an_approver_approves_and_it_is_delivered(server: Server) -> None:
    with server.client("submitter") as c:
        body = spec_body(checkpoints={"output_review": "ask"})
        run_id = c.post("/api/runs", json=body).json()["id"]
        paused = wait_status(c, run_id, ("awaiting_approval",))
        assert paused["pending_checkpoint"]["checkpoint"] == "output_review"
        # A submitter may not approve; an approver may, once.
        assert c.post(f"/api/runs/{run_id}/approve", json={}).status_code == 403
    with server.client("approver") as c:
        r = c.post(f"/api/runs/{run_id}/approve", json={"reason": "looks right"})
        assert r.status_code == 200, r.text
        assert c.post(f"/api/runs/{run_id}/approve", json={}).status_code == 409
        done = wait_status(c, run_id, ("delivered", "failed"))
    assert done["status"] == "delivered", done["reason"]
    [review] = [x for x in done["checkpoints"] if x["checkpoint"] == "output_review"]
    assert review["decision"] == "approved" and review["reason"] == "looks right"
    assert review["by"].startswith("approver-user (approver")
    decided = [
        r for r in read_trace(run_dir(server, run_id) / "trace.jsonl") if r["kind"] == "checkpoint"
    ]
    assert any(str(r.get("by", "")).startswith("approver-user") for r in decided)


def _revision_playbook(reason: str) -> dict[str, Any]:
    book = example_playbook()
    roles = book["roles"]
    roles["manager"] += [
        {
            "delegate": {"to": "developer", "task": "Do what the reviewer asks.",
                         "context": "The reviewer feedback is in the task."},
            "expect": [f"Reviewer feedback (may be empty): {reason}"],
        },
        {"answer": "Done."},
        {"delegate": {"to": "tech_writer", "task": "Check the docs still match the code.",
                      "context": "main() changed."}},
        {"answer": "The docs are still right."},
    ]  # fmt: skip
    roles["developer"] += [
        {"tool": "write_file", "args": {"path": "wordcount.py",
                                         "content": good_code(book).replace('"""wc-like', '"""A wc-like', 1)}},
        {"answer": "wordcount.py now prints a usage line."},
    ]  # fmt: skip
    roles["tech_writer"] += [{"answer": "The docs still match the code."}]
    return book


def test_a_rejection_with_a_reason_reaches_the_crew(server: Server) -> None:
    reason = "Print a usage line when --help is given"
    put_playbook(server.root, _revision_playbook(reason), "revise.yaml")
    with server.client("admin") as c:
        body = {**spec_body(checkpoints={"output_review": "ask"}), "model": "scripted:revise.yaml"}
        run_id = c.post("/api/runs", json=body).json()["id"]
        wait_status(c, run_id, ("awaiting_approval",))
        assert c.post(f"/api/runs/{run_id}/reject", json={"reason": " "}).status_code == 422
        assert c.post(f"/api/runs/{run_id}/reject", json={"reason": reason}).status_code == 200
        # Asked again after the revision; the playbook's `expect` proved the crew got it.
        again = wait_status(c, run_id, ("awaiting_approval", "failed"), timeout=300)
        assert again["status"] == "awaiting_approval", again["reason"]
        assert c.post(f"/api/runs/{run_id}/approve").status_code == 200
        done = wait_status(c, run_id, ("delivered", "failed"))
    assert done["status"] == "delivered", done["reason"]
    assert [(x["decision"], x["reason"]) for x in done["checkpoints"]][1:] == [
        ("rejected", reason),
        ("approved", ""),
    ]


def test_cancel_a_queued_and_a_running_run(server: Server) -> None:
    slow = example_playbook()
    for step in slow["roles"]["manager"]:
        step["delay_s"] = 2
    put_playbook(server.root, slow, "slow.yaml")
    with server.client("submitter") as c:
        ids = [
            c.post("/api/runs", json={**spec_body(), "model": "scripted:slow.yaml"}).json()["id"]
            for _ in range(3)
        ]
        running = wait_status(c, ids[0], ("running",))
        time.sleep(3)  # into its crew
        assert c.post(f"/api/runs/{ids[2]}/cancel").json()["status"] == "cancelled"
        assert c.post(f"/api/runs/{ids[0]}/cancel").status_code == 200
        stopped = wait_status(c, ids[0], ("cancelled",), timeout=60)
        assert c.post(f"/api/runs/{ids[0]}/cancel").status_code == 409  # already ended
        c.post(f"/api/runs/{ids[1]}/cancel")
        wait_status(c, ids[1], ("cancelled",), timeout=60)
    assert running["status"] == "running" and stopped["status"] == "cancelled"
    # The cancelled run stopped mid-way and stays resumable by hand.
    assert (run_dir(server, ids[0]) / "trace.jsonl").is_file()
    assert not (run_dir(server, ids[2])).exists()


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status"),
    [
        (None, "GET", "/api/runs", None, 401),
        ("wrong", "GET", "/api/runs", None, 401),
        ("viewer", "POST", "/api/runs", "spec", 403),
        ("viewer", "GET", "/api/runs/no-such-run", None, 404),
        ("viewer", "GET", "/api/runs?status=nonsense", None, 422),
        ("submitter", "POST", "/api/runs", {"spec": {"filename": "../x.md", "content": "x"}}, 422),
        ("submitter", "POST", "/api/runs", {"spec": {"filename": "a.md", "content": "x"}, "colour": 1}, 422),
        ("submitter", "POST", "/api/runs", {**spec_body(), "model": "scripted:/etc/passwd"}, 422),
        ("submitter", "POST", "/api/runs", {**spec_body(), "model": "scripted:../../outside.yaml"}, 422),
        ("submitter", "POST", "/api/runs", {"spec": {"filename": "big.md", "content": "x" * 20_001}}, 413),
    ],
)  # fmt: skip
def test_bad_requests_get_their_status(
    server: Server, who: str | None, method: str, path: str, body: Any, status: int
) -> None:
    headers = {"Authorization": "Bearer " + "w" * 24} if who == "wrong" else {}
    client = server.client(None if who in (None, "wrong") else who, headers=headers)
    payload = spec_body() if body == "spec" else body
    with client as c:
        r = c.request(method, path, json=payload)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_an_invalid_spec_gets_validates_own_message(
    server: Server, tmp_path: Path, capsys: Any
) -> None:
    bad = "title: Word count\nrequirements:\n  - id: R1\n    text: count words\n  - oops\n"
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    assert main(["validate", str(tmp_path / "bad.yaml")]) == 2
    expected = capsys.readouterr().err.removeprefix("darkfactory: error: ").strip()
    expected = expected.replace(f"{tmp_path}/", "")
    with server.client("submitter") as c:
        r = c.post("/api/runs", json={"spec": {"filename": "bad.yaml", "content": bad}})
    assert r.status_code == 422
    assert r.json()["detail"] == expected
    assert r.json()["detail"].startswith("bad.yaml:")


def test_multipart_upload_is_a_run_too(server: Server) -> None:
    body = spec_body()
    with server.client("submitter") as c:
        r = c.post(
            "/api/runs",
            files={
                "spec": ("wordcount.yaml", body["spec"]["content"].encode(), "application/yaml")
            },
            data={
                "options": json.dumps(
                    {"model": "scripted:playbook.yaml", "budget": {"max_llm_calls": 1}}
                )
            },
        )
        assert r.status_code == 202, r.text
        done = wait_status(c, r.json()["id"], ("budget_exhausted", "delivered", "failed"))
    assert done["status"] == "budget_exhausted"  # its own budget held


def test_approving_what_is_not_paused_is_a_conflict(server: Server) -> None:
    with server.client("admin") as c:
        run_id = c.post("/api/runs", json=spec_body()).json()["id"]
        assert c.post(f"/api/runs/{run_id}/approve", json={}).status_code == 409  # queued
        wait_status(c, run_id, ("delivered",))
        r = c.post(f"/api/runs/{run_id}/reject", json={"reason": "too late"})
    assert r.status_code == 409 and "not waiting for approval" in r.json()["detail"]


def test_files_outside_the_workspace_are_not_found(server: Server) -> None:
    with server.client("submitter") as c:
        run_id = c.post("/api/runs", json=spec_body()).json()["id"]
        wait_status(c, run_id, ("delivered", "failed"))
    ws = run_dir(server, run_id) / "workspace"
    (ws / "link").symlink_to("/etc/passwd")
    (ws / "dirlink").symlink_to(server.root)
    with server.client("viewer") as c:
        for path in ("../trace.jsonl", "..%2Ftrace.jsonl", "/etc/passwd", "link", "dirlink/config/service.yaml",
                     ".git/config/../../../trace.jsonl", "nothere.py"):  # fmt: skip
            r = c.get(f"/api/runs/{run_id}/files/{path}")
            assert r.status_code == 404, (path, r.status_code, r.text[:200])


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "d-1", "Content-Type": "application/json"}  # fmt: skip


def test_a_github_issue_labeled_darkfactory_becomes_a_run(server: Server) -> None:
    payload = {
        "action": "labeled",
        "label": {"name": "darkfactory"},
        "issue": {"number": 42, "title": "Word count CLI", "html_url": "https://github.com/o/r/issues/42",
                  "body": "- The tool must count the words of a text file and print the number.", "user": {"login": "octo"}},
        "repository": {"full_name": "o/r", "clone_url": "https://github.com/o/r.git"},
        "sender": {"login": "octo"},
    }  # fmt: skip
    body = json.dumps(payload).encode()
    with server.client() as c:
        assert (
            c.post("/api/webhooks/github", content=body, headers=_signed(body, "wrong")).status_code
            == 401
        )
        assert c.post("/api/webhooks/github", content=body,
                      headers={"X-GitHub-Event": "issues"}).status_code == 401  # fmt: skip
        other = json.dumps({**payload, "label": {"name": "bug"}}).encode()
        ignored = c.post("/api/webhooks/github", content=other, headers=_signed(other))
        assert (ignored.status_code, ignored.json()) == (202, {"status": "ignored"})
        r = c.post("/api/webhooks/github", content=body, headers=_signed(body))
        assert r.status_code == 202, r.text
        again = c.post("/api/webhooks/github", content=body, headers=_signed(body))  # redelivered
        assert again.json() == {"id": r.json()["id"], "status": "duplicate"}
    with server.client("viewer") as c:
        job = c.get(f"/api/runs/{r.json()['id']}").json()
        titles = [
            x["title"] for x in c.get("/api/runs").json() if x["submitted_by"] == "github:octo"
        ]
    assert job["submitted_by"] == "github:octo" and job["title"] == "Word count CLI"
    assert len(titles) == 1  # one run for one delivery


def test_openapi_document_lists_every_route(server: Server) -> None:
    doc = server.client().get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/events", "/api/runs/{run_id}/report.html",
        "/api/runs/{run_id}/files/{path}", "/api/runs/{run_id}/approve", "/api/runs/{run_id}/reject",
        "/api/runs/{run_id}/cancel", "/api/webhooks/github",
    } <= paths  # fmt: skip
    assert "multipart/form-data" in doc["paths"]["/api/runs"]["post"]["requestBody"]["content"]


def test_no_tokens_and_a_public_bind_is_refused(tmp_path: Path, capsys: Any) -> None:
    code = main(["serve", "--host", "0.0.0.0", "--port", "0", "--out", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 with no tokens" in err and "hint:" in err


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    """Queued, running and paused runs survive a ``kill -9`` of the server: each ends as it
    should, none twice, none lost."""
    slow = example_playbook()
    for step in slow["roles"]["manager"]:
        step["delay_s"] = 1.5
    put_playbook(tmp_path, slow, "slow.yaml")
    put_playbook(tmp_path)
    srv = start_server(tmp_path, jobs=1)
    with srv.client() as c:
        paused = c.post("/api/runs", json=spec_body(checkpoints={"output_review": "ask"})).json()[
            "id"
        ]
        wait_status(c, paused, ("awaiting_approval",))
        running = c.post("/api/runs", json={**spec_body(), "model": "scripted:slow.yaml"}).json()[
            "id"
        ]
        queued = c.post("/api/runs", json=spec_body()).json()["id"]
        wait_status(c, running, ("running",))
        time.sleep(8)  # a few steps into its crew
    srv.kill9()
    time.sleep(1)
    left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _cwd(p) == tmp_path]
    assert not left, f"processes outlived their server: {left}"
    srv = restart(srv)
    try:
        with srv.client() as c:
            assert c.get(f"/api/runs/{paused}").json()["status"] == "awaiting_approval"
            assert c.post(f"/api/runs/{paused}/approve").status_code == 200
            ends = {
                rid: wait_status(c, rid, ("delivered", "failed"), timeout=300)
                for rid in (running, queued, paused)
            }
    finally:
        srv.stop()
    assert {rid: e["status"] for rid, e in ends.items()} == dict.fromkeys(ends, "delivered")
    assert ends[running]["attempts"] == 2
    for rid in ends:
        kinds = [r["kind"] for r in read_trace(srv.runs / rid / "trace.jsonl")]
        assert kinds.count("run_start") == 1  # started once
        assert kinds.count("run_end") >= 1 and kinds[-1] == "run_end"
    resumed = [
        r for r in read_trace(srv.runs / running / "trace.jsonl") if r["kind"] == "run_resumed"
    ]
    assert len(resumed) == 1


def _cwd(proc: Path) -> Path | None:
    try:
        return Path(os.readlink(proc / "cwd"))
    except OSError:
        return None


def test_a_local_repository_must_be_under_the_servers_repo_roots(server: Server) -> None:
    with server.client("submitter") as c:
        for repo in ("/root", "relative/path", "file:///etc", str(server.root / "runs")):
            r = c.post("/api/runs", json={**spec_body(), "repo": repo})
            assert r.status_code == 422 and "repo" in r.json()["detail"], (repo, r.text)


def test_a_request_without_a_length_is_refused(server: Server) -> None:
    def chunks() -> Any:
        yield json.dumps(spec_body()).encode()

    with server.client("submitter") as c:
        r = c.post("/api/runs", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 411


def test_the_login_cookie_reads_but_never_changes_through_the_api(server: Server) -> None:
    with server.client() as c:
        c.cookies.set("df_token", TOKENS["admin"])
        assert c.get("/api/runs").status_code == 200
        assert c.post("/api/runs", json=spec_body()).status_code == 401


def test_workers_never_hold_the_services_secrets(server: Server) -> None:
    children = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat[1]) == server.proc.pid:
                children.append({e.split(b"=", 1)[0].decode() for e in environ if b"=" in e})
    assert len(children) >= 2  # the two workers
    for names in children:
        assert not {"DARKFACTORY_GITHUB_SECRET", "TOKEN_ADMIN", "TOKEN_APPROVER"} & names
