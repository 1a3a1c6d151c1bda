"""The PowerShell side (SPEC §10), checked without PowerShell: every script parses, the module's
manifest exports exactly its functions, each with an approved verb, comment help and -WhatIf
where it changes something, and every queuectl call it makes names a real command and real
options of the Click command tree. (tests/test_core_flow.ps1 runs the module for real where
PowerShell is installed: see .github/workflows/ci.yml.)
"""

from __future__ import annotations

import re
import uuid

import click
import pskit
import pytest

from queuectl import __version__
from queuectl.cli import cli as root_group

# Get-Verb's list (Microsoft's "Approved Verbs for PowerShell Commands").
APPROVED_VERBS = {
    "Add", "Clear", "Close", "Copy", "Enter", "Exit", "Find", "Format", "Get", "Hide", "Join",
    "Lock", "Move", "New", "Open", "Optimize", "Pop", "Push", "Redo", "Remove", "Rename", "Reset",
    "Resize", "Search", "Select", "Set", "Show", "Skip", "Split", "Step", "Switch", "Undo",
    "Unlock", "Watch", "Connect", "Disconnect", "Read", "Receive", "Send", "Write", "Backup",
    "Checkpoint", "Compare", "Compress", "Convert", "ConvertFrom", "ConvertTo", "Dismount",
    "Edit", "Expand", "Export", "Group", "Import", "Initialize", "Limit", "Merge", "Mount", "Out",
    "Publish", "Restore", "Save", "Sync", "Unpublish", "Update", "Approve", "Assert", "Build",
    "Complete", "Confirm", "Deny", "Deploy", "Disable", "Enable", "Install", "Invoke", "Register",
    "Request", "Restart", "Resume", "Start", "Stop", "Submit", "Suspend", "Uninstall",
    "Unregister", "Wait", "Debug", "Measure", "Ping", "Repair", "Resolve", "Test", "Trace",
    "Block", "Grant", "Protect", "Revoke", "Unblock", "Unprotect", "Use",
}  # fmt: skip
# Verbs that change something: their functions must support -WhatIf/-Confirm.
CHANGING_VERBS = {
    "Add", "Clear", "Remove", "Reset", "Set", "Start", "Stop", "Restart", "Resume", "Suspend",
    "Register", "Unregister", "Update", "Enable", "Disable", "Install", "Uninstall", "Submit",
}  # fmt: skip
# queuectl commands that change the store or start processes.
CHANGING_COMMANDS = {
    ("enqueue",), ("cancel",), ("prune",), ("dlq", "retry"), ("config", "set"),
    ("config", "unset"), ("queue", "pause"), ("queue", "resume"), ("queue", "limit"),
    ("schedule", "add"), ("schedule", "remove"), ("schedule", "pause"), ("schedule", "resume"),
    ("worker", "start"), ("worker", "stop"),
}  # fmt: skip
SPEC_FUNCTIONS = {
    "Add-QueuectlJob", "Get-QueuectlJob", "Get-QueuectlStatus", "Wait-QueuectlJob",
    "Stop-QueuectlJob", "Get-QueuectlLog", "Start-QueuectlWorker", "Stop-QueuectlWorker",
    "Get-QueuectlDeadLetter", "Restart-QueuectlDeadLetter", "Get-QueuectlConfig",
    "Set-QueuectlConfig", "Suspend-QueuectlQueue", "Resume-QueuectlQueue",
}  # fmt: skip
MODULE_FILES = [pskit.PSM1, pskit.PSD1, pskit.PRIVATE]


@pytest.mark.parametrize(
    "path", pskit.powershell_files(), ids=lambda p: str(p.relative_to(pskit.ROOT))
)
def test_every_powershell_file_parses(path):
    parsed = pskit.parse(path)
    assert pskit.syntax_problems(parsed) == []


def test_the_powershell_files_include_the_module_scripts_and_demo():
    names = {p.relative_to(pskit.ROOT).as_posix() for p in pskit.powershell_files()}
    assert {
        "run_demo.ps1",
        "queuectl_helpers.ps1",
        "tests/test_core_flow.ps1",
        "powershell/Queuectl/Queuectl.psm1",
        "powershell/Queuectl/Queuectl.psd1",
    } <= names


@pytest.mark.parametrize(
    "path", pskit.powershell_files(), ids=lambda p: str(p.relative_to(pskit.ROOT))
)
def test_powershell_files_are_ascii(path):
    """Windows PowerShell 5.1 reads a script without a byte-order mark in the ANSI code page."""
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        assert line.isascii(), f"{path.name}:{number}: non-ASCII text {line!r}"


def test_the_manifest_exports_exactly_the_functions_of_the_module():
    entries = pskit.manifest(pskit.parse(pskit.PSD1))
    defined = list(pskit.functions(pskit.parse(pskit.PSM1)))
    exported = entries["FunctionsToExport"]
    assert sorted(exported) == sorted(defined)
    assert len(set(exported)) == len(exported)
    assert not any("*" in name for name in exported)
    assert set(exported) >= SPEC_FUNCTIONS
    # The private helpers live in their own file and are never exported.
    private = set(pskit.functions(pskit.parse(pskit.PRIVATE)))
    assert pskit.CLI_HELPER in private
    assert not private & set(exported)


