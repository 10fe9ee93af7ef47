"""Open a draft pull request (GitHub) or merge request (GitLab) for a pushed branch: one a ticket.

The forges' REST APIs over ``urllib.request``: a timeout on every call, no redirect followed,
the token in one header and never in a message.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from darkfactory.config import DEFAULT_API_URL, PullRequestConfig
from darkfactory.errors import DarkFactoryError
from darkfactory.repo.deliver import BRANCH_PREFIX, read_token

GITHUB_API_VERSION = "2022-11-28"
USER_AGENT = "darkfactory"
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: GitHub refuses a body over 65,536 characters, GitLab a description over 1,048,576.
MAX_BODY = {"github": 65_000, "gitlab": 1_000_000}
MAX_TITLE = 255
#: Open pull requests asked for a page (the most either forge gives), and pages read at most.
PER_PAGE = 100
MAX_PAGES = 10
_NAME = {"github": "GitHub", "gitlab": "GitLab"}
_DRAFT_TITLE = re.compile(r"(draft:|\[draft\]|\(draft\))", re.IGNORECASE)


class ForgeError(DarkFactoryError):
    """The forge did not open or find the pull request; the message says what to fix."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class PullRequest:
    number: int  # GitHub's #N, GitLab's !N (its iid)
    url: str  # its web page
    draft: bool
    created: bool  # False: an open one for the branch was there already


def open_pull_request(
    config: PullRequestConfig,
    *,
    branch: str,
    base: str,
    title: str,
    body: str,
    ticket: str | None = None,
    timeout: float = 30.0,
) -> PullRequest:
    """The open pull request for ``branch`` or for ``ticket``; opened (a draft, ``body`` as
    its text, the ticket's hidden marker last) if there is none.

    Asks first (every open one, ``PER_PAGE`` a page), so a second call for the same branch
    or the same ticket (``ticket_marker``) returns the first one and POSTs nothing. Raises
    ``ForgeError`` (401, 403, 404, 422, unreachable, timeout) or ``InputError`` (the
    token's variable is unset).
    """
    token = read_token(config.token_env)
    api = _Api(config, token, timeout)
    title = " ".join(title.split())[:MAX_TITLE] or branch
    marker = ticket_marker(ticket) if ticket else None
    if marker is None:
        body = _fit(body, MAX_BODY[config.forge])
    else:  # after the cut, so a long text keeps it
        body = _fit(body, MAX_BODY[config.forge] - len(marker) - 3).rstrip("\n")
        body += f"\n\n{marker}\n"
    opener = _github if config.forge == "github" else _gitlab
    return opener(api, config, branch=branch, marker=marker, base=base, title=title, body=body)


def ticket_marker(ticket: str) -> str:
    """The hidden line (an HTML comment) that ties a pull request's text to its ticket."""
    if not re.fullmatch(r"[0-9a-f]{64}", ticket):
        raise ValueError(f"not a sha256 in hex: {ticket!r}")
    return f"<!-- darkfactory-ticket: {ticket} -->"


@dataclass(frozen=True)
class _Mine:
    """What makes an open pull request this run's: its head (the run's branch), or its
    ticket's marker in its text on a head Dark Factory pushed (``ours``: a pull request
    anyone opens from another branch cannot take a ticket's place by copying the marker)."""

    head: str
    marker: str | None
    ours: str

    def __call__(self, head: object, text: object) -> bool:
        if head == self.head:
            return True
        return (
            self.marker is not None
            and isinstance(head, str)
            and head.startswith(self.ours)
            and isinstance(text, str)
            and self.marker in text
        )


def _open_ones(api: _Api, path: str, state: str) -> Iterator[dict[str, Any]]:
    """Every open pull (merge) request: ``PER_PAGE`` a page, ``MAX_PAGES`` pages at most."""
    for page in range(1, MAX_PAGES + 1):
        query = {"state": state, "per_page": str(PER_PAGE)}
        if page > 1:
            query["page"] = str(page)
        found = api.expect("GET", path, {200}, query=query)
        if not isinstance(found, list):
            raise api.unexpected(found)
        yield from (item for item in found if isinstance(item, dict))
        if len(found) < PER_PAGE:
            return


def _fit(body: str, limit: int) -> str:
    if len(body) <= limit:
        return body
    note = "\n\n*(Cut here: the whole text is `pull_request.md` in the run directory.)*\n"
    return body[: limit - len(note)] + note


