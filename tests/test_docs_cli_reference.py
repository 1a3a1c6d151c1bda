"""The docs cannot drift from the CLI (STYLE: a CLI reference generated from --help, checked
by a test): docs/cli.md is what tools/cli_reference.py generates now, each of its sections is
what `queuectl … --help` prints, and every queuectl command line in the README and the guides
names commands and options that exist."""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from clikit import SPEC_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# Where users read command lines; docs/cli.md is checked whole, against the generator.
GUIDES = [
    README,
    ROOT / "QUICKSTART.md",
    ROOT / "WINDOWS_GUIDE.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"),
]
README_MAX_LINES = 220


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "tools" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = load_generator()
ROOT_GROUP = GEN.root_group()
SECTIONS = list(GEN.walk(ROOT_GROUP, "queuectl"))
COMMANDS = {path: ctx.command for path, ctx in SECTIONS}


def test_cli_reference_is_up_to_date():
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == GEN.render(ROOT_GROUP), (
        f"docs/cli.md is stale: run `{GEN.REGENERATE}` and commit the result"
    )


def test_every_spec_command_is_in_the_reference():
    assert GEN.command_paths(ROOT_GROUP) >= SPEC_COMMANDS


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "queuectl")
def test_reference_section_is_what_help_prints(path, tmp_path, monkeypatch):
    """The generator's contexts are those of a real invocation: same usage line, same text."""
    ctx = next(ctx for p, ctx in SECTIONS if p == path)
    monkeypatch.chdir(tmp_path)  # the root group reads a .env of the current folder
    result = CliRunner().invoke(
        ROOT_GROUP, [*path, "--help"], prog_name="queuectl", terminal_width=GEN.WIDTH
    )
    assert result.exit_code == 0, result.output
    assert result.output == ctx.command.get_help(ctx) + "\n"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into docs/"
    )


# ---------------------------------------------------------------------------------------------
# command lines in the docs

FENCE = re.compile(r"^\s*```(\w*)")
INLINE = re.compile(r"`(queuectl [^`]+)`")
SEPARATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "(", ")"}
GLOBAL_OPTIONS_WITH_VALUE = {"--db"}
CALLERS = {"-m", "sudo", "exec", "nohup", "time", "timeout", "env"}


def command_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a code block that may hold a command, and of each
    inline code span that starts with `queuectl `."""
    block: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            block = None if block is not None else fence.group(1)
            continue
        if block is None:
            for span in INLINE.findall(line):
                yield number, span
        elif block == "console":
            if line.startswith("$ "):
                yield number, line[2:]
        elif block != "text":
            # PowerShell paths: `.venv\Scripts\queuectl` is not a string of shell escapes.
            yield number, line.replace("\\", "/") if block == "powershell" else line


def tokens(line: str) -> list[str] | None:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # not shell syntax (an unbalanced quote in PowerShell, say)
        return None


def invocations(words: list[str]) -> Iterator[list[str]]:
    """The arguments of each `queuectl` (or `.venv/bin/queuectl`, `python -m queuectl`) call on
    a line, up to the next shell separator. A `queuectl` that is an argument (`createdb
    --owner queuectl`, `pip install queuectl`) is no call."""
    for index, word in enumerate(words):
        if not (word == "queuectl" or word.endswith(("/queuectl", "/queuectl.exe"))):
            continue
        before = words[index - 1] if index else None
        starts_command = (
            before is None
            or before in SEPARATORS
            or before in CALLERS
            or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*|\d+", before)  # VAR=value, `timeout 600`
        )
        if not starts_command:
            continue
        args = []
        for arg in words[index + 1 :]:
            if arg in SEPARATORS:
                break
            args.append(arg)
        yield args


def check_invocation(args: list[str]) -> str | None:
    """What is wrong with `queuectl ARGS` (None if nothing): an unknown command or option."""
    args = [arg.strip("[]") for arg in args]  # usage summaries: [--burst]
    known = option_names(ROOT_GROUP)
    while args and args[0].startswith("-"):
        name = args.pop(0).split("=", 1)[0]
        if name not in known:
            return f"unknown global option {name}"
        if name in GLOBAL_OPTIONS_WITH_VALUE and args:
            args.pop(0)
    path: tuple[str, ...] = ()
    command = ROOT_GROUP
    while isinstance(command, click.Group) and args and re.fullmatch(r"[a-z][a-z-]*", args[0]):
        path = (*path, args.pop(0))
        if path not in COMMANDS:
            return f"no command `queuectl {' '.join(path)}`"
        command = COMMANDS[path]
    known = option_names(command)
    for arg in args:
        if re.match(r"--?[A-Za-z]", arg):
            name = arg.split("=", 1)[0]
            if name not in known:
                return f"`queuectl {' '.join(path)}` has no option {name}"
    return None


def option_names(command: click.Command) -> set[str]:
    ctx = GEN.make_context(command, "queuectl")
    names = set()
    for param in command.get_params(ctx):
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


@pytest.mark.parametrize("doc", GUIDES, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_command_lines_exist(doc):
    problems = []
    found = 0
    for number, line in command_lines(doc):
        words = tokens(line)
        if words is None:
            continue
        for args in invocations(words):
            found += 1
            problem = check_invocation(args)
            if problem:
                problems.append(f"{doc.name}:{number}: {line.strip()}\n    {problem}")
    assert not problems, "\n".join(problems)
    if doc == README:
        assert found >= len(SPEC_COMMANDS) // 2, "the README shows too few command lines"


def test_checker_catches_what_it_should():
    assert check_invocation(["worker", "start", "--count", "3"]) is None
    assert check_invocation(["--db", "x.db", "dlq", "retry", "--all"]) is None
    assert check_invocation(["--version"]) is None
    assert check_invocation(["enqueue", "-"]) is None
    assert "no command" in check_invocation(["worker", "restart"])
    assert "no command" in check_invocation(["wait-for", "job1"])
    assert "no option --tail" in check_invocation(["logs", "job1", "--tail"])
    assert "global option" in check_invocation(["--config", "x", "status"])
    lines = list(invocations(tokens("printf 'x' | .venv/bin/queuectl enqueue - > ids.txt")))
    assert lines == [["enqueue", "-"]]
    assert list(invocations(tokens("createdb --owner queuectl queuectl"))) == []
    assert list(invocations(tokens("timeout 600 queuectl worker start"))) == [["worker", "start"]]
    assert list(invocations(tokens("A=1 python -m queuectl status"))) == [["status"]]


# ---------------------------------------------------------------------------------------------
# links between the docs

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    found = set()
    block = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            block = not block
        elif not block and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize(
    "doc", [*GUIDES, ROOT / "benchmarks" / "README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_relative_links_and_anchors_exist(doc):
    problems = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            problems.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{target}: no such heading in {path.name}")
    assert not problems, f"{doc.name}: " + "; ".join(problems)
