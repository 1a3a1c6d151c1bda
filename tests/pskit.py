"""Reading the PowerShell files of the repository with tree-sitter (tree_sitter_powershell), for
tests that cannot run PowerShell itself: syntax, the module's functions and manifest, its help,
and the queuectl calls it makes. Not a test module itself.

The module is a loader, Queuectl.psm1, that dot-sources the files named by its two literal lists
($script:QueuectlPrivateFiles from Private/, then $script:QueuectlPublicFiles from Public/):
module_scripts() reads those lists, so everything here sees exactly the files PowerShell loads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import tree_sitter
import tree_sitter_powershell

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "powershell" / "Queuectl"
PSM1 = MODULE_DIR / "Queuectl.psm1"
PSD1 = MODULE_DIR / "Queuectl.psd1"
PRIVATE_DIR = MODULE_DIR / "Private"
PUBLIC_DIR = MODULE_DIR / "Public"
PRIVATE = PRIVATE_DIR / "QueuectlCli.ps1"  # where Invoke-QueuectlCli and the JSON reading live
CORE_FLOW = ROOT / "tests" / "test_core_flow.ps1"
SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    "build",
    "dist",
}
CLI_HELPER = "Invoke-QueuectlCli"


@cache
def parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


@dataclass(frozen=True)
class Parsed:
    """One parsed file: its tree and its bytes (node offsets are byte offsets)."""

    path: Path
    tree: tree_sitter.Tree
    source: bytes

    def text(self, node: tree_sitter.Node) -> str:
        return self.source[node.start_byte : node.end_byte].decode("utf-8")


@cache
def parse(path: Path) -> Parsed:
    source = path.read_bytes()
    return Parsed(path, parser().parse(source), source)


def walk(node: tree_sitter.Node):
    """Every node under node, node included, in source order."""
    yield node
    for child in node.children:
        yield from walk(child)


def powershell_files() -> list[Path]:
    """Every .ps1, .psm1 and .psd1 file of the checkout (tools' folders left out)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found += [Path(folder) / f for f in sorted(files) if f.endswith((".ps1", ".psm1", ".psd1"))]
    return found


def syntax_problems(parsed: Parsed) -> list[str]:
    """'line:column: ERROR/MISSING ...' for every node the grammar could not make sense of."""
    problems = []
    for node in walk(parsed.tree.root_node):
        if node.is_error or node.type == "ERROR" or node.is_missing:
            kind = "MISSING" if node.is_missing else "ERROR"
            line, column = node.start_point
            snippet = parsed.text(node)[:60].replace("\n", "\\n")
            problems.append(f"{parsed.path.name}:{line + 1}:{column + 1}: {kind} {snippet!r}")
    if parsed.tree.root_node.has_error and not problems:
        problems.append(f"{parsed.path.name}: the tree has an error")
    return problems


def string_value(parsed: Parsed, node: tree_sitter.Node) -> str | None:
    """The value of a string literal ('x' or "x" without variables), else None."""
    for sub in walk(node):
        if sub.type == "string_literal":
            raw = parsed.text(sub)
            if raw[:1] == "'" and raw[-1:] == "'":
                return raw[1:-1].replace("''", "'")
            if raw[:1] == '"' and raw[-1:] == '"' and "$" not in raw and "`" not in raw:
                return raw[1:-1]
            return None
    return None


def strings_in(parsed: Parsed, node: tree_sitter.Node) -> list[str]:
    """The values of every string literal under node, in order (e.g. of @('a', 'b'))."""
    values = []
    for sub in walk(node):
        if sub.type == "string_literal":
            values.append(string_value(parsed, sub))
    return values


@dataclass
class Function:
    """A function_statement: its name, help comment, CmdletBinding arguments and parameters."""

    name: str
    node: tree_sitter.Node
    help: str
    binding: str | None
    parameters: dict[str, str] = field(default_factory=dict)  # name -> declared attributes text
    line: int = 0
    path: Path = ROOT
    text: str = ""  # the whole function_statement's source


def functions(parsed: Parsed) -> dict[str, Function]:
    """The functions defined at the top level of a file, by name."""
    found = {}
    for statement in walk(parsed.tree.root_node):
        if statement.type != "function_statement" or _inside_function(statement):
            continue
        name_node = next(c for c in statement.children if c.type == "function_name")
        comments = [c for c in statement.children if c.type == "comment"]
        body = next(c for c in statement.children if c.type == "script_block")
        param_block = next((c for c in body.children if c.type == "param_block"), None)
        binding = None
        parameters = {}
        if param_block is not None:
            for attribute in (n for n in param_block.children if n.type == "attribute_list"):
                for one in attribute.children:
                    if one.type == "attribute" and parsed.text(one).startswith("[CmdletBinding"):
                        binding = parsed.text(one)
            for sub in walk(param_block):
                if sub.type == "script_parameter":
                    variable = next(c for c in sub.children if c.type == "variable")
                    parameters[parsed.text(variable)[1:]] = parsed.text(sub)
        found[parsed.text(name_node)] = Function(
            name=parsed.text(name_node),
            node=statement,
            help=parsed.text(comments[0]) if comments else "",
            binding=binding,
            parameters=parameters,
            line=statement.start_point[0] + 1,
            path=parsed.path,
            text=parsed.text(statement),
        )
    return found


def _inside_function(node: tree_sitter.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.type == "function_statement":
            return True
        parent = parent.parent
    return False


def manifest(parsed: Parsed) -> dict[str, object]:
    """The top-level entries of a .psd1 hashtable: a string, a list of strings, or None (other)."""
    table = next(n for n in walk(parsed.tree.root_node) if n.type == "hash_literal_expression")
    body = next(c for c in table.children if c.type == "hash_literal_body")
    entries: dict[str, object] = {}
    for entry in (c for c in body.children if c.type == "hash_entry"):
        key = parsed.text(next(c for c in entry.children if c.type == "key_expression"))
        value = entry.children[
            entry.children.index(next(c for c in entry.children if c.type == "=")) + 1
        ]
        text = parsed.text(value).strip()
        if text.startswith("@("):
            entries[key] = strings_in(parsed, value)
        elif text.startswith(("'", '"')):
            entries[key] = string_value(parsed, value)
        else:
            entries[key] = None
    return entries


@dataclass
class CliCall:
    """One call of Invoke-QueuectlCli: the subcommand path and the options it may pass."""

    function: str
    line: int
    command: tuple[str, ...]
    options: dict[str, str]  # CLI option -> the PowerShell expression of its value
    json: bool
    has_argument: bool
    parameters: dict[str, str]  # every -Name of the call -> its value's text ('' for a switch)
    path: Path = ROOT

    @property
    def where(self) -> str:
        """'Function (Public/Jobs.ps1:12)', for failure messages."""
        return f"{self.function} ({self.path.relative_to(MODULE_DIR).as_posix()}:{self.line})"


def command_parameters(
    parsed: Parsed, command: tree_sitter.Node
) -> dict[str, tree_sitter.Node | None]:
    """-Name -> its value node (None for a switch) of one command's elements."""
    elements = next(c for c in command.children if c.type == "command_elements")
    items = [c for c in elements.children if c.type != "command_argument_sep"]
    found: dict[str, tree_sitter.Node | None] = {}
    for index, item in enumerate(items):
        if item.type != "command_parameter":
            continue
        following = items[index + 1] if index + 1 < len(items) else None
        name = parsed.text(item).split(":")[0]
        found[name] = (
            None if following is None or following.type == "command_parameter" else following
        )
    return found


def cli_calls(parsed: Parsed) -> list[CliCall]:
    """Every Invoke-QueuectlCli call in the file, with the function it is in ('' for a call
    outside any function, e.g. in an argument completer's script block)."""
    calls = []
    for node in walk(parsed.tree.root_node):
        if node.type != "command":
            continue
        name = next((c for c in node.children if c.type == "command_name"), None)
        if name is None or parsed.text(name) != CLI_HELPER:
            continue
        params = command_parameters(parsed, node)
        options: dict[str, str] = {}
        option_node = params.get("-Option")
        if option_node is not None:
            for entry in (n for n in walk(option_node) if n.type == "hash_entry"):
                key = string_value(parsed, entry.children[0])
                equals = next(c for c in entry.children if c.type == "=")
                value = entry.children[entry.children.index(equals) + 1]
                options[key] = parsed.text(value).strip()
        command_node = params.get("-Command")
        calls.append(
            CliCall(
                function=_enclosing_function(parsed, node),
                line=node.start_point[0] + 1,
                command=tuple(strings_in(parsed, command_node)) if command_node is not None else (),
                options=options,
                json="-Json" in params,
                has_argument="-Argument" in params,
                parameters={k: parsed.text(v) if v is not None else "" for k, v in params.items()},
                path=parsed.path,
            )
        )
    return calls


def _enclosing_function(parsed: Parsed, node: tree_sitter.Node) -> str:
    parent = node.parent
    while parent is not None:
        if parent.type == "function_statement":
            return parsed.text(next(c for c in parent.children if c.type == "function_name"))
        parent = parent.parent
    return ""


def member_names(parsed: Parsed) -> set[str]:
    """Names read with `.name` on a value (`$_.id`, `$status.jobs.dead`): JSON fields are the
    ones that start lowercase (.NET members are written PascalCase in these files)."""
    names = set()
    for node in walk(parsed.tree.root_node):
        if node.type == "member_name":
            names.add(parsed.text(node))
    return {n for n in names if re.fullmatch(r"[a-z][a-z0-9_]*", n)}


def script_lists(parsed: Parsed) -> dict[str, list[str | None]]:
    """`$script:NAME = @('a', 'b')` at the top level of a file (outside functions): NAME -> the
    strings of the list (None for an item that is not a plain string literal)."""
    found = {}
    for node in walk(parsed.tree.root_node):
        if node.type != "assignment_expression" or _inside_function(node):
            continue
        left, value = node.children[0], node.children[-1]
        name = re.fullmatch(r"\$script:(\w+)", parsed.text(left))
        if name and parsed.text(value).startswith("@("):
            found[name.group(1)] = strings_in(parsed, value)
    return found


def loaded_files() -> list[Path]:
    """The files Queuectl.psm1 dot-sources, in its load order (Private/ first, then Public/)."""
    lists = script_lists(parse(PSM1))
    return [PRIVATE_DIR / name for name in lists["QueuectlPrivateFiles"]] + [
        PUBLIC_DIR / name for name in lists["QueuectlPublicFiles"]
    ]


def module_scripts() -> list[Path]:
    """Every file of the module's code: the loader, then what it loads, in order."""
    return [PSM1, *loaded_files()]


def private_scripts() -> list[Path]:
    """The loaded files that hold private helpers (never exported)."""
    return [path for path in loaded_files() if path.parent == PRIVATE_DIR]


def _functions_of(paths: list[Path]) -> dict[str, Function]:
    found: dict[str, Function] = {}
    for path in paths:
        for name, function in functions(parse(path)).items():
            # A second definition would silently win in PowerShell: the later file's.
            assert name not in found, f"{name} defined in {found[name].path} and {path}"
            found[name] = function
    return found


def module_functions() -> dict[str, Function]:
    """The module's public functions: defined anywhere in the module but Private/."""
    private = set(private_scripts())
    return _functions_of([p for p in module_scripts() if p not in private])


def private_functions() -> dict[str, Function]:
    """The private helpers, defined in Private/."""
    return _functions_of(private_scripts())


def module_cli_calls() -> list[CliCall]:
    """Every Invoke-QueuectlCli call inside a function of any module file."""
    return [call for path in module_scripts() for call in cli_calls(parse(path))]
