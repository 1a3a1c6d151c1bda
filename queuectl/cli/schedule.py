"""`queuectl schedule add|list|show|pause|resume|remove`: cron schedules whose fire times
running workers enqueue as jobs (SPEC §8)."""

from __future__ import annotations

import click

from ..formatting import clean, table
from ..models import iso
from .base import Context, Group, pass_ctx, pass_reader
from .options import emit_json, json_option, stored_text

NEXT_RUNS = 5  # fire times `schedule show` lists


@click.group("schedule", cls=Group)
def schedule() -> None:
    """Cron schedules: running workers enqueue each fire time once, as job NAME@TIME.

    \b
    Example:
      queuectl schedule add nightly '30 2 * * *' --command ./backup.sh --tz Europe/Berlin
      queuectl schedule list
    """


@schedule.command("add")
@click.argument("name", callback=stored_text)
@click.argument("cron", callback=stored_text)
@click.option("--command", "-c", "command", required=True, help="Shell command of each job.")
@click.option("--tz", "zone", metavar="ZONE", help="IANA time zone of CRON (default: UTC).")
@click.option("--queue", "-q", "queue_name", help="Queue of its jobs (default: default).")
@click.option("--priority", type=int, help="Priority of its jobs (default 0).")
@click.option("--max-retries", type=int, help="Retries of its jobs (default: config).")
@click.option(
    "--timeout",
    type=float,
    metavar="SECONDS",
    help="Timeout of its jobs; 0 = none (default: config).",
)
@click.option(
    "--overlap",
    type=click.Choice(["allow", "skip"]),
    default="allow",
    show_default=True,
    help="skip: no job for a fire time while the previous one is unfinished.",
)
@pass_ctx
def schedule_add(
    ctx: Context,
    name: str,
    cron: str,
    command: str,
    zone: str | None,
    queue_name: str | None,
    priority: int | None,
    max_retries: int | None,
    timeout: float | None,
    overlap: str,
) -> None:
    """Add schedule NAME: every fire time of CRON becomes a job NAME@TIME.

    CRON is a 5-field expression (minute hour day-of-month month day-of-week) or one of
    @hourly, @daily, @weekly, @monthly, @yearly, @annually. Fire times before now are never
    enqueued. An invalid expression or zone, or a name in use: exit 1, nothing written.

    \b
    Examples:
      queuectl schedule add nightly '30 2 * * *' --command ./backup.sh --tz Europe/Berlin
      queuectl schedule add sync @hourly -c 'rsync -a src/ dst/' --overlap skip
    """
    added = ctx.queue.add_schedule(
        name,
        cron,
        command,
        tz=zone,
        queue=queue_name,
        priority=priority,
        max_retries=max_retries,
        timeout=timeout,
        overlap=overlap,
    )
    click.echo(f"added schedule {clean(added.name)}; next run {iso(added.next_run_at)}")


@schedule.command("list")
@json_option
@pass_reader
def schedule_list(ctx: Context, as_json: bool) -> None:
    """List schedules with their next fire time and last job.

    \b
    Example:
      queuectl schedule list --json
    """
    schedules = ctx.queue.list_schedules()
    if as_json:
        emit_json([item.to_dict() for item in schedules])
    elif schedules:
        headers = ("NAME", "CRON", "TZ", "NEXT_RUN_AT", "LAST_ENQUEUED_AT", "QUEUE", "COMMAND")
        rows = [
            (
                clean(item.name, 40),
                clean(item.cron),
                clean(item.tz),
                "paused" if item.paused else iso(item.next_run_at),
                iso(item.last_enqueued_at),
                clean(item.queue, 20),
                clean(item.command, 60),
            )
            for item in schedules
        ]
        click.echo(table(headers, rows))
    else:
        click.echo("no schedules", err=True)


@schedule.command("show")
@click.argument("name", callback=stored_text)
@json_option
@pass_reader
def schedule_show(ctx: Context, name: str, as_json: bool) -> None:
    """Show schedule NAME and its next five fire times (UTC).

    \b
    Example:
      queuectl schedule show nightly --json
    """
    item = ctx.queue.get_schedule(name)
    next_runs = ctx.queue.next_fire_times(item, NEXT_RUNS)
    if as_json:
        emit_json({**item.to_dict(), "next_runs": [iso(moment) for moment in next_runs]})
        return
    fields = item.to_dict()
    fields["max_retries"] = "config default" if item.max_retries is None else item.max_retries
    fields["timeout"] = "config default" if item.timeout is None else f"{item.timeout:g}"
    fields["paused"] = "yes" if item.paused else "no"
    fields["last_job_id"] = item.last_job_id
    for key, value in fields.items():
        click.echo(f"{key + ':':<17} {clean(value)}")
    heading = "next runs (paused: none until resumed):" if item.paused else "next runs:"
    click.echo(heading)
    from ..cron import local_time

    for moment in next_runs:
        local = "" if item.tz == "UTC" else f"  ({local_time(moment, item.tz)})"
        click.echo(f"  {iso(moment)}{local}")


@schedule.command("pause")
@click.argument("name", callback=stored_text)
@pass_ctx
def schedule_pause(ctx: Context, name: str) -> None:
    """Stop enqueuing NAME's fire times until it is resumed.

    \b
    Example:
      queuectl schedule pause nightly
    """
    ctx.queue.pause_schedule(name)
    click.echo(f"paused schedule {clean(name)}")


@schedule.command("resume")
@click.argument("name", callback=stored_text)
@pass_ctx
def schedule_resume(ctx: Context, name: str) -> None:
    """Enqueue NAME's fire times again, from the next one (none missed while paused).

    \b
    Example:
      queuectl schedule resume nightly
    """
    resumed = ctx.queue.resume_schedule(name)
    click.echo(f"resumed schedule {clean(name)}; next run {iso(resumed.next_run_at)}")


@schedule.command("remove")
@click.argument("name", callback=stored_text)
@pass_ctx
def schedule_remove(ctx: Context, name: str) -> None:
    """Delete schedule NAME; the jobs it enqueued stay.

    \b
    Example:
      queuectl schedule remove nightly
    """
    ctx.queue.remove_schedule(name)
    click.echo(f"removed schedule {clean(name)}")
