"""The REST API of ``darkfactory serve`` (FastAPI; its OpenAPI document at ``/openapi.json``).

Every route checks a token's role (``auth.TokenStore``): ``viewer`` reads, ``submitter``
submits and cancels, ``approver`` approves and rejects. What a run wrote is served as
data, never as a page of ours: workspace files as ``text/plain`` with ``nosniff``, the
report under a policy that runs no script.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse

from darkfactory.service import runs as runview
from darkfactory.service.auth import Principal, bearer
from darkfactory.service.context import ServiceContext
from darkfactory.service.github import WebhookRefused, ticket_from_event, verify_signature
from darkfactory.service.queue import FINAL, PAUSED, STATUSES
from darkfactory.service.settings import Role
from darkfactory.service.submit import Rejected, RunRequest, SpecUpload
from darkfactory.workspace import hostio

COOKIE = "df_token"
#: A report or file shown by the service runs nothing and loads nothing from elsewhere.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SSE_POLL_S = 0.2


class Accepted(BaseModel):
    id: str
    status: str


class Decision(BaseModel):
    reason: str = Field(default="", max_length=10_000)


def principal_of(request: Request) -> Principal | None:
    ctx: ServiceContext = request.app.state.ctx
    token = bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)
    return ctx.tokens.check(token)


def require(role: Role) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        who = principal_of(request)
        if request.method not in ("GET", "HEAD") and not bearer(
            request.headers.get("authorization")
        ):
            # The login cookie reads (the browser's EventSource cannot send a header); a
            # change through the API needs the header, so no page elsewhere can make one.
            who = None if not _ctx(request).tokens.open else who
        if who is None:
            raise HTTPException(
                401,
                "a token is needed: Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not who.may(role):
            raise HTTPException(403, f"{who.name} is a {who.role}; this needs {role}")
        return who

    return dependency


Viewer = Annotated[Principal, Depends(require("viewer"))]
Submitter = Annotated[Principal, Depends(require("submitter"))]
Approver = Annotated[Principal, Depends(require("approver"))]


def _ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


def _job_or_404(ctx: ServiceContext, run_id: str) -> Any:
    job = ctx.queue.get(run_id)
    if job is None:
        raise HTTPException(404, f"no run {run_id!r} on this server")
    return job


router = APIRouter(prefix="/api")


@router.post(
    "/runs",
    status_code=202,
    response_model=Accepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": RunRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {"type": "string", "format": "binary"},
                            "options": {
                                "type": "string",
                                "description": "the JSON fields other than spec",
                            },
                        },
                    }
                },
            },
        }
    },
    responses={413: {"description": "spec too large"}, 422: {"description": "invalid spec"}},
)
async def submit_run(request: Request, who: Submitter) -> Accepted:
    """Queue a run of a spec (JSON, or a multipart upload with an ``options`` JSON field)."""
    ctx = _ctx(request)
    req = await _run_request(request, ctx.settings.max_spec_bytes)
    try:
        job = await asyncio.to_thread(ctx.submit, req, who)
    except Rejected as exc:
        raise HTTPException(exc.status, exc.message) from None
    return Accepted(id=job.id, status=job.status)


async def _run_request(request: Request, limit: int) -> RunRequest:
    kind = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    if not (declared and declared.isdigit()):
        # Read with a known length only (the server holds no more than it was told).
        raise HTTPException(411, "send the request with a Content-Length")
    if int(declared) > limit + 65_536:
        raise HTTPException(
            413, f"the request is {declared} bytes; this server takes specs of at most {limit}"
        )
    try:
        if kind.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=20)
            upload = form.get("spec")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "the form needs a file field named spec")
            raw = await upload.read(limit + 1)
            if len(raw) > limit:
                raise HTTPException(413, f"the spec is over {limit} bytes")
            options = json.loads(str(form.get("options") or "{}"))
            if not isinstance(options, dict):
                raise HTTPException(422, "options must be a JSON object")
            text = raw.decode("utf-8")
            return RunRequest(
                spec=SpecUpload(filename=upload.filename or "spec.md", content=text), **options
            )
        body = await request.body()
        if len(body) > limit + 65_536:
            raise HTTPException(413, f"the request is over {limit} bytes")
        return RunRequest.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, validation_message(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(422, f"the request is not UTF-8 JSON: {exc}") from None


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())


@router.get("/runs")
def list_runs(
    request: Request,
    who: Viewer,
    status: Annotated[str | None, Query(description="only runs with this status")] = None,
) -> list[dict[str, Any]]:
    """Every run on this server, newest first."""
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    ctx = _ctx(request)
    return [runview.summary(ctx, job) for job in ctx.queue.list(status)]


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: str, who: Viewer) -> dict[str, Any]:
    """The run's report (``report.json``), ``status`` at the top level at every stage."""
    ctx = _ctx(request)
    return runview.detail(ctx, _job_or_404(ctx, run_id))


