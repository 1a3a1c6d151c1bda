"""`queuectl config list|get|set|unset`: settings shared by every worker of the store."""

from __future__ import annotations

import click

from ..formatting import table
from .base import Context, Group, pass_ctx, pass_reader
from .options import emit_json, json_option


@click.group("config", cls=Group)
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
    stored and shown in canonical form: 007 becomes 7, 2.50 becomes 2.5. For retention it
    is a DURATION: seconds, or a number with a unit s, m, h or d (90s, 15m, 1.5h, 7d).

    \b
    Examples:
      queuectl config set job-timeout 600
      queuectl config set retention 7d
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
