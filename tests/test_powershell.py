"""The PowerShell side (SPEC §10), checked without PowerShell: every script parses, the module's
manifest exports exactly its functions, each with an approved verb, comment help and -WhatIf
where it changes something, and every queuectl call it makes names a real command and real
options of the Click command tree. The module's code is the loader Queuectl.psm1 and the
Private/ and Public/ files its fixed lists name (pskit.module_scripts()); a test keeps those
lists equal to the files on disk. (tests/test_core_flow.ps1 runs the module for real where
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
PUBLIC_FILES = {
    "Defaults.ps1", "Jobs.ps1", "Workers.ps1", "DeadLetter.ps1", "Config.ps1", "Queues.ps1",
    "Schedules.ps1", "Completion.ps1",
}  # fmt: skip


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
        "powershell/Queuectl/Private/QueuectlCli.ps1",
        *(f"powershell/Queuectl/Public/{name}" for name in PUBLIC_FILES),
    } <= names


def test_the_loader_loads_exactly_the_private_and_public_files_on_disk():
    """A file added to Private/ or Public/ but not to the loader's list would never load (its
    functions missing from the module), and the lists load nothing that is not there."""
    lists = pskit.script_lists(pskit.parse(pskit.PSM1))
    for folder, listed in [
        (pskit.PRIVATE_DIR, lists["QueuectlPrivateFiles"]),
        (pskit.PUBLIC_DIR, lists["QueuectlPublicFiles"]),
    ]:
        assert None not in listed, f"{folder.name}: the loader's list must be literal names"
        assert len(set(listed)) == len(listed), f"{folder.name}: a file listed twice: {listed}"
        on_disk = sorted(p.name for p in folder.iterdir())
        assert sorted(listed) == on_disk, folder.name
    assert set(lists["QueuectlPublicFiles"]) == PUBLIC_FILES
    # The completers come last, after every function they name is defined.
    assert lists["QueuectlPublicFiles"][-1] == "Completion.ps1"
    # Nothing else beside the manifest and the loader: a stray script would be neither loaded
    # nor checked.
    assert sorted(p.name for p in pskit.MODULE_DIR.iterdir()) == [
        "Private", "Public", "Queuectl.psd1", "Queuectl.psm1",
    ]  # fmt: skip


def test_the_loader_dot_sources_each_listed_file_from_its_folder():
    """One `. (Join-Path (Join-Path $PSScriptRoot 'Private') $moduleFile)` loop per list, and no
    wildcard (Get-ChildItem) that would load whatever lies in the folder."""
    text = pskit.PSM1.read_text(encoding="utf-8")
    for folder, variable in [
        ("Private", "QueuectlPrivateFiles"),
        ("Public", "QueuectlPublicFiles"),
    ]:
        assert (
            f"foreach ($moduleFile in $script:{variable}) {{\n"
            f"    . (Join-Path (Join-Path $PSScriptRoot '{folder}') $moduleFile)\n}}"
        ) in text, folder
    assert text.index("QueuectlPrivateFiles) {") < text.index("QueuectlPublicFiles) {")
    code = [line for line in text.splitlines() if not line.startswith("#")]
    assert not any("Get-ChildItem" in line or "*" in line for line in code), code
    assert not pskit.functions(pskit.parse(pskit.PSM1)), "the loader defines no functions"


@pytest.mark.parametrize(
    "path", pskit.powershell_files(), ids=lambda p: str(p.relative_to(pskit.ROOT))
)
def test_powershell_files_are_ascii(path):
    """Windows PowerShell 5.1 reads a script without a byte-order mark in the ANSI code page."""
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        assert line.isascii(), f"{path.name}:{number}: non-ASCII text {line!r}"


def test_the_manifest_exports_exactly_the_functions_of_the_module():
    """Every function the loader and its files define, less the Private/ helpers, is exported,
    and nothing else is."""
    entries = pskit.manifest(pskit.parse(pskit.PSD1))
    defined = list(pskit.module_functions())  # fails on a name defined in two files
    exported = entries["FunctionsToExport"]
    assert sorted(exported) == sorted(defined)
    assert len(set(exported)) == len(exported)
    assert not any("*" in name for name in exported)
    assert set(exported) >= SPEC_FUNCTIONS
    # The private helpers live in their own folder and are never exported.
    private = set(pskit.private_functions())
    assert pskit.CLI_HELPER in private
    assert not private & set(exported)
    assert not private & set(defined)
    # Each public file holds functions of its own noun.
    for function in pskit.module_functions().values():
        assert function.path.parent == pskit.PUBLIC_DIR, function.name
        assert function.path.name != "Completion.ps1", function.name


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
    for name in pskit.module_functions():
        verb, _, noun = name.partition("-")
        assert verb in APPROVED_VERBS, f"{name}: {verb} is not an approved verb"
        assert noun.startswith("Queuectl"), name
    for name in pskit.private_functions():
        assert name.partition("-")[0] in APPROVED_VERBS, name


def test_every_function_has_comment_help_for_each_parameter():
    for function in pskit.module_functions().values():
        assert function.help.startswith("<#"), f"{function.name}: no comment help"
        for keyword in (".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE"):
            assert keyword in function.help, f"{function.name}: no {keyword}"
        documented = set(re.findall(r"^\s*\.PARAMETER (\w+)", function.help, re.M))
        assert documented == set(function.parameters), function.name
        assert function.binding, f"{function.name}: not an advanced function"


def test_functions_that_change_something_support_whatif():
    for function in pskit.module_functions().values():
        changes = function.name.partition("-")[0] in CHANGING_VERBS
        supports = bool(function.binding) and "SupportsShouldProcess" in function.binding
        assert supports == changes, function.name
        if changes:
            assert "$PSCmdlet.ShouldProcess(" in function.text, function.name


def test_changing_commands_are_called_only_after_shouldprocess():
    by_name = pskit.module_functions()
    for call in pskit.module_cli_calls():
        if call.command not in CHANGING_COMMANDS:
            continue
        assert call.function in by_name, f"{call.where}: changes the store outside a function"
        function = by_name[call.function]
        assert "SupportsShouldProcess" in (function.binding or ""), (call.function, call.command)
        body = function.text
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
    public = [p for p in pskit.module_scripts() if p not in pskit.private_scripts()]
    assert len(public) == 1 + len(PUBLIC_FILES)
    for path in (*public, pskit.ROOT / "queuectl_helpers.ps1"):
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
    calls = pskit.module_cli_calls()
    assert len(calls) >= 20
    # The completers' calls too, though they sit in script blocks outside any function.
    assert {c.command for c in calls if not c.function} == {("queue", "list"), ("schedule", "list")}
    every_function = {**pskit.module_functions(), **pskit.private_functions()}
    root_options = option_names(root_group)
    assert "--db" in root_options  # what -Store becomes
    for call in calls:
        where = call.where
        assert call.command and None not in call.command, f"{where}: -Command must be literal"
        command = click_command(call.command)
        assert not isinstance(command, click.Group), f"{where}: {call.command} is a group"
        options = option_names(command)
        for name, value in call.options.items():
            assert name in options, f"{where}: queuectl {' '.join(call.command)} has no {name}"
            switch_params = every_function[call.function].parameters
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
    called = {call.command for call in pskit.module_cli_calls()}
    for path in [
        ("enqueue",), ("list",), ("show",), ("status",), ("wait",), ("cancel",), ("logs",),
        ("worker", "start"), ("worker", "stop"), ("dlq", "list"), ("dlq", "retry"),
        ("config", "list"), ("config", "set"), ("queue", "pause"), ("queue", "resume"),
        ("queue", "list"),
    ]:  # fmt: skip
        assert path in called, path


def test_add_queuectljob_passes_the_spec_on_stdin():
    calls = [c for c in pskit.module_cli_calls() if c.command == ("enqueue",)]
    assert len(calls) == 1
    assert calls[0].function == "Add-QueuectlJob"
    assert calls[0].parameters["-Argument"] == "@('-')"
    assert "-InputText" in calls[0].parameters
    assert not calls[0].options  # nothing of the spec on the command line


def test_pipeline_input_binds_ids_and_names_by_property():
    """`Get-QueuectlJob -State dead | Restart-QueuectlDeadLetter` and the like: the id (or name)
    parameter takes pipeline input by property name."""
    functions = pskit.module_functions()
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
    for path in pskit.module_scripts():
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
    """queuectl_helpers.ps1 and the tests reach the module by Join-Path from their
    own folder ($PSScriptRoot), one literal segment at a time (no backslash: PowerShell 7 on
    Linux and macOS)."""
    expected = {
        pskit.ROOT / "queuectl_helpers.ps1": ["powershell", "Queuectl", "Queuectl.psd1"],
        pskit.CORE_FLOW: ["powershell", "Queuectl", "Queuectl.psd1"],
        pskit.ROOT / "tests" / "Queuectl.Tests.ps1": ["powershell", "Queuectl", "Queuectl.psd1"],
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
    # The loader's own Join-Path calls: tests of the loader above.