# -- GitHub ----------------------------------------------------------------------------------


def _github(
    api: _Api,
    config: PullRequestConfig,
    *,
    branch: str,
    marker: str | None,
    base: str,
    title: str,
    body: str,
) -> PullRequest:
    owner, name = config.repo.split("/")
    path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/pulls"
    # The head's label (owner:branch): a fork's branch is never ours.
    mine = _Mine(f"{owner}:{branch}", marker, ours=f"{owner}:{BRANCH_PREFIX}")

    def find() -> PullRequest | None:
        for pull in _open_ones(api, path, "open"):
            head = pull.get("head")
            if mine(head.get("label") if isinstance(head, dict) else None, pull.get("body")):
                return _github_pull(api, pull, created=False)
        return None

    existing = find()
    if existing is not None:
        return existing
    payload = {"title": title, "head": branch, "base": base, "body": body, "draft": config.draft}
    status, data = api.call("POST", path, payload=payload)
    if status == 422 and "already exists" in _detail(data):
        existing = find()  # opened meanwhile, or the list lagged behind
        if existing is not None:
            return existing
    if status != 201:
        raise api.failure(
            "POST",
            path,
            status,
            data,
            unprocessable=(
                f"check that the branch {branch} was pushed to {config.repo} (deliver.push), "
                f"that the base branch {base} exists there and differs from it, and that the "
                "repository allows draft pull requests (set draft: false if it does not)"
            ),
        )
    return _github_pull(api, data, created=True)


def _github_pull(api: _Api, data: Any, *, created: bool) -> PullRequest:
    try:
        return PullRequest(
            number=int(data["number"]),
            url=str(data["html_url"]),
            draft=bool(data.get("draft", False)),
            created=created,
        )
    except (KeyError, TypeError, ValueError):
        raise api.unexpected(data) from None


# -- GitLab ----------------------------------------------------------------------------------


def _gitlab(
    api: _Api,
    config: PullRequestConfig,
    *,
    branch: str,
    marker: str | None,
    base: str,
    title: str,
    body: str,
) -> PullRequest:
    path = f"/projects/{quote(config.repo, safe='')}/merge_requests"
    mine = _Mine(branch, marker, ours=BRANCH_PREFIX)

    def find() -> PullRequest | None:
        for mr in _open_ones(api, path, "opened"):
            if mine(mr.get("source_branch"), mr.get("description")):
                return _gitlab_mr(api, mr, created=False)
        return None

    existing = find()
    if existing is not None:
        return existing
    if config.draft and not _DRAFT_TITLE.match(title):
        title = f"Draft: {title}"[:MAX_TITLE]
    payload = {
        "source_branch": branch,
        "target_branch": base,
        "title": title,
        "description": body,
    }
    status, data = api.call("POST", path, payload=payload)
    if status == 409:  # "Another open merge request already exists for this source branch"
        existing = find()
        if existing is not None:
            return existing
    if status != 201:
        raise api.failure(
            "POST",
            path,
            status,
            data,
            unprocessable=(
                f"check that the branch {branch} was pushed to {config.repo} (deliver.push) "
                f"and that the target branch {base} exists there"
            ),
        )
    return _gitlab_mr(api, data, created=True)


def _gitlab_mr(api: _Api, data: Any, *, created: bool) -> PullRequest:
    try:
        draft = data["draft"] if "draft" in data else data.get("work_in_progress", False)
        return PullRequest(
            number=int(data["iid"]), url=str(data["web_url"]), draft=bool(draft), created=created
        )
    except (KeyError, TypeError, ValueError):
        raise api.unexpected(data) from None


# -- HTTP --------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx becomes an ``HTTPError``: the token is never sent on to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _detail(data: Any) -> str:
    """The forge's own words in an error answer (GitHub ``message``/``errors``, GitLab
    ``message``/``error``), flattened to one line."""
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    for key in ("message", "error"):
        value = data.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts += [str(v) for v in value]
        elif isinstance(value, dict):
            parts += [f"{k} {v}" for k, v in value.items()]
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            parts.append(
                str(err.get("message") or " ".join(str(err.get(k, "")) for k in ("field", "code")))
            )
        else:
            parts.append(str(err))
    return "; ".join(p.strip() for p in parts if p and p.strip())[:500]


