"""`queuectl enqueue`: add jobs from a JSON spec, from flags, or in bulk from stdin.

It runs in shell loops, so this module imports only what adding a job needs: nothing of the
other commands, no formatting, nothing of the worker side.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from ..specs import SpecError
from .base import Command, Context, pass_ctx


def stdin_lines() -> Iterator[str]:
    """Lines of standard input; input that does not decode is a bad spec (exit 1), not a
    traceback. Decoding happens before any job is added, so nothing is written."""
    lines = iter(sys.stdin)
    try:
        first = next(lines, None)
        if first is None:
            return
        # PowerShell (and Notepad) start UTF-8 text with a byte order mark, which JSON does
        # not allow: only there, at the very start of the input, is it no character.
        yield first.removeprefix("\ufeff")
        yield from lines
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"standard input is not valid {exc.encoding} text ({exc.reason}); nothing was enqueued"
        ) from None


@click.command("enqueue", cls=Command)
@click.argument("spec_json", required=False, metavar="[SPEC_JSON]")
@click.option("--command", "-c", "command", help="Shell command to run.")
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--max-retries", type=int, help="Retries after the first run (default: config).")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--queue", "-q", "queue_name", help="Named queue (default: default).")
@click.option("--run-at", metavar="TIME", help="ISO-8601 time; not started before it.")
@click.option("--delay", type=float, metavar="SECONDS", help="Start no sooner than this.")
@click.option("--timeout", type=float, metavar="SECONDS", help="Kill after this; 0 = none.")
@pass_ctx
def enqueue(ctx: Context, spec_json: str | None, command: str | None, **flags) -> None:
    """Add a job; prints its id. SPEC_JSON '-' reads one JSON spec a line from stdin.

    \b
    Examples:
      queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":2}'
      queuectl enqueue --command 'make test' --priority 5 --timeout 600
      printf '%s\\n' '{"command":"echo a"}' '{"command":"echo b"}' | queuectl enqueue -
    """
    given = {key: value for key, value in flags.items() if value is not None}
    if spec_json is not None and (command is not None or given):
        raise click.UsageError("give either SPEC_JSON or --command with options, not both")
    if "run_at" in given and "delay" in given:
        raise click.UsageError("give --run-at or --delay, not both")
    if spec_json == "-":
        ids = ctx.queue.enqueue_lines(stdin_lines())
        if ids:
            sys.stdout.write("\n".join(ids) + "\n")
        return
    if spec_json is not None:
        click.echo(ctx.queue.enqueue_json(spec_json))
        return
    if command is None:
        raise click.UsageError("give a SPEC_JSON argument, '-' for stdin, or --command")
    names = {"job_id": "id", "queue_name": "queue"}
    spec = {"command": command, **{names.get(key, key): value for key, value in given.items()}}
    click.echo(ctx.queue.enqueue(spec))
