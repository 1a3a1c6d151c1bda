"""The `queuectl` command line: parse, call the queue, format, map errors to exit codes.

Exit status: 0 success, 1 a failed operation (bad spec, unknown job, store unusable),
2 usage errors (Click's own). No business rule and no SQL here.

This module is the root group and its options. The commands live one verb group a module
(enqueue.py, worker.py, jobs.py, dlq.py, config.py, wait.py), named here by import path and
imported only when click looks one up (base.LazyGroup): `enqueue`, run in shell loops, loads its own
module and nothing of the others. What they all share is in base.py.
"""

from __future__ import annotations

import click

from .. import __version__
from ..config import load_dotenv_file
from .base import Context, QueuectlGroup

# Each command of the root, as "module:attribute" (SPEC §4). Nothing is imported from here:
# adding a command means adding its line.
COMMANDS = {
    "enqueue": "queuectl.cli.enqueue:enqueue",
    "worker": "queuectl.cli.worker:worker",
    "status": "queuectl.cli.jobs:status",
    "list": "queuectl.cli.jobs:list_command",
    "show": "queuectl.cli.jobs:show",
    "logs": "queuectl.cli.jobs:logs",
    "cancel": "queuectl.cli.jobs:cancel",
    "dlq": "queuectl.cli.dlq:dlq",
    "config": "queuectl.cli.config:config_group",
    "wait": "queuectl.cli.wait:wait",
    "queue": "queuectl.cli.queues:queue_group",
    "schedule": "queuectl.cli.schedule:schedule",
    "prune": "queuectl.cli.prune:prune",
    "metrics": "queuectl.cli.metrics:metrics",
    "web": "queuectl.cli.web:web",
}


def print_version(ctx: click.Context) -> None:
    """Print the version and end the command."""
    # Not click.version_option: it looks up gettext catalogs (and imports locale) at import
    # time, a millisecond on every `enqueue` in a shell loop.
    click.echo(f"queuectl, version {__version__}")
    ctx.exit()


@click.group(
    cls=QueuectlGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
    load_dotenv_file()
    state = Context(db)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Run the command line as `queuectl`."""
    cli(prog_name="queuectl")
