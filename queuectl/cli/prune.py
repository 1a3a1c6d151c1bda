"""`queuectl prune`: delete finished jobs older than a DURATION, with their run history and
log files (SPEC §8, retention)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import click

from .. import config
from ..models import PRUNED_BY_DEFAULT
from ..queue import DEFAULT_PRUNE_AGE
from ..store.pruning import PRUNE_BATCH
from .base import Command, Context, pass_ctx
from .options import emit_json, json_option

PRUNABLE_STATES = ("completed", "canceled", "dead")


class Duration(click.ParamType):
    """A DURATION option (SPEC §8): seconds, or a number with a unit s, m, h or d. A bad one
    is a usage error (exit 2), as for any bad option value."""

    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            return config.parse_duration(value)
        except config.ConfigError as exc:
            self.fail(str(exc), param, ctx)


@click.command(cls=Command)
@click.option(
    "--older-than",
    type=Duration(),
    default=DEFAULT_PRUNE_AGE,
    show_default=True,
    metavar="DURATION",
    help="Only jobs whose last change is older than this: seconds, or a number with a unit "
    "s, m, h or d (90s, 15m, 1.5h, 7d); 0 takes every finished job.",
)
@click.option(
    "--state",
    "states",
    type=click.Choice(PRUNABLE_STATES),
    multiple=True,
    help="Only jobs in this state; repeatable. [default: completed, canceled]",
)
@click.option("--dry-run", is_flag=True, help="Count the jobs that would go; delete nothing.")
@json_option
@pass_ctx
def prune(
    ctx: Context, older_than: float, states: tuple[str, ...], dry_run: bool, as_json: bool
) -> None:
    """Delete finished jobs, with their run history and their log files on this host.

    Prints "pruned N jobs" ("would prune N jobs" with --dry-run). Unfinished jobs are never
    deleted. Workers also prune on their own when the config key retention is set. Deleting
    goes in short batches, so running workers keep claiming meanwhile; with a terminal on
    stderr, the progress is shown there.

    \b
    Examples:
      queuectl prune --older-than 30d
      queuectl prune --older-than 0 --state dead --dry-run
    """
    chosen = states or tuple(state.value for state in PRUNED_BY_DEFAULT)
    with progress_bar(ctx, older_than, chosen, dry_run) as on_batch:
        count = ctx.queue.prune(older_than, chosen, dry_run=dry_run, on_batch=on_batch)
    if as_json:
        emit_json({"would_prune" if dry_run else "pruned": count})
    else:
        click.echo(f"{'would prune' if dry_run else 'pruned'} {count} jobs")


@contextmanager
def progress_bar(
    ctx: Context, older_than: float, states: Sequence[str], dry_run: bool
) -> Iterator[Callable[[Sequence[str]], None] | None]:
    """A callback for Queue.prune drawing a bar on stderr for a prune of more than one batch,
    when stderr is a terminal; None otherwise (and the jobs are not counted first)."""
    if dry_run or not sys.stderr.isatty():
        yield None
        return
    total = ctx.queue.prune(older_than, states, dry_run=True)
    if total <= PRUNE_BATCH:
        yield None
        return
    with click.progressbar(length=total, label="pruning", file=sys.stderr, show_pos=True) as bar:
        yield lambda ids: bar.update(len(ids))
