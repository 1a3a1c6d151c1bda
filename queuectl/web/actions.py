"""The dashboard's changes (SPEC §9), each an HTML form that POSTs here: retry a dead job or
all of them, cancel a job, pause or resume a queue or a schedule; and the login form.

Every POST must carry its session's CSRF token (403 and nothing changed otherwise); with
--read-only every change is refused (403). A change answers with a redirect (303) to the page
the form was on, so that reloading it does not post again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..queue import Queue
from .security import check_csrf
from .templating import render


def local_path(value: object, default: str = "/") -> str:
    """Where to go back to: a path of this site only (never `//other.site` nor a URL)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(not ch.isprintable() for ch in value):
        return default
    return value


async def checked_form(request: Request) -> dict[str, Any]:
    """The POSTed form, once its CSRF token is checked (403 otherwise)."""
    form = dict(await request.form())
    if not check_csrf(request, form):
        raise HTTPException(403, "this form has expired or did not come from this dashboard")
    return form


def field(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise HTTPException(400, f"the form lacks its {name}")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in value):
        raise HTTPException(400, f"no {name} holds a control character")
    return value


def change(work: Callable[[Queue, dict[str, Any]], object]):
    """A POST route that checks read-only and CSRF, runs work(queue, form), and redirects back
    to the form's `next` page."""

    async def endpoint(request: Request) -> Response:
        if request.app.state.read_only:
            raise HTTPException(403, "this dashboard is read-only (queuectl web --read-only)")
        form = await checked_form(request)
        await request.app.state.queues.call(lambda queue: work(queue, form))
        return RedirectResponse(local_path(form.get("next")), status_code=303)

    return endpoint


def retry_one(queue: Queue, form: dict[str, Any]) -> None:
    queue.retry_dead([field(form, "job_id")])


def retry_all(queue: Queue, form: dict[str, Any]) -> None:
    queue.retry_dead(None)


def cancel(queue: Queue, form: dict[str, Any]) -> None:
    queue.cancel(field(form, "job_id"))


def pause_queue(queue: Queue, form: dict[str, Any]) -> None:
    queue.pause_queues([field(form, "queue")])


def resume_queue(queue: Queue, form: dict[str, Any]) -> None:
    queue.resume_queues([field(form, "queue")])


def pause_schedule(queue: Queue, form: dict[str, Any]) -> None:
    queue.pause_schedule(field(form, "schedule"))


def resume_schedule(queue: Queue, form: dict[str, Any]) -> None:
    queue.resume_schedule(field(form, "schedule"))


async def login(request: Request) -> Response:
    """The login form (GET) and its answer (POST): a right token sets the login cookie."""
    guard = request.app.state.guard
    target = local_path(request.query_params.get("next"))
    if guard.token is None:
        return RedirectResponse(target, status_code=303)
    if request.method == "GET":
        return render(
            request,
            "login.html",
            {"title": "Log in", "next": target, "failed": False, "refresh": False},
        )
    form = await checked_form(request)
    target = local_path(form.get("next"))
    given = form.get("token")
    if not isinstance(given, str) or not guard.token_matches(given.strip()):
        context = {"title": "Log in", "next": target, "failed": True, "refresh": False}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        guard.auth_cookie, guard.login_value(), httponly=True, samesite="strict", path="/"
    )
    return response


async def logout(request: Request) -> Response:
    await checked_form(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(request.app.state.guard.auth_cookie, path="/")
    return response


routes = [
    Route("/login", login, methods=["GET", "POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/actions/retry", change(retry_one), methods=["POST"]),
    Route("/actions/retry-all", change(retry_all), methods=["POST"]),
    Route("/actions/cancel", change(cancel), methods=["POST"]),
    Route("/actions/pause-queue", change(pause_queue), methods=["POST"]),
    Route("/actions/resume-queue", change(resume_queue), methods=["POST"]),
    Route("/actions/pause-schedule", change(pause_schedule), methods=["POST"]),
    Route("/actions/resume-schedule", change(resume_schedule), methods=["POST"]),
]
