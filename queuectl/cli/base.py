"""What every queuectl command shares: the context that opens the store, the command and group
classes (the help option, lazy loading of subcommands) and the mapping of domain errors to
exit status 1.

Imported on every run, `enqueue` included, and by every command module; it imports none of
them, so the CLI's modules form no import cycle.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import click

from ..config import ConfigError
from ..errors import QueueError
from ..queue import Queue
from ..specs import SpecError

# Commands whose --timeout bounds the whole call, waits on the store included (SPEC §5: "a CLI
# call honours its own --timeout", also when the network goes silent): the store they open
# gets a deadline that long from then, plus TIMEOUT_GRACE for the last answer to arrive.
# (`enqueue --timeout` is a job's field, not a bound on the call.)
TIMEOUT_BOUNDED = {("worker", "stop"), ("wait",)}
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
        """The queue over this command's store, opened on first use."""
        if self._queue is None:
            # The root group loaded .env already, before any option was read.
            self._queue = Queue.open(
                self.db, reads_only=self.reads_only, deadline=command_deadline(), dotenv=False
            )
        return self._queue

    def close(self) -> None:
        """Close the store if it was opened (the root group calls this when a command ends)."""
        if self._queue is not None:
            self._queue.close()
            self._queue = None


pass_ctx = click.make_pass_decorator(Context)


def pass_reader(func: Callable) -> Callable:
    """pass_ctx for a command that never changes the store: it opens the store read-only
    where the store's file system is read-only (a read-only mount, a snapshot)."""

    @functools.wraps(func)
    def reader(ctx: Context, *args, **kwargs):
        ctx.reads_only = True
        return func(ctx, *args, **kwargs)

    return pass_ctx(reader)


# Click's own help option (Command.get_help_option) is built on every run, help asked for or
# not, and looks its text up in gettext catalogs each time: that imports `locale` and searches
# the disk, about 1.5 ms of every `enqueue`. Ours is the same option with click's English text
# (click ships no catalogs and queuectl installs none), built through click's public API.
HELP_TEXT = "Show this message and exit."
# The option's parameter name. It never reaches a command (expose_value=False); it only has to
# differ from every parameter of ours, as click's own reserved name does.
HELP_PARAM_NAME = "queuectl_help"


def show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """What click's help option does: print the help page and exit."""
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


class Command(click.Command):
    """A click command whose help option is built without gettext (see HELP_TEXT)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.english_help_option: click.Option | None = None

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        """The -h/--help option, built once per command."""
        names = self.get_help_option_names(ctx)
        if not names or not self.add_help_option:
            return None
        # One object per command, as in click: eager parameters are told apart by identity.
        if self.english_help_option is None:
            self.english_help_option = click.Option(
                [*names, HELP_PARAM_NAME],
                is_flag=True,
                is_eager=True,
                expose_value=False,
                callback=show_help,
                help=HELP_TEXT,
            )
        return self.english_help_option


class Group(Command, click.Group):
    """A click group of such commands and groups."""

    command_class = Command
    group_class = type  # subgroups are Groups too


def load_command(import_path: str) -> click.Command:
    """The command named by a "package.module:attribute" import path, importing its module."""
    module_name, _, attribute = import_path.partition(":")
    # Not importlib.import_module: it takes importlib's own path, which `python -X importtime`
    # does not report, and that is how the enqueue path is watched (tests, benchmarks).
    __import__(module_name)
    command = getattr(sys.modules[module_name], attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{import_path} is {command!r}, not a click command")
    return command


class LazyGroup(Group):
    """A group whose subcommands are imported the first time click looks one up: Click's
    documented pattern ("Lazily loading subcommands"). `lazy_commands` maps each command's
    name to its "module:attribute" import path; list_commands() names them all and
    get_command() imports only the module of the one asked for, so that running one command
    does not build the others' options (about a millisecond) nor import what they use."""

    group_class = Group

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, loaded or not, sorted as click sorts its own."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand called cmd_name, imported on first use; None if there is none."""
        if cmd_name in self.lazy_commands:
            self.load(cmd_name)
        elif cmd_name not in self.commands:
            # A name that is no command loads them all: click's "did you mean" suggests close
            # names from `commands`, and a mistake is no hot path.
            for name in self.lazy_commands:
                self.load(name)
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> None:
        """Import the lazy command called name and register it, unless that is done."""
        if name not in self.commands:
            self.add_command(load_command(self.lazy_commands[name]), name)


# Click 8.2+ shows a group's help through this error when no command is given: its message is
# the help text, whose lines must stay lines (Click 8.1 prints the help itself).
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class QueuectlGroup(LazyGroup):
    """The root: turns domain errors raised anywhere below into one-line messages with exit
    status 1."""

    def invoke(self, ctx: click.Context):
        """Run the command line, mapping errors at this one boundary."""
        try:
            return super().invoke(ctx)
        except (QueueError, SpecError, ConfigError) as exc:
            # Messages quote what users and servers gave (paths, ids, a database's name):
            # control characters are escaped here, once for every command (SPEC §4).
            raise click.ClickException(escaped(str(exc))) from None
        except NO_ARGS_IS_HELP:
            raise  # a group called without a command: its help, as written (exit 2)
        except click.ClickException as exc:
            exc.message = escaped(exc.message)
            raise
        except BrokenPipeError:
            # `queuectl list | head`: the reader left; that is not an error of ours.
            sys.stderr.close()
            raise SystemExit(0) from None


def escaped(message: str) -> str:
    """The message with control characters escaped, fit for one line on a terminal."""
    from ..formatting import clean  # only on the way out with an error: not on enqueue's path

    return clean(message)
