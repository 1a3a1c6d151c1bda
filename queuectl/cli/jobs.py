"""`queuectl status|list|show|logs|cancel`: look at the store's jobs and workers, and cancel
a job."""

from __future__ import annotations

import sys

import click

from ..formatting import JOB_HEADERS, clean, job_details, job_rows, table
from ..models import INT64_MAX, STATES, CommandFate, Run
from ..queue import DEFAULT_LIST_LIMIT
from ..runlogs import RunLog
from .base import Command, Context, pass_ctx, pass_reader
from .options import emit_json, json_option, stored_text


@click.command(cls=Command)
@json_option
@pass_reader
def status(ctx: Context, as_json: bool) -> None:
    """Show the store in use, job counts by state, live workers and paused queues.

    \b
    Example:
      queuectl status --json
    """
    result = ctx.queue.status()
    document = result.to_dict()
    if as_json:
        emit_json(document)
        return
    workers = document["workers"]
    click.echo(f"store: {clean(result.store)}")
    click.echo("jobs:")
    for state, count in result.jobs.items():
        click.echo(f"  {state:<11} {count}")
    if result.paused_queues:
        click.echo("paused queues: " + ", ".join(clean(name) for name in result.paused_queues))
    click.echo(f"workers: {len(workers)}")
    if workers:
        headers = ("ID", "HOST", "PID", "STARTED_AT", "LAST_HEARTBEAT", "CURRENT_JOB")
        rows = [tuple(w.values()) for w in workers]
        click.echo("\n".join("  " + line for line in table(headers, rows).splitlines()))


@click.command("list", cls=Command)
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--queue", "-q", "queue_name", callback=stored_text, help="Only jobs of this queue.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIST_LIMIT,
    show_default=True,
    help="At most this many jobs, oldest first; 0 = all.",
)
@json_option
@pass_reader
def list_command(
    ctx: Context, state: str | None, queue_name: str | None, limit: int, as_json: bool
) -> None:
    """List jobs in the order they were enqueued.

    \b
    Example:
      queuectl list --state failed --limit 20
    """
    # A limit past what any store can count means all (and limit + 1 must fit in 64 bits).
    fetch = None if limit == 0 or limit >= INT64_MAX else limit + 1
    jobs = ctx.queue.list_jobs(state=state, queue=queue_name, limit=fetch)
    more = fetch is not None and len(jobs) > limit
    jobs = jobs[:limit] if more else jobs
    if as_json:
        emit_json([job.to_dict() for job in jobs])
    elif jobs:
        click.echo(table(JOB_HEADERS, job_rows(jobs)))
    else:
        click.echo("no jobs", err=True)
    if more:
        click.echo(f"(showing the first {limit}; use --limit 0 for all)", err=True)


@click.command(cls=Command)
@click.argument("job_id", callback=stored_text)
@json_option
@pass_reader
def show(ctx: Context, job_id: str, as_json: bool) -> None:
    """Show one job: its fields, exit code, last error and run history.

    \b
    Example:
      queuectl show job1 --json
    """
    job = ctx.queue.get(job_id, with_runs=True)
    if as_json:
        emit_json(job.to_dict(with_runs=True))
    else:
        click.echo(job_details(job))


@click.command(cls=Command)
@click.argument("job_id", callback=stored_text)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print the output as it is written, run after run, until the job has finished; "
    "then exit as `wait` does (0 completed, 3 dead or canceled).",
)
@pass_reader
def logs(ctx: Context, job_id: str, follow: bool) -> None:
    """Print the captured stdout+stderr of a job's runs, oldest first.

    Output goes to stdout; a header line before each run goes to stderr. With --follow, the
    output of a run on this host is printed as it is written; that of a run on another host
    (PostgreSQL) when the run ends, from the last 8 KiB the store keeps.

    \b
    Example:
      queuectl logs job1
      queuectl logs job1 --follow
    """
    if follow:
        follow_logs(ctx, job_id)
        return
    runs = ctx.queue.runs(job_id)
    if not runs:
        click.echo(f"job {job_id!r} has not run yet", err=True)
        return
    for run in runs:
        print_run(run, ctx.queue.open_log(run))


def follow_logs(ctx: Context, job_id: str) -> None:
    """`logs --follow`: each run as Queue.follow_log gives it, then the job's end as `wait`
    reports it."""
    from .wait import final_status, interruptible

    with interruptible():
        for run, log in ctx.queue.follow_log(job_id):
            print_run(run, log)
        status = final_status([ctx.queue.get(job_id)])
    if status:
        raise SystemExit(status)


def print_run(run: Run, log: RunLog) -> None:
    """One run's header (on stderr) and its output (on stdout), chunk by chunk."""
    outcome = run.outcome or "running"
    exit_text = "" if run.exit_code is None else f", exit {run.exit_code}"
    click.echo(f"=== attempt {run.attempt} ({outcome}{exit_text}) ===", err=True)
    if log.from_store and run.output_tail:
        # On stderr, as the header: stdout stays the output alone, for scripts.
        click.echo(f"queuectl: {kept_note(run, log)}", err=True)
    out = sys.stdout.buffer
    for chunk in log.chunks:
        out.write(chunk)
        out.flush()


def kept_note(run: Run, log: RunLog) -> str:
    """Why `logs` shows the tail kept in the store, and whether it is all of the output
    (otherwise it starts mid-line, and a reader must know it is only the end)."""
    from ..runlogs import TAIL_BYTES  # imported by open_log() already

    kept = f"{TAIL_BYTES // 1024} KiB"
    if log.other_host is not None:
        where = f"attempt {run.attempt} ran on {clean(log.other_host)}, which has its log file"
    else:
        where = f"the log file of attempt {run.attempt} is gone"
    if log.partial:
        return f"{where}; showing only the last {kept} of its output, kept in the store"
    return f"{where}; showing its output as kept in the store (all of it: under {kept})"


@click.command(cls=Command)
@click.argument("job_id", callback=stored_text)
@pass_ctx
def cancel(ctx: Context, job_id: str) -> None:
    """Cancel a pending, failed or running job (a running command is killed).

    \b
    Example:
      queuectl cancel job1
    """
    previous, fate = ctx.queue.cancel(job_id)
    note = "" if fate is None else f" ({FATE_NOTES[fate]})"
    click.echo(f"canceled {clean(job_id)}, was {previous.value}{note}")


# What became of a canceled job's running command, as `cancel` says it.
FATE_NOTES = {
    CommandFate.ENDED: "its command has ended",
    CommandFate.KILLED: "its command was killed",
    CommandFate.LEFT_TO_WORKER: "its worker kills its command",
}
