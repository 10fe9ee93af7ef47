"""A TEST DOUBLE of the GitHub and GitLab REST APIs: a real HTTP server on 127.0.0.1, not a forge.

It implements exactly the endpoints ``darkfactory/repo/forge.py`` calls, and checks every
request the way the real API would take it (method, path, query, headers, auth and API
version, JSON body fields and their types), answering with the documented status codes
and JSON shapes:

- GitHub: ``GET /repos/{owner}/{repo}/pulls?state=open&per_page=100[&page=N]`` (newest
  first, ``body`` included) and
  ``POST /repos/{owner}/{repo}/pulls`` (``title``, ``head``, ``base``, ``body``, ``draft``);
  ``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
  ``X-GitHub-Api-Version: 2022-11-28``; 401 ``Bad credentials``, 404 ``Not Found``,
  422 ``Validation Failed`` (head or base not on the forge, a pull request already open).
- GitLab: ``GET /api/v4/projects/{id}/merge_requests?state=opened&per_page=100[&page=N]``
  (newest first, ``description`` included) and
  ``POST /api/v4/projects/{id}/merge_requests`` (``source_branch``, ``target_branch``,
  ``title``, ``description``; a draft by the ``Draft:`` title prefix); ``PRIVATE-TOKEN``;
  401, 404 ``Project Not Found``, 409 (a merge request already open for the branch).

Anything the client should not send (another endpoint, a missing or extra field, a wrong
header) is answered 400 and kept in ``violations``; a test asserts there are none.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

GITHUB_DOCS = "https://docs.github.com/rest/pulls/pulls"
GITHUB_FIELDS: dict[str, type] = {
    "title": str,
    "head": str,
    "base": str,
    "body": str,
    "draft": bool,
}
GITLAB_FIELDS: dict[str, type] = {
    "source_branch": str,
    "target_branch": str,
    "title": str,
    "description": str,
}


@dataclass
class Seen:
    """One request as the double received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None


