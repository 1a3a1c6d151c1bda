"""The `queuectl` command line: parse, call the queue, format, map errors to exit codes.

Exit status: 0 success, 1 a failed operation (bad spec, unknown job, store unusable),
2 usage errors (Click's own). No business rule and no SQL here.

`enqueue` runs in shell loops, so this module holds only what it needs: the root group, the
plumbing every command shares, and `enqueue`. The other commands are in commands.py, imported
the first time one of them is looked up or the commands are listed (`--help`, completion);
building their options would cost `enqueue` about a millisecond.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator

import click

from . import __version__
from .config import ConfigError
from .errors import QueueError
from .models import SpecError
from .queue import Queue

# Commands whose --timeout bounds the whole call, waits on the store included (SPEC §5: "a CLI
# call honours its own --timeout", also when the network goes silent): the store they open
# gets a deadline that long from then, plus TIMEOUT_GRACE for the last answer to arrive.
# (`enqueue --timeout` is a job's field, not a bound on the call.)
TIMEOUT_BOUNDED = {("worker", "stop")}
TIMEOUT_GRACE = 2.0


def command_deadline() -> float | None:
    """The time.monotonic() by which the running command must be done with its store, if its
    own --timeout says so (TIMEOUT_BOUNDED)."""
    ctx = click.get_current_context(silent=True)
    path: list[str] = []
    node = ctx
    while node is not None and node.parent is not None:
        path.insert(0, node.command.name or "")
        node = node.parent
    timeout = ctx.params.get("timeout") if ctx is not None else None
    if tuple(path) not in TIMEOUT_BOUNDED or timeout is None:
        return None
    return time.monotonic() + timeout + TIMEOUT_GRACE


class Context:
    """Resolves the store once and opens it only when a command needs it."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        # Set for commands that only look (see pass_reader): they can read a store on
        # read-only media, where every other command is refused at once, naming the cause.
        self.reads_only = False
        self._queue: Queue | None = None

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            self._queue = Queue.open(
                self.db, reads_only=self.reads_only, deadline=command_deadline()
            )
        return self._queue

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None


# Click builds each command's -h/--help option on every run, help asked for or not, and looks
# its help text up in gettext catalogs each time: that imports `locale` and searches the disk,
# about 1.5 ms of every `enqueue`. Ours is the same option with click's English text (click
# ships no catalogs and queuectl installs none), stored under the name click 8.5 gives it.
HELP_TEXT = "Show this message and exit."
HELP_STORAGE_NAME = "_click_default_help"


def show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """What click's help option does: print the help page and exit."""
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


class Command(click.Command):
    """A click command whose help option is built without gettext (see HELP_TEXT)."""

    _untranslated_help: click.Option | None = None

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        names = self.get_help_option_names(ctx)
        if not names or not self.add_help_option:
            return None
        # One object per command, as in click: eager parameters are told apart by identity.
        if self._untranslated_help is None:
            self._untranslated_help = click.Option(
                [*names, HELP_STORAGE_NAME],
                is_flag=True,
                is_eager=True,
                expose_value=False,
                callback=show_help,
                help=HELP_TEXT,
            )
        return self._untranslated_help


class Group(Command, click.Group):
    """A click group of such commands and groups."""

    command_class = Command
    group_class = type  # subgroups are Groups too


class QueuectlGroup(Group):
    """The root: turns domain errors raised anywhere below into one-line messages with exit
    status 1, and loads the commands of commands.py when they are first needed."""

    group_class = Group

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (QueueError, SpecError, ConfigError) as exc:
            # Messages quote what users and servers gave (paths, ids, a database's name):
            # control characters are escaped here, once for every command (SPEC §4).
            raise click.ClickException(_escaped(str(exc))) from None
        except click.ClickException as exc:
            exc.message = _escaped(exc.message)
            raise
        except BrokenPipeError:
            # `queuectl list | head`: the reader left; that is not an error of ours.
            sys.stderr.close()
            raise SystemExit(0) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            # Also for a name that is no command: click's "did you mean" looks at them all.
            load_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)


def load_commands() -> None:
    """Register the commands of commands.py on `cli` (once: a module is imported once)."""
    from . import commands  # noqa: F401


pass_ctx = click.make_pass_decorator(Context)


def pass_reader(func: Callable) -> Callable:
    """pass_ctx for a command that never changes the store: it opens the store read-only
    where the store's file system is read-only (a read-only mount, a snapshot)."""

    @functools.wraps(func)
    def reader(ctx: Context, *args, **kwargs):
        ctx.reads_only = True
        return func(ctx, *args, **kwargs)

    return pass_ctx(reader)


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


def print_version(ctx: click.Context) -> None:
    # Not click.version_option: it looks up gettext catalogs (and imports locale) at import
    # time, a millisecond on every `enqueue` in a shell loop.
    click.echo(f"queuectl, version {__version__}")
    ctx.exit()


def load_dotenv_if_present() -> None:
    """A .env in the current folder, never overriding variables already set (SPEC §1).
    python-dotenv is imported only when there is such a file: enqueue runs in shell loops."""
    if os.path.isfile(".env"):
        from dotenv import load_dotenv

        try:
            load_dotenv(".env", override=False, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read .env: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise click.ClickException(
                f".env is not valid UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None


@click.group(cls=QueuectlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    metavar="TARGET",
    help="Store to use: a file path, sqlite:///rel/path, sqlite:////abs/path or "
    "postgresql://… (default: $QUEUECTL_DB, else queuectl.db in the user app folder).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: print_version(ctx) if value else None,
    help="Show the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """queuectl: a background job queue for shell commands.

    \b
    Example:
      queuectl enqueue '{"id":"job1","command":"sleep 2"}'
      queuectl worker start --count 3
    """
    load_dotenv_if_present()
    state = Context(db)
    ctx.obj = state
    ctx.call_on_close(state.close)


# ---------------------------------------------------------------------------------------------
# enqueue


@cli.command()
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


def _escaped(message: str) -> str:
    from .formatting import clean  # only on the way out with an error: not on enqueue's path

    return clean(message)


def main() -> None:
    cli(prog_name="queuectl")
