"""The dashboard: server-rendered pages (Jinja2, autoescaped) over the API's context.

Pages need a viewer's token (the ``df_token`` cookie ``/login`` sets); every form carries a
CSRF token, and its action does what the API's route does, then redirects (303).
"""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from darkfactory.config import load_config
from darkfactory.engine.checkpoints import CHECKPOINTS
from darkfactory.errors import InputError
from darkfactory.service import runs as runview
from darkfactory.service.api import COOKIE, principal_of, validation_message
from darkfactory.service.auth import Principal
from darkfactory.service.context import ServiceContext
from darkfactory.service.queue import ACTIVE, FINAL, PAUSED, STATUSES, Job
from darkfactory.service.settings import Role
from darkfactory.service.submit import Rejected, RunRequest

HERE = Path(__file__).parent
#: Our pages run our own script only, load nothing from elsewhere and are framed by no one.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: Runs the list page shows (the API gives up to 500).
LIST_LIMIT = 200
SUBMIT_FIELDS = ("spec_text", "filename", "model", *CHECKPOINTS, "max_llm_calls")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
templates = Jinja2Templates(env=_env)
router = APIRouter(include_in_schema=False)


class PageError(Exception):
    """A page request refused: shown as an error page with this HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginNeeded(Exception):
    """No valid token: the browser goes to the login page, then back to ``next``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


# -- formatting (the same rules as app.js) -------------------------------------------------
def money(value: float | None) -> str:
    if value is None:
        return "price unknown"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if value < 0.01 else f"${value:.2f}"


