"""Plain-text output: tables and job details, safe for untrusted text.

Ids, queue names and commands come from users and scripts; a newline or an escape sequence in
one must not break a table or drive the terminal, so every cell goes through `clean`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .models import Job, Run, iso


def json_document(data: object) -> str:
    """The text of every --json output (and the dashboard's /api): one indented JSON
    document, non-ASCII text as it is."""
    import json

    return json.dumps(data, indent=2, ensure_ascii=False)


def clean(value: object, limit: int | None = None) -> str:
    """One printable line: control characters shown as escapes, optionally shortened."""
    if value is None:
        return "-"
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[clean(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=False)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        for line in lines
    )


JOB_HEADERS = ("ID", "STATE", "ATTEMPTS", "PRIORITY", "QUEUE", "RUN_AT", "COMMAND")


def job_rows(jobs: Iterable[Job]) -> list[tuple]:
    return [
        (
            clean(job.id, 40),
            job.state.value,
            f"{job.attempts}/{job.max_retries + 1}",
            job.priority,
            clean(job.queue, 20),
            iso(job.run_at),
            clean(job.command, 60),
        )
        for job in jobs
    ]


def job_details(job: Job) -> str:
    fields = job.to_dict()
    # Lists and objects (after, env) as a reader writes them, not as Python reprs.
    fields["after"] = ", ".join(job.after) or None
    fields["env"] = " ".join(f"{name}={value}" for name, value in (job.env or {}).items()) or None
    lines = [f"{key + ':':<13} {clean(value)}" for key, value in fields.items()]
    if job.runs:
        lines.append("runs:")
        lines.append(_indent(table(RUN_HEADERS, _run_rows(job.runs))))
    return "\n".join(lines)


RUN_HEADERS = ("ATTEMPT", "STARTED", "FINISHED", "OUTCOME", "EXIT", "WORKER", "ERROR")


def _run_rows(runs: Iterable[Run]) -> list[tuple]:
    return [
        (
            run.attempt,
            iso(run.started_at),
            iso(run.finished_at),
            run.outcome or "running",
            run.exit_code,
            clean(run.worker_id, 30),
            clean(run.error, 60),
        )
        for run in runs
    ]


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
