"""Options and output helpers shared by the commands that read or change stored jobs and
settings (worker.py, jobs.py, dlq.py, config.py); `enqueue` does without them."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..specs import check_encodable


def stored_text(ctx: click.Context, param: click.Parameter, value):
    """Check an id or queue name given on the command line. Bytes that are not valid UTF-8
    reach Python as lone surrogates, which no store can hold (nor look up): refuse them with a
    one-line error (exit 1) rather than a traceback from the driver."""
    what = max(param.opts, key=len) if isinstance(param, click.Option) else "job id"
    for text in value if isinstance(value, tuple) else (value,):
        if text is not None:
            check_encodable(text, what)
    return value


def json_option(func: Callable) -> Callable:
    """The --json flag: the command prints one JSON document instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(func)


def emit_json(data: object) -> None:
    """Print data as one indented JSON document, non-ASCII text as it is."""
    from ..formatting import json_document

    click.echo(json_document(data))
