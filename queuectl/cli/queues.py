"""`queuectl queue list|pause|resume|limit`: the operators' controls of a queue (SPEC §8)."""

from __future__ import annotations

import click

from ..formatting import clean, table
from .base import Context, Group, pass_ctx, pass_reader
from .options import emit_json, json_option


@click.group("queue", cls=Group)
def queue_group() -> None:
    """Pause, resume and limit queues, and list them.

    A queue is named by its jobs (the spec's "queue" field, "default" if none); pausing or
    limiting one that has no job yet is allowed.

    \b
    Examples:
      queuectl queue pause emails
      queuectl queue limit reports 4
      queuectl queue list
    """


@queue_group.command("list")
@json_option
@pass_reader
def queue_list(ctx: Context, as_json: bool) -> None:
    """List the queues that have jobs or settings: paused, limit, jobs by state, and the age
    of the oldest job waiting to run.

    \b
    Example:
      queuectl queue list --json
    """
    queues = ctx.queue.queues()
    if as_json:
        emit_json([q.to_dict() for q in queues])
        return
    if not queues:
        click.echo("no queues yet: a queue appears with its first job or setting", err=True)
        return
    headers = (
        "QUEUE",
        "PAUSED",
        "LIMIT",
        "PENDING",
        "PROCESSING",
        "FAILED",
        "DEAD",
        "OLDEST_READY",
    )
    rows = [
        (
            clean(q.name, 40),
            "yes" if q.paused else "no",
            "-" if q.limit is None else q.limit,
            q.jobs["pending"],
            q.jobs["processing"],
            q.jobs["failed"],
            q.jobs["dead"],
            "-" if q.oldest_ready_age is None else f"{q.oldest_ready_age:.0f}s",
        )
        for q in queues
    ]
    click.echo(table(headers, rows))


# Queue names are checked by Queue (specs.check_name: empty, too long, control characters, bytes
# that are not UTF-8), all before anything is written, with messages that say "queue";
# options.stored_text would call a bad one a "job id".
@queue_group.command("pause")
@click.argument("names", nargs=-1, required=True, metavar="QUEUE...")
@pass_ctx
def queue_pause(ctx: Context, names: tuple[str, ...]) -> None:
    """Pause queues: no worker on any host claims their jobs until they are resumed.
    Enqueueing still works, and jobs already running finish.

    \b
    Example:
      queuectl queue pause emails reports
    """
    ctx.queue.pause_queues(names)
    for name in dict.fromkeys(names):
        click.echo(f"paused {clean(name)}")


@queue_group.command("resume")
@click.argument("names", nargs=-1, required=True, metavar="QUEUE...")
@pass_ctx
def queue_resume(ctx: Context, names: tuple[str, ...]) -> None:
    """Resume paused queues: their jobs can be claimed at once (idle workers wake up).

    \b
    Example:
      queuectl queue resume emails
    """
    ctx.queue.resume_queues(names)
    for name in dict.fromkeys(names):
        click.echo(f"resumed {clean(name)}")


# A negative N would look like an option to click: taken as an argument, then refused as a
# bad value (exit 1), like a bad config value.
@queue_group.command("limit", context_settings={"ignore_unknown_options": True})
@click.argument("name", metavar="QUEUE")
@click.argument("limit", metavar="N")
@pass_ctx
def queue_limit(ctx: Context, name: str, limit: str) -> None:
    """Run at most N jobs of QUEUE at the same moment, across every worker and host
    (N ≥ 0; 0 removes the limit). Jobs already running are not stopped.

    \b
    Examples:
      queuectl queue limit reports 4
      queuectl queue limit reports 0
    """
    if not (limit.isascii() and limit.isdigit()) or len(limit) > 18:
        raise click.ClickException(
            f"the limit must be a whole number ≥ 0 (0 = no limit), got {clean(limit)!r}"
        )
    ctx.queue.limit_queue(name, int(limit))
    if int(limit):
        click.echo(f"limited {clean(name)} to {int(limit)} running jobs")
    else:
        click.echo(f"removed the limit of {clean(name)}")