def test_the_manifest_fields():
    entries = pskit.manifest(pskit.parse(pskit.PSD1))
    assert entries["RootModule"] == "Queuectl.psm1"
    assert entries["ModuleVersion"] == __version__
    assert str(uuid.UUID(entries["GUID"])) == entries["GUID"]
    assert entries["PowerShellVersion"] == "5.1"
    assert sorted(entries["CompatiblePSEditions"]) == ["Core", "Desktop"]
    for key in ("CmdletsToExport", "AliasesToExport", "VariablesToExport"):
        assert entries[key] == [], key


def test_every_function_has_an_approved_verb_and_the_queuectl_noun_prefix():
    for name in pskit.functions(pskit.parse(pskit.PSM1)):
        verb, _, noun = name.partition("-")
        assert verb in APPROVED_VERBS, f"{name}: {verb} is not an approved verb"
        assert noun.startswith("Queuectl"), name
    for name in pskit.functions(pskit.parse(pskit.PRIVATE)):
        assert name.partition("-")[0] in APPROVED_VERBS, name


def test_every_function_has_comment_help_for_each_parameter():
    for function in pskit.functions(pskit.parse(pskit.PSM1)).values():
        assert function.help.startswith("<#"), f"{function.name}: no comment help"
        for keyword in (".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE"):
            assert keyword in function.help, f"{function.name}: no {keyword}"
        documented = set(re.findall(r"^\s*\.PARAMETER (\w+)", function.help, re.M))
        assert documented == set(function.parameters), function.name
        assert function.binding, f"{function.name}: not an advanced function"


def test_functions_that_change_something_support_whatif():
    for function in pskit.functions(pskit.parse(pskit.PSM1)).values():
        changes = function.name.partition("-")[0] in CHANGING_VERBS
        supports = bool(function.binding) and "SupportsShouldProcess" in function.binding
        assert supports == changes, function.name
        if changes:
            assert "$PSCmdlet.ShouldProcess(" in pskit.parse(pskit.PSM1).text(function.node)


def test_changing_commands_are_called_only_after_shouldprocess():
    parsed = pskit.parse(pskit.PSM1)
    by_name = pskit.functions(parsed)
    for call in pskit.cli_calls(parsed):
        if call.command not in CHANGING_COMMANDS:
            continue
        function = by_name[call.function]
        assert "SupportsShouldProcess" in (function.binding or ""), (call.function, call.command)
        body = parsed.text(function.node)
        call_offset = body.index(pskit.CLI_HELPER + " -Command @(" + repr(call.command[0]))
        assert 0 <= body.find("$PSCmdlet.ShouldProcess(") < call_offset, call.function


def click_command(path: tuple[str, ...]) -> click.Command:
    """The Click command at this subcommand path (lazy groups loaded as Click would)."""
    command: click.Command = root_group
    ctx = click.Context(root_group, info_name="queuectl")
    for name in path:
        assert isinstance(command, click.Group), f"{path}: {command.name} has no subcommands"
        found = command.get_command(ctx, name)
        assert found is not None, f"queuectl has no command {' '.join(path)}"
        ctx = click.Context(found, parent=ctx, info_name=name)
        command = found
    return command


def option_names(command: click.Command) -> dict[str, click.Option]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


def test_the_module_calls_the_cli_only_through_its_helper():
    """So that the checks below see every call: no `& $exe`, Start-Process or Process.Start."""
    for path in (pskit.PSM1, pskit.ROOT / "queuectl_helpers.ps1"):
        parsed = pskit.parse(path)
        for node in pskit.walk(parsed.tree.root_node):
            if node.type == "command_invokation_operator":  # `. file` (dot-sourcing) is fine
                assert parsed.text(node) != "&", f"{path.name}:{node.start_point[0] + 1}"
            if node.type == "command_name":
                assert parsed.text(node) != "Start-Process", (
                    f"{path.name}:{node.start_point[0] + 1}"
                )
            if node.type in ("type_literal", "type_name"):
                assert "Process" not in parsed.text(node), f"{path.name}:{node.start_point[0] + 1}"


