"""`queuectl worker start|stop`: run a pool of workers in the foreground, and ask every
worker of the store to stop."""

from __future__ import annotations

import sys

import click

from .base import Context, Group, pass_ctx
from .options import stored_text


@click.group("worker", cls=Group)
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
    from ..supervisor import Supervisor

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
