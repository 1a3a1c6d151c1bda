"""The shape of queuectl/cli/ (issue 13): commands load lazily, the modules import each other
in one direction only, and nothing reaches into click's private names, which change between
click releases without notice."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import click
from conftest import ROOT

import queuectl.cli
from queuectl.cli import COMMANDS, cli
from queuectl.cli.base import load_command

CLI_DIR = ROOT / "queuectl" / "cli"
PACKAGE = "queuectl.cli"


def module_name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def imported_modules(path: Path) -> set[str]:
    """Modules of queuectl.cli that path imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = PACKAGE.split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in CLI_DIR.glob("*.py")}
    return found & modules - {module_name(path)}


def test_cli_modules_import_each_other_in_one_direction_only():
    graph = {module_name(path): imported_modules(path) for path in CLI_DIR.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, "import cycle: " + " -> ".join((*trail, module))
        if module not in done:
            for target in graph[module]:
                visit(target, (*trail, module))
            done.add(module)

    for module in graph:
        visit(module, ())
    # The root names its commands by import path only.
    assert graph[PACKAGE] == {f"{PACKAGE}.base"}


# click's private modules (click._compat …), its underscore names and the storage name it
# reserves for its own help option.
PRIVATE_CLICK = re.compile(r"\bclick(\.\w+)*\._|from click(\.\w+)* import[^\n]*\b_|_click_")


def test_nothing_reaches_into_clicks_private_names():
    for path in (ROOT / "queuectl").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not PRIVATE_CLICK.search(text), f"{path}: {PRIVATE_CLICK.search(text)[0]}"
    # Nor an underscore attribute of a click object: in the CLI, only our own Context keeps
    # one (its open queue).
    for path in CLI_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and re.match(r"_(?!_)", node.attr):
                assert node.attr == "_queue", f"{path.name}:{node.lineno}: .{node.attr}"


def test_every_lazy_command_loads_under_its_name():
    assert cli.list_commands(click.Context(cli)) == sorted(COMMANDS)
    for name, import_path in COMMANDS.items():
        assert load_command(import_path).name == name, import_path


def test_importing_the_root_builds_no_command():
    # In a fresh interpreter: this one has loaded them all already.
    code = "import sys, queuectl.cli; print(sorted(m for m in sys.modules if 'queuectl.cli' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert out.strip() == str(["queuectl.cli", "queuectl.cli.base"])
    assert queuectl.cli.__file__.startswith(str(CLI_DIR))
