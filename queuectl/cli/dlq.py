"""`queuectl dlq list|retry`: the dead-letter queue, jobs that used up their retries."""

from __future__ import annotations

import click

from ..formatting import clean, table
from ..models import iso
from .base import Context, Group, pass_ctx, pass_reader
from .options import emit_json, json_option, stored_text


@click.group("dlq", cls=Group)
def dlq() -> None:
    """The dead-letter queue: jobs that used up their retries.

    \b
    Example:
      queuectl dlq list
      queuectl dlq retry --all
    """


@dlq.command("list")
@json_option
@pass_reader
def dlq_list(ctx: Context, as_json: bool) -> None:
    """List dead jobs.

    \b
    Example:
      queuectl dlq list --json
    """
    jobs = ctx.queue.list_jobs(state="dead")
    if as_json:
        emit_json([job.to_dict() for job in jobs])
    elif jobs:
        headers = ("ID", "ATTEMPTS", "QUEUE", "UPDATED_AT", "LAST_ERROR", "COMMAND")
        rows = [
            (job.id, job.attempts, job.queue, iso(job.updated_at), job.last_error, job.command)
            for job in jobs
        ]
        click.echo(table(headers, [[clean(cell, 60) for cell in row] for row in rows]))
    else:
        click.echo("the dead-letter queue is empty", err=True)


@dlq.command("retry")
@click.argument("job_ids", nargs=-1, metavar="[JOB_ID]...", callback=stored_text)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@pass_ctx
def dlq_retry(ctx: Context, job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Move dead jobs back to pending with attempts reset (run history is kept).

    \b
    Examples:
      queuectl dlq retry job1 job2
      queuectl dlq retry --all
    """
    if retry_all == bool(job_ids):
        raise click.UsageError("give JOB_IDs or --all (one of the two)")
    retried = ctx.queue.retry_dead(None if retry_all else list(job_ids))
    for job_id in retried:
        click.echo(f"{clean(job_id)}: dead -> pending")
    if not retried:
        click.echo("the dead-letter queue is empty", err=True)