@router.get("/runs/{run_id}/events")
async def run_events(
    request: Request,
    run_id: str,
    who: Viewer,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events: each trace record (``event: trace``, ``id``: its line number;
    resumable with ``Last-Event-ID``), and the run's ``status`` when it changes. The
    stream ends with ``event: end`` once the run has ended."""
    ctx = _ctx(request)
    _job_or_404(ctx, run_id)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return EventSourceResponse(_event_stream(request, ctx, run_id, after), ping=15)


async def _event_stream(
    request: Request, ctx: ServiceContext, run_id: str, after: int
) -> AsyncIterator[dict[str, str]]:
    trace = ctx.runs_dir / run_id / "trace.jsonl"
    offset, line_no, last_status = 0, 0, None
    while True:
        status = ctx.status_of(run_id)
        if status != last_status:
            last_status = status
            yield {"event": "status", "data": json.dumps({"id": run_id, **status})}
        lines, offset = _new_lines(trace, offset)
        for line in lines:
            line_no += 1
            if line_no > after:
                yield {"event": "trace", "id": str(line_no), "data": line}
        if status["status"] in FINAL and not lines:
            yield {"event": "end", "data": json.dumps({"id": run_id, **status})}
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(SSE_POLL_S)


def _new_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The complete lines written to ``path`` after byte ``offset``, and the new offset."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    done = chunk[: end + 1]
    return done.decode("utf-8", errors="replace").splitlines(), offset + len(done)


@router.get("/runs/{run_id}/report.html", response_class=Response)
def run_report_html(request: Request, run_id: str, who: Viewer) -> Response:
    ctx = _ctx(request)
    _job_or_404(ctx, run_id)
    path = ctx.runs_dir / run_id / "report.html"
    if not path.is_file():
        raise HTTPException(404, "the run has no report yet (it is queued or running)")
    return Response(
        path.read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/runs/{run_id}/files/{path:path}", response_class=PlainTextResponse)
def run_file(request: Request, run_id: str, path: str, who: Viewer) -> Response:
    """A workspace file, read-only: never through a link, never outside the workspace."""
    ctx = _ctx(request)
    _job_or_404(ctx, run_id)
    try:
        data = hostio.read_bytes(ctx.runs_dir / run_id / "workspace", path)
    except (hostio.Refused, OSError, ValueError):
        raise HTTPException(404, f"no file {path!r} in the run's workspace") from None
    return Response(
        data,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": REPORT_CSP},
    )


@router.get("/runs/{run_id}/diff", response_class=PlainTextResponse)
def run_diff(request: Request, run_id: str, who: Viewer) -> Response:
    """The workspace's change: against the base commit on a repository, else every file."""
    ctx = _ctx(request)
    _job_or_404(ctx, run_id)
    return PlainTextResponse(
        runview.diff(ctx, run_id), headers={"X-Content-Type-Options": "nosniff"}
    )


@router.post("/runs/{run_id}/approve")
def approve_run(
    request: Request, run_id: str, who: Approver, body: Decision | None = None
) -> dict[str, Any]:
    """Approve the checkpoint the run waits at; it is queued to go on."""
    return _decide(request, run_id, who, reject=False, reason=(body.reason if body else ""))


@router.post("/runs/{run_id}/reject")
def reject_run(request: Request, run_id: str, who: Approver, body: Decision) -> dict[str, Any]:
    """Reject it with a reason, which the crew gets as reviewer feedback."""
    if not body.reason.strip():
        raise HTTPException(422, "a rejection needs a reason: say what to change")
    return _decide(request, run_id, who, reject=True, reason=body.reason)


def _decide(
    request: Request, run_id: str, who: Principal, *, reject: bool, reason: str
) -> dict[str, Any]:
    ctx = _ctx(request)
    job = _job_or_404(ctx, run_id)
    if job.status != PAUSED:
        raise HTTPException(409, f"run {run_id} is not waiting for approval (status: {job.status})")
    try:
        ctx.decide(job, reject=reject, reason=reason.strip(), who=who)
    except Rejected as exc:
        raise HTTPException(exc.status, exc.message) from None
    return runview.summary(ctx, ctx.queue.get_or_raise(run_id))


@router.post("/runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: str, who: Submitter) -> dict[str, Any]:
    """Cancel a queued, paused or running run (a running one is stopped; it stays resumable
    with ``darkfactory resume``)."""
    ctx = _ctx(request)
    job = _job_or_404(ctx, run_id)
    if job.status in FINAL:
        raise HTTPException(409, f"run {run_id} already ended ({job.status})")
    ctx.cancel(run_id)
    return runview.summary(ctx, ctx.queue.get_or_raise(run_id))


@router.post("/webhooks/github", status_code=202)
async def github_webhook(request: Request) -> JSONResponse:
    """An issue labeled ``darkfactory`` (settings) becomes a run; the body is signed with
    the shared secret (``X-Hub-Signature-256``)."""
    ctx = _ctx(request)
    body = await request.body()
    try:
        verify_signature(ctx.github_secret(), body, request.headers.get("x-hub-signature-256"))
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise WebhookRefused(422, "the payload is not a JSON object")
        ticket = ticket_from_event(
            request.headers.get("x-github-event"),
            payload,
            label=ctx.settings.github.label,
            delivery=request.headers.get("x-github-delivery"),
        )
    except WebhookRefused as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    except json.JSONDecodeError:
        return JSONResponse({"detail": "the payload is not JSON"}, status_code=422)
    if ticket is None:
        return JSONResponse({"status": "ignored"}, status_code=202)
    if ticket.delivery:  # GitHub delivers again when it did not hear back: one run each
        first = ctx.queue.first_delivery(ticket.delivery)
        if first is not None:
            return JSONResponse({"id": first, "status": "duplicate"}, status_code=202)
    req = RunRequest(spec=SpecUpload(filename=ticket.filename, content=ticket.content))
    who = Principal(ticket.submitted_by, "submitter")
    try:
        job = await asyncio.to_thread(ctx.submit, req, who)
    except Rejected as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    if ticket.delivery:
        ctx.queue.record_delivery(ticket.delivery, job.id)
    return JSONResponse({"id": job.id, "status": job.status}, status_code=202)


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    ctx = _ctx(request)
    return {
        "ok": True,
        "workers": len(ctx.pool.pids()) if ctx.pool else 0,
        "runs": ctx.queue.counts(),
        "time": time.time(),
    }
