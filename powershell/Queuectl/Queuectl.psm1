# Queuectl: PowerShell functions over the queuectl command line (SPEC section 10).
#
# Each function runs the `queuectl` program (found as described in Set-QueuectlDefault) and
# returns objects parsed from its --json output, one pipeline object per job, queue or schedule.
#
# Errors: when queuectl exits non-zero the function reports an error whose message is the CLI's
# own (its stderr) and whose exception carries Data['ExitCode']. Functions that work through
# several ids (Stop-QueuectlJob, Restart-QueuectlDeadLetter, Get-QueuectlJob -Id, ...) write a
# NON-TERMINATING error for an id that fails and go on with the next one, as Stop-Process does;
# every other failure (store unusable, bad spec, program missing) is a TERMINATING error.
# Use -ErrorAction Stop or $ErrorActionPreference = 'Stop' to stop at the first error of any kind.
#
# This file only loads the module's other files, in the fixed order of the two lists below (no
# wildcard: the load order never depends on the folder, and a stray file there is never loaded).
# Private/ holds the helpers that find, start and read queuectl (never exported); Public/ holds
# the exported functions, one file per noun, then the argument completers. Add a new file to a
# list: tests/test_powershell.py checks that the lists name exactly the .ps1 files on disk.

$script:JobType = 'Queuectl.Job'

$script:QueuectlPrivateFiles = @(
    'QueuectlCli.ps1'
)
$script:QueuectlPublicFiles = @(
    'Defaults.ps1'
    'Jobs.ps1'
    'Workers.ps1'
    'DeadLetter.ps1'
    'Config.ps1'
    'Queues.ps1'
    'Schedules.ps1'
    'Completion.ps1'
)

foreach ($moduleFile in $script:QueuectlPrivateFiles) {
    . (Join-Path (Join-Path $PSScriptRoot 'Private') $moduleFile)
}
foreach ($moduleFile in $script:QueuectlPublicFiles) {
    . (Join-Path (Join-Path $PSScriptRoot 'Public') $moduleFile)
}
