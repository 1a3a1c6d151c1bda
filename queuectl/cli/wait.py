"""`queuectl wait`: block until jobs have finished, for scripts (SPEC §7). Also how `logs
--follow` ends: the same exit status and lines for jobs that did not complete."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import click

from ..formatting import clean
from ..models import ENDED_BADLY, Job
from .base import Command, Context, pass_reader
from .options import stored_text

# Exit status of `wait` and `logs --follow` (SPEC §7); 0 and 1 as for every command.
EXIT_FAILED = 3  # a job ended dead or canceled
EXIT_TIMEOUT = 124  # --timeout passed first, as timeout(1) says it
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell says it


@click.command(cls=Command)
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB_ID...", callback=stored_text)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Give up after this many seconds (exit 124); the jobs are left as they are.",
)
@pass_reader
def wait(ctx: Context, job_ids: tuple[str, ...], timeout: float | None) -> None:
    """Block until every job named has finished.

    Finished means completed, dead or canceled; nothing is changed. Exit status: 0 when
    all completed; 3 when any ended dead or canceled, with a line "ID: STATE (LAST_ERROR)" on
    stderr for each; 124 when --timeout passed first; 1 when an id is unknown (checked
    before waiting) or the store cannot be used. With several jobs and a terminal on stderr,
    a progress bar is shown there.

    \b
    Example:
      queuectl wait build test --timeout 600 && echo "all done"
    """
    with interruptible(), progress_bar(len(set(job_ids))) as on_progress:
        result = ctx.queue.wait(job_ids, timeout=timeout, on_progress=on_progress)
    if result.timed_out:
        unfinished = result.unfinished
        names = ", ".join(clean(job.id, 40) for job in unfinished[:5])
        more = f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else ""
        click.echo(f"queuectl: timed out; not finished: {names}{more}", err=True)
        raise SystemExit(EXIT_TIMEOUT)
    status = final_status(result.jobs.values())
    if status:
        raise SystemExit(status)


def final_status(jobs: Iterable[Job]) -> int:
    """The exit status for finished jobs (0, or 3 when any ended dead or canceled), after one
    line on stderr for each that did not complete."""
    status = 0
    for job in jobs:
        if job.state in ENDED_BADLY:
            click.echo(f"{clean(job.id)}: {job.state.value} ({clean(job.last_error)})", err=True)
            status = EXIT_FAILED
    return status


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C ends the command quietly with status 130 (click would print "Aborted!", exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None


@contextmanager
def progress_bar(total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback for Queue.wait drawing a bar on stderr, when there are several jobs
    and stderr is a terminal; None otherwise (nothing is drawn, and no job is read for it)."""
    if total < 2 or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(
        length=total, label="finished", file=sys.stderr, show_eta=False, show_pos=True
    ) as bar:

        def advance(finished: int, _total: int) -> None:
            bar.update(finished - bar.pos)

        yield advance