def age(ts: float | None) -> str:
    if not ts:
        return ""
    s = max(0, int(time.time() - ts))
    if s < 5:
        return "just now"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def diff_lines(text: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its class (file, hunk, add, del or ctx)."""
    out = []
    for line in text.splitlines():
        if line.startswith(("diff --git", "+++ ", "--- ", "new file", "deleted file", "index ")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def diff_stat(text: str) -> dict[str, int]:
    lines = diff_lines(text)
    return {
        "files": sum(1 for _, line in lines if line.startswith("diff --git")),
        "added": sum(1 for kind, _ in lines if kind == "add"),
        "removed": sum(1 for kind, _ in lines if kind == "del"),
    }


_env.filters.update(money=money, age=age, clock=clock, diff_lines=diff_lines)


# -- who is asking -------------------------------------------------------------------------
def _ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def _session(request: Request) -> str:
    """What the CSRF token is bound to: the login cookie, or ``anon`` without one."""
    return request.cookies.get(COOKIE) or "anon"


def _viewer(request: Request) -> Principal:
    who = principal_of(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginNeeded(target if request.method == "GET" else "/")
    return who


Viewer = Annotated[Principal, Depends(_viewer)]


def _needs(who: Principal, role: Role, doing: str) -> None:
    if not who.may(role):
        raise PageError(403, f"{who.name} is a {who.role}; {doing} needs {role}")


async def _form(request: Request, *, max_part_size: int = 1024 * 1024) -> FormData:
    """The posted form, its CSRF token checked (403 when it is missing or wrong)."""
    try:
        form = await request.form(max_files=1, max_fields=20, max_part_size=max_part_size)
    except StarletteHTTPException as exc:
        raise PageError(exc.status_code, str(exc.detail)) from None
    if not _ctx(request).csrf.valid(_session(request), _text(form, "csrf")):
        raise PageError(
            403, "the form's CSRF token is missing or wrong: reload the page and try again"
        )
    return form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _local(url: str) -> str:
    """``url`` if it is a path on this server, else ``/`` (no redirect elsewhere: browsers
    read ``//host`` and ``/\\host`` as another site, and drop tabs and newlines first)."""
    local = url.startswith("/") and not url.startswith("//")
    return url if local and url.isprintable() and not any(c in url for c in " \\") else "/"


# -- rendering -----------------------------------------------------------------------------
def _page(
    request: Request, name: str, who: Principal | None, code: int = 200, **data: Any
) -> Response:
    ctx = _ctx(request)
    context = {
        "who": who,
        "open": ctx.tokens.open,
        "csrf": ctx.csrf.issue(_session(request)),
        "inbox_count": ctx.queue.counts().get(PAUSED, 0) if who else 0,
        "version": ctx.version,
        "page": name.removesuffix(".html"),
        **data,
    }
    return templates.TemplateResponse(
        request, name, context, status_code=code, headers=PAGE_HEADERS
    )


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _job(ctx: ServiceContext, run_id: str) -> Job:
    job = ctx.queue.get(run_id)
    if job is None:
        raise PageError(404, f"no run {run_id!r} on this server")
    return job


def _scripted(job: Job, report: dict[str, Any] | None = None) -> bool:
    """Whether the run's model is the scripted rehearsal (a playbook, not AI)."""
    model = str(job.options.get("model") or "")
    return model.startswith(("scripted:", "replay:")) or bool((report or {}).get("scripted_model"))


def _row(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    return {**runview.summary(ctx, job), "scripted": _scripted(job)}


def _deploy_command(job: Job) -> str | None:
    """The deploy command of the job's own config copy (what a deploy approval runs), as a
    shell would quote it (it runs without one)."""
    try:
        config = load_config(Path(job.spec_file).parent.parent / "config")
    except InputError:
        return None
    return shlex.join(config.factory.deploy.command or []) or None


# -- pages ---------------------------------------------------------------------------------
@router.get("/")
def runs_page(request: Request, who: Viewer, status: str = "") -> Response:
    ctx = _ctx(request)
    if status and status not in STATUSES:
        raise PageError(422, f"status must be one of {', '.join(STATUSES)}")
    jobs = ctx.queue.list(status or None, limit=LIST_LIMIT)
    counts = ctx.queue.counts()
    return _page(
        request,
        "runs.html",
        who,
        rows=[_row(ctx, job) for job in jobs],
        status=status,
        statuses=STATUSES,
        counts=counts,
        total=sum(counts.values()),
    )


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, who: Viewer) -> Response:
    ctx = _ctx(request)
    job = _job(ctx, run_id)
    detail = runview.detail(ctx, job)
    diff = runview.diff(ctx, run_id)
    return _page(
        request,
        "run.html",
        who,
        run=detail,
        scripted=_scripted(job, detail),
        diff=diff,
        stat=diff_stat(diff),
        has_report=(ctx.runs_dir / run_id / "report.html").is_file() and job.status not in ACTIVE,
        active=ACTIVE,
        final=FINAL,
        paused=PAUSED,
    )


@router.get("/inbox")
def inbox_page(request: Request, who: Viewer) -> Response:
    ctx = _ctx(request)
    items = []
    for job in ctx.queue.list(PAUSED, limit=LIST_LIMIT):
        detail = runview.detail(ctx, job)
        pending = detail.get("pending_checkpoint") or {}
        checkpoint = pending.get("checkpoint") or detail.get("checkpoint") or ""
        diff = runview.diff(ctx, job.id) if checkpoint != "spec_approval" else ""
        items.append(
            {
                "run": detail,
                "checkpoint": checkpoint,
                "pending": pending,
                "scripted": _scripted(job, detail),
                "diff": diff,
                "stat": diff_stat(diff),
                "deploy_command": _deploy_command(job) if checkpoint == "deploy_approval" else None,
            }
        )
    return _page(request, "inbox.html", who, items=items)


@router.get("/submit")
def submit_page(request: Request, who: Viewer) -> Response:
    return _page(
        request,
        "submit.html",
        who,
        error=None,
        values=dict.fromkeys(SUBMIT_FIELDS, ""),
        checkpoints=CHECKPOINTS,
        limit=_ctx(request).settings.max_spec_bytes,
    )


@router.post("/submit")
async def submit_form(request: Request, who: Viewer) -> Response:
    """The form's run request, checked as ``POST /api/runs`` checks it, then queued."""
    ctx = _ctx(request)
    _needs(who, "submitter", "submitting a run")
    limit = ctx.settings.max_spec_bytes
    values = dict.fromkeys(SUBMIT_FIELDS, "")
    try:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 65_536:
            raise Rejected(
                413, f"the request is {declared} bytes; this server takes specs of at most {limit}"
            )
        form = await _form(request, max_part_size=limit + 65_536)
        values = {name: _text(form, name) for name in SUBMIT_FIELDS}
        values["spec_text"] = str(form.get("spec_text") or "").replace("\r\n", "\n")
        req = await _request_of(form, values, limit)
        job = await asyncio.to_thread(ctx.submit, req, who)
    except Rejected as exc:
        return _page(
            request,
            "submit.html",
            who,
            exc.status,
            error=exc.message,
            values=values,
            checkpoints=CHECKPOINTS,
            limit=limit,
        )
    return _see(f"/runs/{job.id}")


async def _request_of(form: FormData, values: dict[str, str], limit: int) -> RunRequest:
    upload = form.get("spec_file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(limit + 1)
        if len(raw) > limit:
            raise Rejected(413, f"the spec is over {limit} bytes")
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(422, f"the spec is not UTF-8 text: {exc}") from None
        filename = values["filename"] or upload.filename
    elif values["spec_text"].strip():
        content, filename = values["spec_text"], values["filename"] or "spec.md"
    else:
        raise Rejected(422, "the form needs a spec: paste its text or choose its file")
    data: dict[str, Any] = {"spec": {"filename": filename, "content": content}}
    if values["model"]:
        data["model"] = values["model"]
    checkpoints = {name: values[name] for name in CHECKPOINTS if values[name]}
    if checkpoints:
        data["checkpoints"] = checkpoints
    if values["max_llm_calls"]:
        data["budget"] = {"max_llm_calls": values["max_llm_calls"]}
    try:
        return RunRequest.model_validate(data)
    except ValidationError as exc:
        raise Rejected(422, validation_message(exc)) from None


# -- actions -------------------------------------------------------------------------------
@router.post("/runs/{run_id}/approve")
async def approve_form(request: Request, run_id: str, who: Viewer) -> Response:
    return await _decide(request, run_id, who, reject=False)


@router.post("/runs/{run_id}/reject")
async def reject_form(request: Request, run_id: str, who: Viewer) -> Response:
    return await _decide(request, run_id, who, reject=True)


async def _decide(request: Request, run_id: str, who: Principal, *, reject: bool) -> Response:
    ctx = _ctx(request)
    form = await _form(request)
    _needs(who, "approver", "rejecting a run" if reject else "approving a run")
    reason = _text(form, "reason")
    if reject and not reason:
        raise PageError(422, "a rejection needs a reason: say what to change")
    job = _job(ctx, run_id)
    if job.status != PAUSED:
        raise PageError(409, f"run {run_id} is not waiting for approval (status: {job.status})")
    try:
        await asyncio.to_thread(ctx.decide, job, reject=reject, reason=reason, who=who)
    except Rejected as exc:
        raise PageError(exc.status, exc.message) from None
    return _see(f"/runs/{run_id}")


@router.post("/runs/{run_id}/cancel")
async def cancel_form(request: Request, run_id: str, who: Viewer) -> Response:
    ctx = _ctx(request)
    await _form(request)
    _needs(who, "submitter", "cancelling a run")
    job = _job(ctx, run_id)
    if job.status in FINAL:
        raise PageError(409, f"run {run_id} already ended ({job.status})")
    await asyncio.to_thread(ctx.cancel, run_id)
    return _see(f"/runs/{run_id}")


# -- signing in ----------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if _ctx(request).tokens.open:
        return _see(_local(next))
    return _page(request, "login.html", principal_of(request), next=_local(next), error=None)


@router.post("/login")
async def login_form(request: Request) -> Response:
    ctx = _ctx(request)
    form = await _form(request)
    target = _local(_text(form, "next") or "/")
    token = _text(form, "token")
    if ctx.tokens.open:
        return _see(target)
    if ctx.tokens.check(token) is None:
        return _page(
            request,
            "login.html",
            None,
            401,
            next=target,
            error="that token is not known here: check it and try again",
        )
    response = _see(target)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/logout")
def logout_page(request: Request) -> Response:
    return _page(request, "logout.html", principal_of(request))


@router.post("/logout")
async def logout_form(request: Request) -> Response:
    await _form(request)
    response = _see("/login")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def mount_static(app: FastAPI) -> None:
    """The dashboard's own CSS and JS (vendored: the pages load nothing from elsewhere), and
    how a refused page request is shown (an error page, or the login page)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return _page(request, "error.html", principal_of(request), exc.status, message=exc.message)

    async def login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginNeeded)
        return _see(f"/login?next={quote(exc.next_url, safe='/')}")

    app.add_exception_handler(PageError, refused)
    app.add_exception_handler(LoginNeeded, login)
