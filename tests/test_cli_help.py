"""Every command and subcommand has --help with an example (STYLE: sqlite-utils), reachable
through `python -m queuectl`, and asking for help never touches a store."""

from __future__ import annotations

import click
import pytest
from clikit import SPEC_COMMANDS, assert_ok, files_under
from conftest import CLI

from queuectl.cli import cli as root


def subcommands(command: click.Command) -> dict[str, click.Command]:
    """A group's subcommands as click's public API finds them, as any tool that walks the tree
    (docs, completion) does: the root imports each one's module on demand."""
    if not isinstance(command, click.Group):
        return {}
    ctx = click.Context(command)
    return {name: command.get_command(ctx, name) for name in command.list_commands(ctx)}


def command_paths(command: click.Command, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, sub in sorted(subcommands(command).items()):
        yield from command_paths(sub, (*prefix, name))


PATHS = list(command_paths(root))


def test_the_command_tree_is_exactly_the_spec_commands():
    leaves = {" ".join(path) for path in PATHS if not subcommands(command_at(path))}
    assert leaves == SPEC_COMMANDS


def test_each_command_is_listed_under_its_own_name():
    # The root's lazy table names each command apart from the command itself; click builds
    # command paths (help, usage errors, TIMEOUT_BOUNDED) from the command's own name.
    names = {" ".join(path): command_at(path).name for path in PATHS[1:]}
    assert {path: name for path, name in names.items() if name != path.split()[-1]} == {}


def command_at(path: tuple[str, ...]) -> click.Command:
    command = root
    for name in path:
        command = subcommands(command)[name]
    return command


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "queuectl")
def test_help_has_an_example_and_touches_no_store(path, tmp_path):
    cli = CLI(str(tmp_path / "never.db"), tmp_path)
    cli.env["HOME"] = str(tmp_path)
    out = assert_ok(cli(*path, "--help"))
    assert out.startswith("Usage: queuectl"), out
    assert "Example" in out, out
    command = command_at(path)
    for name in subcommands(command):  # a group lists its subcommands
        assert name in out, name
    assert files_under(tmp_path) == set()


def test_short_help_option_and_version(tmp_path):
    cli = CLI(str(tmp_path / "never.db"), tmp_path)
    assert assert_ok(cli("-h")) == assert_ok(cli("--help"))
    assert "queuectl" in assert_ok(cli("--version"))
    assert files_under(tmp_path) == set()


@pytest.mark.parametrize("group", ["worker", "dlq", "config", "queue", "schedule"])
def test_a_group_without_a_command_shows_its_help_as_lines(group, tmp_path):
    cli = CLI(str(tmp_path / "never.db"), tmp_path)
    result = cli(group)
    assert result.returncode == 2
    shown = result.stdout + result.stderr
    assert shown.startswith(f"Usage: queuectl {group}"), shown
    assert "\\n" not in shown and shown.count("\n") > 5, shown
    assert files_under(tmp_path) == set()
