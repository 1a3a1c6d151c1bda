"""The dashboard's JSON and probes (SPEC §9): /api/status, /api/jobs and /api/jobs/<id> give the
very documents of `status --json`, `list --json` and `show --json` (built by the same
functions: Status.to_dict, Job.to_dict); /healthz says whether the store answers, and nothing
else; /metrics is the Prometheus exposition of `queuectl metrics` (metrics.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import JobNotFound
from ..formatting import json_document
from ..queue import DEFAULT_LIST_LIMIT
from .pages import filters, job_id_of

# /healthz answers 503 when the store has not answered within this long (PostgreSQL; an
# SQLite read in WAL mode waits for no one): probes time out after a few seconds.
HEALTH_SECONDS = 5.0


class DocumentResponse(JSONResponse):
    """JSON as the CLI's --json prints it: non-ASCII text as it is."""

    def render(self, content: object) -> bytes:
        return json_document(content).encode()


def error(status: int, message: str) -> JSONResponse:
    return DocumentResponse({"error": message}, status_code=status)


def whole_number(request: Request, name: str, default: int) -> int | None:
    """A query parameter that must be a whole number ≥ 0; None when it is not one."""
    text = request.query_params.get(name, "")
    if text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


async def api_status(request: Request) -> Response:
    status = await request.app.state.queues.call(lambda q: q.status())
    return DocumentResponse(status.to_dict())


async def api_jobs(request: Request) -> Response:
    state, name = filters(request)  # an HTTPException: JSON under /api/ (pages.http_error)
    limit = whole_number(request, "limit", DEFAULT_LIST_LIMIT)
    offset = whole_number(request, "offset", 0)
    if limit is None or offset is None:
        return error(400, "limit and offset must be whole numbers ≥ 0 (limit 0 = all)")
    fetch = limit or None  # 0: every job
    jobs = await request.app.state.queues.call(
        lambda q: q.list_jobs(state=state, queue=name, limit=fetch, offset=offset)
    )
    return DocumentResponse([job.to_dict() for job in jobs])


async def api_job(request: Request) -> Response:
    job_id = job_id_of(request)
    try:
        job = await request.app.state.queues.call(lambda q: q.get(job_id, with_runs=True))
    except JobNotFound as exc:
        return error(404, str(exc))
    return DocumentResponse(job.to_dict(with_runs=True))


async def healthz(request: Request) -> Response:
    """200 while the store answers a query, 503 otherwise; no detail either way."""
    if await request.app.state.queues.probe(HEALTH_SECONDS):
        return PlainTextResponse("ok\n")
    return PlainTextResponse("unavailable\n", status_code=503)


async def metrics(request: Request) -> Response:
    """The Prometheus exposition, as `queuectl metrics` prints it."""
    from .metrics import render

    body, content_type = await request.app.state.queues.call(render)
    return Response(body, media_type=content_type)


routes = [
    Route("/api/status", api_status),
    Route("/api/jobs", api_jobs),
    Route("/api/jobs/{job_id:path}", api_job),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
]
