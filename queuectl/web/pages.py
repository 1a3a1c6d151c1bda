"""The dashboard's HTML pages (SPEC §9): overview, jobs, one job, dead letters, queues and
schedules. Each reads through Queue (never the store) on the thread pool; each is a whole page
that static/dashboard.js fetches again every few seconds to swap its live region in place.
The forms that change things are in actions.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import JobNotFound, QueueError
from ..models import CANCELABLE_STATES, STATES, JobState
from ..queue import Queue
from . import actions
from .templating import render

PAGE_SIZE = 50  # jobs per page of /jobs and /dead
ACTIVITY_MINUTES = 60  # the overview's runs per minute cover the last hour


def overview_data(queue: Queue) -> dict[str, Any]:
    """What the overview shows: counts, queues, live workers, activity."""
    status = queue.status()
    queues = queue.queues()
    now = queue.now()
    ready_ages = [q.oldest_ready_age for q in queues if q.oldest_ready_age is not None]
    per_minute = queue.runs_per_minute(ACTIVITY_MINUTES)
    return {
        "status": status,
        "queues": queues,
        "workers": [(w, now - w.last_heartbeat) for w in status.workers],
        "oldest_ready_age": max(ready_ages) if ready_ages else None,
        "per_minute": per_minute,
        "per_minute_peak": max(per_minute) or 1,
        "runs_last_hour": sum(per_minute),
    }


async def overview(request: Request) -> Response:
    data = await request.app.state.queues.call(overview_data)
    return render(request, "overview.html", {"title": "Overview", **data})


def page_number(request: Request) -> int:
    """The `page` query parameter: a whole number ≥ 1 (400 otherwise), 1 if absent."""
    text = request.query_params.get("page", "") or "1"
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 10**9:
        raise HTTPException(400, "page must be a whole number ≥ 1")
    return int(text)


def one_page(queue: Queue, state: str | None, name: str | None, page: int) -> tuple[list, bool]:
    """A page of jobs in `list` order, and whether there is a next one."""
    jobs = queue.list_jobs(
        state=state, queue=name, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return jobs[:PAGE_SIZE], len(jobs) > PAGE_SIZE


async def jobs_page(request: Request) -> Response:
    state, name = filters(request)
    page = page_number(request)

    def read(queue: Queue) -> dict[str, Any]:
        jobs, more = one_page(queue, state, name, page)
        return {"jobs": jobs, "more": more, "queue_names": [q.name for q in queue.queues()]}

    data = await request.app.state.queues.call(read)
    return render(
        request,
        "jobs.html",
        {
            "title": "Jobs",
            "states": STATES,
            "state": state or "",
            "queue_name": name or "",
            "page": page,
            **data,
        },
    )


def storable(text: str) -> bool:
    """Whether text could be a stored id or name: none holds a control character (SPEC §2),
    and a NUL would not even reach PostgreSQL."""
    return not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def filters(request: Request) -> tuple[str | None, str | None]:
    """The `state` and `queue` query parameters (400 for an unknown state or a queue name no
    queue can have)."""
    state = request.query_params.get("state") or None
    name = request.query_params.get("queue") or None
    if state is not None and state not in STATES:
        raise HTTPException(400, f"unknown state {state!r}; one of {', '.join(STATES)}")
    if name is not None and not storable(name):
        raise HTTPException(400, "a queue name holds no control character")
    return state, name


def job_id_of(request: Request) -> str:
    """The job id of /jobs/<id> or /api/jobs/<id>, decoded once from the path as sent: an id
    may hold `/`, `?` or `%` (sent as %2F, %3F, %25), which a second decoding would change."""
    raw = request.scope.get("raw_path")
    if raw:
        path = raw.decode("latin-1")
        prefix = path.find("/jobs/")
        if prefix >= 0:
            return unquote(path[prefix + len("/jobs/") :], errors="replace")
    return request.path_params["job_id"]


async def job_page(request: Request) -> Response:
    job_id = job_id_of(request)

    def read(queue: Queue) -> tuple:
        job = queue.get(job_id, with_runs=True)
        # The newest run first (what a reader looks for), each with its output's last part
        # (a running one's so far, from its log file when it runs on this host).
        return job, [(run, queue.output_tail(run)) for run in reversed(job.runs)]

    try:  # an id no job can have (a control character, a NUL) is unknown: Queue.get says so
        job, runs = await request.app.state.queues.call(read)
    except JobNotFound:
        return render(
            request,
            "missing.html",
            {"title": "No such job", "job_id": job_id, "refresh": False},
            404,
        )
    return render(
        request,
        "job.html",
        {
            "title": f"Job {job.id}",
            "job": job,
            "fields": job.to_dict(),
            "cancelable": job.state in CANCELABLE_STATES,
            "dead": job.state is JobState.DEAD,
            "runs": runs,
        },
    )


async def dead_page(request: Request) -> Response:
    page = page_number(request)
    jobs, more = await request.app.state.queues.call(lambda q: one_page(q, "dead", None, page))
    return render(
        request, "dead.html", {"title": "Dead letters", "jobs": jobs, "more": more, "page": page}
    )


async def queues_page(request: Request) -> Response:
    queues = await request.app.state.queues.call(lambda q: q.queues())
    return render(request, "queues.html", {"title": "Queues", "queues": queues})


async def schedules_page(request: Request) -> Response:
    schedules = await request.app.state.queues.call(lambda q: q.list_schedules())
    return render(request, "schedules.html", {"title": "Schedules", "schedules": schedules})


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error as a short page (or JSON under /api/), its text escaped."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return error_page(request, exc.status_code, str(exc.detail))


async def queue_error(request: Request, exc: Exception) -> Response:
    """A store that cannot be used, an unknown job or schedule, a refused change: a page
    saying so (503, 404, 409)."""
    from ..errors import ScheduleNotFound, StoreError

    if isinstance(exc, StoreError):
        status = 503
    elif isinstance(exc, (JobNotFound, ScheduleNotFound)):
        status = 404
    else:
        status = 409
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(exc)}, status_code=status)
    return error_page(request, status, str(exc))


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(
        request, "error.html", {"title": "Error", "message": message, "refresh": False}, status
    )


exception_handlers = {HTTPException: http_error, QueueError: queue_error}

routes = [
    Route("/", overview, name="overview"),
    Route("/jobs", jobs_page, name="jobs"),
    Route("/jobs/{job_id:path}", job_page, name="job"),
    Route("/dead", dead_page, name="dead"),
    Route("/queues", queues_page, name="queues"),
    Route("/schedules", schedules_page, name="schedules"),
    *actions.routes,
]
