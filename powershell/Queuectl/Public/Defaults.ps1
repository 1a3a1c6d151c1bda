# Public functions of the Queuectl module. The module's defaults: which queuectl program and which
# store its functions use. Dot-sourced by Queuectl.psm1, in the order of its file list; the
# manifest exports them.

function Get-QueuectlDefault {
    <#
    .SYNOPSIS
    Shows which queuectl program and which store the module's functions use.
    .DESCRIPTION
    Returns the settings made with Set-QueuectlDefault, and the program they resolve to now. An
    empty Store means the CLI chooses: $env:QUEUECTL_DB, a .env file in the current folder, else
    queuectl.db in the per-user application folder.
    .EXAMPLE
    Get-QueuectlDefault
    #>
    [CmdletBinding()]
    param()
    $program = $null
    try { $program = Resolve-QueuectlExecutable } catch { Write-Warning $_.Exception.Message }
    [pscustomobject]@{
        PSTypeName         = 'Queuectl.Default'
        Executable         = $script:QueuectlDefault.Executable
        ExecutableArgument = @($script:QueuectlDefault.ExecutableArgument)
        Store              = $script:QueuectlDefault.Store
        ResolvedProgram    = if ($program) { $program -join ' ' } else { $null }
    }
}

function Set-QueuectlDefault {
    <#
    .SYNOPSIS
    Chooses the queuectl program and the store that the module's functions use.
    .DESCRIPTION
    The program is, first match wins: -Executable given here, $env:QUEUECTL_EXE, then
    'queuectl' found on PATH (queuectl.exe in an activated venv's Scripts folder). The store given
    here is passed as queuectl's --db option to every call that has no -Store of its own; without
    one the CLI chooses ($env:QUEUECTL_DB, .env, the per-user default store). The settings last
    for this PowerShell session (until the module is removed or imported again).
    .PARAMETER Executable
    The program: a path (C:\src\queuectl\.venv\Scripts\queuectl.exe) or a name on PATH. An empty
    string goes back to $env:QUEUECTL_EXE / 'queuectl'.
    .PARAMETER ExecutableArgument
    Arguments that go before queuectl's own, for example '-m', 'queuectl' with -Executable python.
    .PARAMETER Store
    The default store (queuectl --db TARGET): a file path, sqlite:///relative/path,
    sqlite:////absolute/path or postgresql://...; an empty string goes back to the CLI's rule.
    .EXAMPLE
    Set-QueuectlDefault -Executable "$HOME\src\queuectl\.venv\Scripts\queuectl.exe" -Store "$HOME\queues\build.db"
    .EXAMPLE
    Set-QueuectlDefault -Executable python -ExecutableArgument '-m', 'queuectl'
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [string]$Executable,
        [string[]]$ExecutableArgument,
        [string]$Store
    )
    if (-not $PSCmdlet.ShouldProcess('Queuectl module defaults', 'Set')) { return }
    if ($PSBoundParameters.ContainsKey('Executable')) { $script:QueuectlDefault.Executable = $Executable }
    if ($PSBoundParameters.ContainsKey('ExecutableArgument')) { $script:QueuectlDefault.ExecutableArgument = @($ExecutableArgument) }
    if ($PSBoundParameters.ContainsKey('Store')) { $script:QueuectlDefault.Store = $Store }
}
