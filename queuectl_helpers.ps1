# Dot-source this script to get the Queuectl PowerShell functions from this checkout:
#
#   . .\queuectl_helpers.ps1
#   Add-QueuectlJob -Command 'echo hello'
#   Get-QueuectlStatus
#
# It imports the module powershell\Queuectl\Queuectl.psd1 beside it (by path: nothing is
# installed), so scripts that dot-source a helper file keep working. -Force re-imports it, so
# dot-sourcing again after a `git pull` loads the new version. See WINDOWS_GUIDE.md.
#
# The queuectl program the functions run is $env:QUEUECTL_EXE, else `queuectl` on PATH; when
# neither is set and this checkout has a .venv with queuectl in it, that one is used.

$queuectlModule = Join-Path $PSScriptRoot (Join-Path 'powershell' (Join-Path 'Queuectl' 'Queuectl.psd1'))
Import-Module $queuectlModule -Force

if (-not $env:QUEUECTL_EXE -and -not (Get-Command -Name 'queuectl' -CommandType Application -ErrorAction SilentlyContinue)) {
    foreach ($candidate in @(
            (Join-Path $PSScriptRoot (Join-Path '.venv' (Join-Path 'Scripts' 'queuectl.exe'))),
            (Join-Path $PSScriptRoot (Join-Path '.venv' (Join-Path 'bin' 'queuectl')))
        )) {
        if (Test-Path -LiteralPath $candidate) {
            Set-QueuectlDefault -Executable $candidate
            break
        }
    }
}
Remove-Variable -Name 'queuectlModule', 'candidate' -ErrorAction SilentlyContinue