class _Api:
    def __init__(self, config: PullRequestConfig, token: str, timeout: float) -> None:
        self.config = config
        self.root = config.api_root()
        self.name = _NAME[config.forge]
        self.token = token
        self.timeout = timeout
        self.opener = urllib.request.build_opener(_NoRedirect)
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if config.forge == "github":
            self.headers["Accept"] = "application/vnd.github+json"
            self.headers["X-GitHub-Api-Version"] = GITHUB_API_VERSION
            self.auth = ("Authorization", f"Bearer {token}")
        else:
            self.auth = ("PRIVATE-TOKEN", token)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """``(status, JSON answer or None)``; ``ForgeError`` only when there is no answer."""
        url = self.root + path + (f"?{urlencode(query)}" if query else "")
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        request.add_unredirected_header(*self.auth)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return response.status, self._json(response.read(MAX_RESPONSE_BYTES + 1))
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                raw = exc.read(MAX_RESPONSE_BYTES + 1)
                location = exc.headers.get("Location", "") if exc.headers else ""
            if 300 <= status < 400:
                raise ForgeError(
                    f"{self.root} answered {status} to {method} {path}, a redirect to "
                    f"{self._clean(location) or '?'}; the token is not sent on: set "
                    "deliver.pull_request.api_url to the API's address (or repo to the "
                    "repository's new name, if it was renamed)",
                    status=status,
                ) from None
            try:
                return status, self._json(raw)
            except ForgeError:
                return status, None
        except TimeoutError:
            raise self._unreachable(method, path, f"no answer within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                reason = f"no answer within {self.timeout:g} s"
            raise self._unreachable(method, path, str(reason)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(method, path, f"{type(exc).__name__}: {exc}") from None

    def expect(
        self,
        method: str,
        path: str,
        ok: set[int],
        *,
        query: dict[str, str] | None = None,
    ) -> Any:
        status, data = self.call(method, path, query=query)
        if status not in ok:
            raise self.failure(method, path, status, data)
        return data

    def failure(
        self, method: str, path: str, status: int, data: Any, *, unprocessable: str = ""
    ) -> ForgeError:
        """The error for an answer with ``status``, naming what to fix."""
        env, repo, said = self.config.token_env, self.config.repo, self._clean(_detail(data))
        words = f": {said}" if said else ""
        if status == 401:
            text = (
                f"{self.name} refused the token in {env} (401{words}): it is wrong, expired "
                f"or revoked; set {env} to a valid token"
            )
        elif status == 403:
            need = (
                "`Pull requests: write` on the repository (fine-grained) or the `repo` scope "
                "(classic); a rate limit answers 403 too"
                if self.config.forge == "github"
                else "the `api` scope and at least the Developer role on the project"
            )
            text = (
                f"{self.name} did not allow {method} {path} (403{words}): the token in "
                f"{env} needs {need}"
            )
        elif status == 404:
            text = (
                f"{self.name} found no repository {repo} at {self.root} (404{words}): check "
                "deliver.pull_request.repo and api_url, and that the token in "
                f"{env} can see the repository (a private one it cannot read answers 404)"
            )
        elif status == 422 or (status in (400, 409) and unprocessable):
            text = f"{self.name} refused {method} {path} ({status}{words})"
            text += f": {unprocessable}" if unprocessable else ""
        else:
            text = f"{self.name} answered {status} to {method} {path}{words}"
        return ForgeError(text, status=status)

    def unexpected(self, data: Any) -> ForgeError:
        shown = self._clean(json.dumps(data)[:200])
        return ForgeError(
            f"{self.root} answered in a shape {self.name}'s API does not have ({shown}): "
            "check deliver.pull_request.api_url (the API's root, e.g. "
            f"{DEFAULT_API_URL[self.config.forge]})"
        )

    def _json(self, raw: bytes) -> Any:
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ForgeError(f"{self.root} answered with more than {MAX_RESPONSE_BYTES} bytes")
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ForgeError(
                f"{self.root} did not answer with JSON: check deliver.pull_request.api_url "
                "(the API's root, not the web page)"
            ) from None

    def _unreachable(self, method: str, path: str, why: str) -> ForgeError:
        return ForgeError(
            f"cannot reach {self.name}'s API at {self.root} ({method} {path}): "
            f"{self._clean(why)}; check deliver.pull_request.api_url and the network"
        )

    def _clean(self, text: str) -> str:
        return text.replace(self.token, "[redacted]") if self.token else text
