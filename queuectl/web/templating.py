"""Rendering the dashboard's pages: Jinja2 with autoescape on for every template, and the
filters that show store values as text (SPEC §9: ids, commands, output and errors are text,
never markup; control characters such as terminal escapes are shown escaped, as the CLI does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..formatting import clean
from ..models import iso
from .security import CSRF_FIELD, csrf_token

TEMPLATES = Path(__file__).resolve().parent / "templates"


def output_text(value: object) -> str:
    """Several lines of a run's output: line breaks and tabs kept, every other control
    character (a terminal escape, a carriage return) shown as an escape."""
    if value is None:
        return ""
    # Tab by tab: a literal backslash and `t` in the output (C:\temp) stays as it is.
    return "\n".join(
        "\t".join(clean(part) for part in line.split("\t")) for line in str(value).split("\n")
    )


def age(seconds: float | None) -> str:
    """A duration for people: 42s, 3m 5s, 2h 10m, 4d 1h; `-` for none."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def path_part(value: object) -> str:
    """A value as one segment of a URL path (`/` and every other reserved byte encoded)."""
    return quote(str(value), safe="")


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(text=clean, output=output_text, age=age, iso=iso, pathpart=path_part)


def here(request: Request) -> str:
    """This page's path and query as the browser sent them (percent-encoded): where a form
    goes back to. The decoded path would turn an id holding `?` or `%` into another URL."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """The page `name` rendered for this request (its CSRF token and read-only state
    included)."""
    page = environment.get_template(name).render(
        request=request,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(request),
        read_only=request.app.state.read_only,
        logged_in=request.app.state.guard.token is not None,
        path=request.url.path,
        next_path=here(request),
        **context,
    )
    return HTMLResponse(page, status_code=status_code)
