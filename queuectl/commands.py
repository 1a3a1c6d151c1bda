"""The queuectl commands other than `enqueue`: workers, looking at jobs, changing them, the
dead-letter queue and the configuration.

They register themselves on the root group of cli.py, which imports this module only when one
of them is looked up or the commands are listed, so that `enqueue` does not build them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from .cli import Context, cli, pass_ctx, pass_reader
from .formatting import JOB_HEADERS, clean, job_details, job_rows, table
from .models import INT64_MAX, STATES, Run, check_encodable, iso
from .queue import RunLog

DEFAULT_LIST_LIMIT = 100


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
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(func)


def emit_json(data: object) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------
# worker


@cli.group()
def worker() -> None:
    """Start and stop worker processes.

    \b
    Example:
      queuectl worker start --count 3
      queuectl worker stop
    """


@worker.command("start")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of worker processes.",
)
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    callback=stored_text,
    help="Serve only these queues (repeat).",
)
@click.option("--burst", is_flag=True, help="Exit once no job is ready to run now.")
@click.option("--quiet", is_flag=True, help="Print no event lines.")
@pass_ctx
def worker_start(
    ctx: Context, count: int, queues: tuple[str, ...], burst: bool, quiet: bool
) -> None:
    """Run COUNT workers in the foreground until stopped (Ctrl-C, SIGTERM or `worker stop`).

    A first Ctrl-C lets running jobs finish; a second kills them (they are retried).

    \b
    Examples:
      queuectl worker start --count 3
      queuectl worker start --queue emails --queue reports --burst
    """
    from .supervisor import Supervisor

    if "" in queues:
        raise click.BadParameter("a queue name cannot be empty", param_hint="'--queue'")
    store = ctx.queue.store
    ctx.queue.settings()  # a bad setting fails here, once, not in every worker
    target, description = store.target, store.description
    ctx.close()  # each worker opens its own connection
    banner = f"queuectl: {count} worker(s) on {description}; Ctrl-C to stop"
    sys.exit(Supervisor(target, count, queues, burst, quiet, banner).run())


@worker.command("stop")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS"
)
@pass_ctx
def worker_stop(ctx: Context, timeout: float) -> None:
    """Ask every running worker of this store (any host) to stop after its current job.

    Exits 0 once they have exited, 1 if TIMEOUT passed first.

    \b
    Example:
      queuectl worker stop --timeout 120
    """
    asked = ctx.queue.request_stop()
    away = ctx.queue.away_workers()
    if away:
        click.echo(
            f"{len(away)} worker(s) could not be reached (lease ran out; not heard from for up"
            f" to {max(away.values()):.0f}s): they stop if they come back"
        )
    if not asked:
        click.echo("no workers are running")
        return
    click.echo(f"asked {len(asked)} worker(s) to stop; waiting up to {timeout:g}s")
    left = ctx.queue.wait_for_workers_exit(asked, timeout)
    if left:
        message = f"{len(left)} worker(s) still running after {timeout:g}s"
        silent = ctx.queue.unreachable(left)
        if silent:
            message += (
                f"; {len(silent)} of them unreachable (not heard from for up to"
                f" {max(silent.values()):.0f}s): they stop when they reach the store again"
            )
        raise click.ClickException(message)
    click.echo(f"{len(asked)} worker(s) stopped")


# ---------------------------------------------------------------------------------------------
# looking


@cli.command()
@json_option
@pass_reader
def status(ctx: Context, as_json: bool) -> None:
    """Show the store in use, job counts by state and live workers.

    \b
    Example:
      queuectl status --json
    """
    result = ctx.queue.status()
    workers = [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "started_at": iso(w.started_at),
            "last_heartbeat": iso(w.last_heartbeat),
            "current_job": w.current_job,
        }
        for w in result.workers
    ]
    if as_json:
        emit_json({"store": result.store, "jobs": result.jobs, "workers": workers})
        return
    click.echo(f"store: {clean(result.store)}")
    click.echo("jobs:")
    for state, count in result.jobs.items():
        click.echo(f"  {state:<11} {count}")
    click.echo(f"workers: {len(workers)}")
    if workers:
        headers = ("ID", "HOST", "PID", "STARTED_AT", "LAST_HEARTBEAT", "CURRENT_JOB")
        rows = [tuple(w.values()) for w in workers]
        click.echo("\n".join("  " + line for line in table(headers, rows).splitlines()))


@cli.command("list")
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


@cli.command()
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


@cli.command()
@click.argument("job_id", callback=stored_text)
@pass_reader
def logs(ctx: Context, job_id: str) -> None:
    """Print the captured stdout+stderr of a job's runs, oldest first.

    Output goes to stdout; a header line before each run goes to stderr.

    \b
    Example:
      queuectl logs job1
    """
    runs = ctx.queue.runs(job_id)
    if not runs:
        click.echo(f"job {job_id!r} has not run yet", err=True)
        return
    out = sys.stdout.buffer
    for run in runs:
        outcome = run.outcome or "running"
        exit_text = "" if run.exit_code is None else f", exit {run.exit_code}"
        click.echo(f"=== attempt {run.attempt} ({outcome}{exit_text}) ===", err=True)
        log = ctx.queue.open_log(run)
        if log.from_store and run.output_tail:
            # On stderr, as the header: stdout stays the output alone, for scripts.
            click.echo(f"queuectl: {kept_note(run, log)}", err=True)
        for chunk in log.chunks:
            out.write(chunk)
        out.flush()


def kept_note(run: Run, log: RunLog) -> str:
    """Why `logs` shows the tail kept in the store, and whether it is all of the output
    (otherwise it starts mid-line, and a reader must know it is only the end)."""
    from .runlogs import TAIL_BYTES  # imported by open_log() already

    kept = f"{TAIL_BYTES // 1024} KiB"
    if log.other_host is not None:
        where = f"attempt {run.attempt} ran on {clean(log.other_host)}, which has its log file"
    else:
        where = f"the log file of attempt {run.attempt} is gone"
    if log.partial:
        return f"{where}; showing only the last {kept} of its output, kept in the store"
    return f"{where}; showing its output as kept in the store (all of it: under {kept})"


# ---------------------------------------------------------------------------------------------
# changing


@cli.command()
@click.argument("job_id", callback=stored_text)
@pass_ctx
def cancel(ctx: Context, job_id: str) -> None:
    """Cancel a pending, failed or running job (a running command is killed).

    \b
    Example:
      queuectl cancel job1
    """
    previous, command = ctx.queue.cancel(job_id)
    notes = {
        "ended": " (its command has ended)",
        "killed": " (its command was killed)",
        "left to its worker": " (its worker kills its command)",
    }
    click.echo(f"canceled {clean(job_id)}, was {previous.value}{notes.get(command, '')}")


@cli.group()
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


@cli.group("config")
def config_group() -> None:
    """Read and change settings shared by every worker of this store.

    \b
    Example:
      queuectl config set max-retries 5
      queuectl config list
    """


@config_group.command("list")
@json_option
@pass_reader
def config_list(ctx: Context, as_json: bool) -> None:
    """Show each key's value in effect and where it comes from (env, store or default).

    \b
    Example:
      queuectl config list
    """
    entries = ctx.queue.config_entries()
    if as_json:
        emit_json({e.key: {"value": e.value, "source": e.source} for e in entries})
        return
    click.echo(table(("KEY", "VALUE", "SOURCE"), [(e.key, e.value, e.source) for e in entries]))


@config_group.command("get")
@click.argument("key")
@pass_reader
def config_get(ctx: Context, key: str) -> None:
    """Print the value of KEY in effect for this process.

    \b
    Example:
      queuectl config get backoff-base
    """
    click.echo(ctx.queue.config_get(key))


@config_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@pass_ctx
def config_set(ctx: Context, key: str, value: str) -> None:
    """Store a value for KEY.

    VALUE is a plain decimal number such as 5 or 2.5 (a whole number for max-retries),
    stored and shown in canonical form: 007 becomes 7, 2.50 becomes 2.5.

    \b
    Example:
      queuectl config set job-timeout 600
    """
    click.echo(f"{key} = {ctx.queue.config_set(key, value)}")


@config_group.command("unset")
@click.argument("key")
@pass_ctx
def config_unset(ctx: Context, key: str) -> None:
    """Remove the stored value of KEY, back to its default.

    \b
    Example:
      queuectl config unset job-timeout
    """
    removed = ctx.queue.config_unset(key)
    click.echo(f"{key} reset to its default" if removed else f"{key} was not set")