def test_every_cli_call_names_a_real_command_and_real_options():
    parsed = pskit.parse(pskit.PSM1)
    calls = pskit.cli_calls(parsed)
    assert len(calls) >= 20
    root_options = option_names(root_group)
    assert "--db" in root_options  # what -Store becomes
    for call in calls:
        where = f"{call.function} (Queuectl.psm1:{call.line})"
        assert call.command and None not in call.command, f"{where}: -Command must be literal"
        command = click_command(call.command)
        assert not isinstance(command, click.Group), f"{where}: {call.command} is a group"
        options = option_names(command)
        for name, value in call.options.items():
            assert name in options, f"{where}: queuectl {' '.join(call.command)} has no {name}"
            switch_params = pskit.functions(parsed)[call.function].parameters
            is_switch = value == "$true" or (
                value.startswith("$") and "[switch]" in switch_params.get(value[1:], "")
            )
            assert options[name].is_flag == is_switch, f"{where}: {name} = {value}"
            if options[name].multiple:
                assert "[string[]]" in switch_params.get(value[1:], ""), f"{where}: {name}"
        if call.json:
            assert "--json" in options, f"{where}: {call.command} has no --json"
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        if call.has_argument:
            assert arguments, f"{where}: {call.command} takes no argument"
        else:
            assert not any(p.required for p in arguments), f"{where}: {call.command} needs one"


def test_the_spec_commands_are_all_wrapped():
    """Each command SPEC §10 names a function for is called by the module."""
    called = {call.command for call in pskit.cli_calls(pskit.parse(pskit.PSM1))}
    for path in [
        ("enqueue",), ("list",), ("show",), ("status",), ("wait",), ("cancel",), ("logs",),
        ("worker", "start"), ("worker", "stop"), ("dlq", "list"), ("dlq", "retry"),
        ("config", "list"), ("config", "set"), ("queue", "pause"), ("queue", "resume"),
        ("queue", "list"),
    ]:  # fmt: skip
        assert path in called, path


def test_add_queuectljob_passes_the_spec_on_stdin():
    calls = [c for c in pskit.cli_calls(pskit.parse(pskit.PSM1)) if c.command == ("enqueue",)]
    assert len(calls) == 1
    assert calls[0].function == "Add-QueuectlJob"
    assert calls[0].parameters["-Argument"] == "@('-')"
    assert "-InputText" in calls[0].parameters
    assert not calls[0].options  # nothing of the spec on the command line


def test_pipeline_input_binds_ids_and_names_by_property():
    """`Get-QueuectlJob -State dead | Restart-QueuectlDeadLetter` and the like: the id (or name)
    parameter takes pipeline input by property name."""
    functions = pskit.functions(pskit.parse(pskit.PSM1))
    for name, parameter in [
        ("Stop-QueuectlJob", "Id"), ("Restart-QueuectlDeadLetter", "Id"),
        ("Wait-QueuectlJob", "Id"), ("Get-QueuectlLog", "Id"), ("Get-QueuectlJob", "Id"),
        ("Suspend-QueuectlQueue", "Name"), ("Resume-QueuectlQueue", "Name"),
    ]:  # fmt: skip
        declared = functions[name].parameters[parameter]
        assert "ValueFromPipelineByPropertyName = $true" in declared, name


def test_the_array_unrolling_is_where_every_json_document_is_read():
    """Windows PowerShell 5.1's ConvertFrom-Json emits a JSON array as one object: the module
    parses JSON in one place, which enumerates it."""
    for path in (pskit.PSM1, pskit.PRIVATE):
        parsed = pskit.parse(path)
        users = [
            f.name
            for f in pskit.functions(parsed).values()
            if "ConvertFrom-Json" in parsed.text(f.node)
        ]
        assert users == (["ConvertFrom-QueuectlJson"] if path == pskit.PRIVATE else []), path
    body = pskit.parse(pskit.PRIVATE).text(
        pskit.functions(pskit.parse(pskit.PRIVATE))["ConvertFrom-QueuectlJson"].node
    )
    assert re.search(
        r"\$parsed = \$Text \| ConvertFrom-Json\s+foreach \(\$item in \$parsed\)", body
    )


def test_the_scripts_import_the_module_by_a_path_that_exists():
    """queuectl_helpers.ps1, the tests and the .psm1 reach their files by Join-Path from their
    own folder ($PSScriptRoot), one literal segment at a time (no backslash: PowerShell 7 on
    Linux and macOS)."""
    expected = {
        pskit.ROOT / "queuectl_helpers.ps1": ["powershell", "Queuectl", "Queuectl.psd1"],
        pskit.CORE_FLOW: ["powershell", "Queuectl", "Queuectl.psd1"],
        pskit.ROOT / "tests" / "Queuectl.Tests.ps1": ["powershell", "Queuectl", "Queuectl.psd1"],
        pskit.PSM1: ["Private", "QueuectlCli.ps1"],
    }
    for path, parts in expected.items():
        parsed = pskit.parse(path)
        literals = [
            value
            for node in pskit.walk(parsed.tree.root_node)
            if node.type == "command" and parsed.text(node).startswith("Join-Path")
            for value in pskit.strings_in(parsed, node)
        ]
        joined = [value for value in literals if value in parts]
        assert joined[: len(parts)] == parts, (path.name, literals)
        assert not any("\\" in value for value in literals if value), (path.name, literals)
        base = (
            pskit.ROOT if path.parent.name == "tests" or path.parent == pskit.ROOT else path.parent
        )
        assert base.joinpath(*parts).is_file(), (path.name, parts)