@dataclass
class ForgeDouble:
    """The double for one repository on one forge, with the token it accepts.

    ``branches`` are the branches the forge has (a pull request's head and base must be
    among them), or, with ``remote``, the branches of that real bare repository, read at
    every request (what was pushed there); ``stale_list_once`` makes the next list answer
    empty although a request is open (the race between looking and opening); ``seed`` opens
    one as someone else would.
    """

    forge: str
    repo: str  # GitHub "owner/name"; GitLab the project's path
    token: str
    project_id: int = 42
    branches: set[str] = field(default_factory=lambda: {"main"})
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    stale_list_once: bool = False
    remote: Path | None = None

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}" + ("/api/v4" if self.forge == "gitlab" else "")

    def __enter__(self) -> ForgeDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def posts(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST"]

    def known_branches(self) -> set[str]:
        if self.remote is None:
            return self.branches
        out = subprocess.run(
            ["git", f"--git-dir={self.remote}", "for-each-ref", "--format=%(refname:short)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return set(out.split())

    def seed(self, branch: str, text: str = "", *, base: str = "main") -> dict[str, Any]:
        """An open request from ``branch`` with ``text`` as its body, as if a person opened it."""
        if self.forge == "github":
            return self._new_pull({"title": branch, "head": branch, "base": base, "body": text})
        return self._new_mr(
            {"source_branch": branch, "target_branch": base, "title": branch, "description": text}
        )

    def _page(self, seen: Seen, state: str) -> tuple[int, Any]:
        """The list endpoints: ``state`` and ``per_page=100``, and ``page`` past the first."""
        query = seen.query
        if not {"state", "per_page"} <= set(query) <= {"state", "per_page", "page"}:
            return self._violation(f"list query {query}")
        if query["state"] != [state] or query["per_page"] != ["100"]:
            return self._violation(f"list query {query}")
        pages = query.get("page", ["1"])
        if len(pages) != 1 or not pages[0].isdigit() or int(pages[0]) < 1:
            return self._violation(f"list query page {pages}")
        if self.stale_list_once:
            self.stale_list_once = False
            return 200, []
        newest_first = [p for p in reversed(self.pulls) if p["state"] == state]
        start = (int(pages[0]) - 1) * 100
        return 200, newest_first[start : start + 100]

    # -- the API -------------------------------------------------------------------------

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if self.forge == "github":
            return self._github(seen)
        return self._gitlab(seen)

    def _violation(self, text: str) -> tuple[int, Any]:
        self.violations.append(text)
        return 400, {"message": f"test double: {text}"}

    def _check_body(self, seen: Seen, fields: dict[str, type]) -> str | None:
        if seen.headers.get("content-type", "").split(";")[0] != "application/json":
            return f"POST without Content-Type: application/json ({seen.headers})"
        if not isinstance(seen.body, dict):
            return f"POST body is not a JSON object: {seen.body!r}"
        extra = set(seen.body) - set(fields)
        missing = set(fields) - set(seen.body)
        if extra or missing:
            return f"POST fields: extra {sorted(extra)}, missing {sorted(missing)}"
        for name, kind in fields.items():
            if not isinstance(seen.body[name], kind):
                return f"POST field {name} is not {kind.__name__}: {seen.body[name]!r}"
        return None

    def _common(self, seen: Seen) -> str | None:
        if not seen.headers.get("user-agent"):
            return "no User-Agent (GitHub refuses requests without one)"
        if seen.method not in ("GET", "POST"):
            return f"{seen.method} is not an endpoint the client should call"
        return None

    def _github(self, seen: Seen) -> tuple[int, Any]:
        wrong = self._common(seen)
        if wrong:
            return self._violation(wrong)
        if seen.headers.get("accept") != "application/vnd.github+json":
            return self._violation(f"Accept is {seen.headers.get('accept')!r}")
        if seen.headers.get("x-github-api-version") != "2022-11-28":
            return self._violation("X-GitHub-Api-Version is not 2022-11-28")
        parts = seen.path.split("/")
        if len(parts) != 5 or parts[1] != "repos" or parts[4] != "pulls":
            return self._violation(f"not an endpoint the client calls: {seen.path}")
        auth = seen.headers.get("authorization")
        if auth is None:
            return 401, {"message": "Requires authentication", "documentation_url": GITHUB_DOCS}
        if auth != f"Bearer {self.token}":
            return 401, {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401",
            }
        if f"{unquote(parts[2])}/{unquote(parts[3])}" != self.repo:
            return 404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"}
        owner = self.repo.split("/")[0]
        if seen.method == "GET":
            return self._page(seen, "open")
        wrong = self._check_body(seen, GITHUB_FIELDS)
        if wrong:
            return self._violation(wrong)
        body = seen.body
        branches = self.known_branches()
        for name in ("head", "base"):
            if body[name] not in branches:
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "field": name, "code": "invalid"}],
                    "documentation_url": f"{GITHUB_DOCS}#create-a-pull-request",
                    "status": "422",
                }
        if any(p["state"] == "open" and p["head"]["ref"] == body["head"] for p in self.pulls):
            return 422, {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {owner}:{body['head']}.",
                    }
                ],
                "documentation_url": f"{GITHUB_DOCS}#create-a-pull-request",
                "status": "422",
            }
        return 201, self._new_pull(body)

    def _new_pull(self, body: dict[str, Any]) -> dict[str, Any]:
        owner = self.repo.split("/")[0]
        number = len(self.pulls) + 1
        pull = {
            "url": f"{self.api_url}/repos/{self.repo}/pulls/{number}",
            "id": 1000 + number,
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body["body"],
            "draft": body.get("draft", False),
            "html_url": f"https://github.com/{self.repo}/pull/{number}",
            "head": {"label": f"{owner}:{body['head']}", "ref": body["head"], "sha": "0" * 40},
            "base": {"label": f"{owner}:{body['base']}", "ref": body["base"]},
            "user": {"login": "darkfactory-bot"},
        }
        self.pulls.append(pull)
        return pull

    def _gitlab(self, seen: Seen) -> tuple[int, Any]:
        wrong = self._common(seen)
        if wrong:
            return self._violation(wrong)
        parts = seen.path.split("/")
        if (
            len(parts) != 6
            or parts[1:4] != ["api", "v4", "projects"]
            or parts[5] != "merge_requests"
        ):
            return self._violation(
                f"not an endpoint the client calls (is the id encoded?): {seen.path}"
            )
        token = seen.headers.get("private-token")
        if token != self.token:
            return 401, {"message": "401 Unauthorized"}
        if unquote(parts[4]) not in (self.repo, str(self.project_id)):
            return 404, {"message": "404 Project Not Found"}
        if seen.method == "GET":
            return self._page(seen, "opened")
        wrong = self._check_body(seen, GITLAB_FIELDS)
        if wrong:
            return self._violation(wrong)
        body = seen.body
        for mr in self.pulls:
            if mr["state"] == "opened" and mr["source_branch"] == body["source_branch"]:
                return 409, {
                    "message": [
                        "Another open merge request already exists for this source branch: "
                        f"!{mr['iid']}"
                    ]
                }
        return 201, self._new_mr(body)

    def _new_mr(self, body: dict[str, Any]) -> dict[str, Any]:
        iid = len(self.pulls) + 1
        draft = body["title"].lower().startswith(("draft:", "[draft]", "(draft)"))
        mr = {
            "id": 5000 + iid,
            "iid": iid,
            "project_id": self.project_id,
            "title": body["title"],
            "description": body["description"],
            "state": "opened",
            "source_branch": body["source_branch"],
            "target_branch": body["target_branch"],
            "draft": draft,
            "work_in_progress": draft,
            "web_url": f"https://gitlab.com/{self.repo}/-/merge_requests/{iid}",
        }
        self.pulls.append(mr)
        return mr


def _handler(double: ForgeDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            seen = Seen(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            double.requests.append(seen)
            status, answer = double.answer(seen)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
