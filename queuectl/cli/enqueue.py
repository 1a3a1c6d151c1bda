"""`queuectl enqueue`: add jobs from a JSON spec, from flags, or in bulk from stdin.

It runs in shell loops, so this module imports only what adding a job needs: nothing of the
other commands, no formatting, nothing of the worker side.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

import click

from ..specs import SpecError, check_env_name
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


def env_from_flags(given: Sequence[str]) -> dict[str, str]:
    """The variables of `--env NAME=VALUE` and `--env NAME` (this process's value of NAME,
    which must be set: copying nothing would hide a mistake until the job runs)."""
    env: dict[str, str] = {}
    for item in given:
        name, equals, value = item.partition("=")
        check_env_name(name)
        if not equals:
            if name not in os.environ:
                raise SpecError(f"--env {name}: {name} is not set in this environment")
            value = os.environ[name]
        if name in env:
            raise SpecError(f"--env {name} is given twice")
        env[name] = value
    return env


def absolute_folder(folder: str) -> str:
    """--cwd as given, or resolved against this process's folder when relative: the enqueuer
    means the folder it names from where it stands, not from wherever a worker runs."""
    if not folder or "\x00" in folder or os.path.isabs(folder):
        return folder  # as given; the spec's checks name any problem
    try:
        return os.path.abspath(folder)
    except OSError as exc:  # the current folder was removed
        raise SpecError(f"--cwd {folder}: cannot resolve it here: {exc.strerror}") from None


def say_existing(job_id: str) -> None:
    """The note on stderr for a spec whose unique_key an unfinished job holds (SPEC §7)."""
    click.echo(f"already queued: {job_id}", err=True)


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
@click.option(
    "--after", multiple=True, metavar="ID", help="Run once job ID has completed; repeatable."
)
@click.option(
    "--unique-key",
    metavar="KEY",
    help="If an unfinished job has KEY, add nothing and print its id.",
)
@click.option("--cwd", metavar="DIR", help="Run the command in DIR (relative: to here).")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Set NAME for the command (alone: copy this shell's value); repeatable.",
)
@pass_ctx
def enqueue(ctx: Context, spec_json: str | None, command: str | None, **flags) -> None:
    """Add a job; prints its id. SPEC_JSON '-' reads one JSON spec a line from stdin.

    A job whose unique key an unfinished job holds is not added: that job's id is printed
    instead, and "already queued: ID" on stderr (exit 0).

    \b
    Examples:
      queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":2}'
      queuectl enqueue --command 'make test' --priority 5 --timeout 600
      printf '%s\\n' '{"command":"echo a"}' '{"command":"echo b"}' | queuectl enqueue -
      B=$(queuectl enqueue -c './build.sh' --cwd src --env TOKEN --env MODE=release)
      queuectl enqueue -c './deploy.sh' --after "$B" --unique-key deploy
    """
    given = {key: value for key, value in flags.items() if value is not None and value != ()}
    if spec_json is not None and (command is not None or given):
        raise click.UsageError("give either SPEC_JSON or --command with options, not both")
    if "run_at" in given and "delay" in given:
        raise click.UsageError("give --run-at or --delay, not both")
    if spec_json == "-":
        added = ctx.queue.add_lines(stdin_lines())
        for job in added:
            if job.existing:
                say_existing(job.id)
        if added:
            sys.stdout.write("\n".join(job.id for job in added) + "\n")
        return
    if spec_json is not None:
        job = ctx.queue.add_json(spec_json)
    elif command is None:
        raise click.UsageError("give a SPEC_JSON argument, '-' for stdin, or --command")
    else:
        names = {"job_id": "id", "queue_name": "queue"}
        spec = {"command": command, **{names.get(key, key): value for key, value in given.items()}}
        if "after" in spec:
            spec["after"] = list(spec["after"])
        if "cwd" in spec:
            spec["cwd"] = absolute_folder(spec["cwd"])
        if "env" in spec:
            spec["env"] = env_from_flags(spec["env"])
        job = ctx.queue.add(spec)
    if job.existing:
        say_existing(job.id)
    click.echo(job.id)
