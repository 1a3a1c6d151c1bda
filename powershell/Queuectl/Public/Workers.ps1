# Public functions of the Queuectl module. Workers: start a pool, stop the pools of a store.
# Dot-sourced by Queuectl.psm1, in the order of its file list; the manifest exports them.

function Start-QueuectlWorker {
    <#
    .SYNOPSIS
    Runs worker processes (queuectl worker start).
    .DESCRIPTION
    In the foreground, runs -Count workers until they are stopped (Stop-QueuectlWorker from
    another window, Ctrl-C) or, with -Burst, until no job is ready to run now; their event lines
    go to the console. With -Background, starts them as a separate process and returns that
    process at once; its event lines go to the file -LogPath (the returned object's LogPath).
    .PARAMETER Count
    Number of worker processes (default 1).
    .PARAMETER Queue
    Serve only these queues.
    .PARAMETER Burst
    Exit once no job is ready to run now.
    .PARAMETER Quiet
    Print no event lines.
    .PARAMETER Background
    Start the workers as a background process and return it (System.Diagnostics.Process).
    .PARAMETER LogPath
    With -Background: the file for the workers' event lines (default: a new file in the temporary
    folder); their standard output goes to the same name plus '.out'.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Start-QueuectlWorker -Count 3 -Burst
    .EXAMPLE
    $pool = Start-QueuectlWorker -Count 2 -Background; Stop-QueuectlWorker; $pool.WaitForExit()
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [ValidateRange(1, [int]::MaxValue)]
        [int]$Count = 1,
        [string[]]$Queue,
        [switch]$Burst,
        [switch]$Quiet,
        [switch]$Background,
        [string]$LogPath,
        [string]$Store
    )
    $what = "$Count worker(s)"
    if ($Queue) { $what += " for queue(s) $($Queue -join ', ')" }
    if (-not $PSCmdlet.ShouldProcess($what, 'Start')) { return }
    $mode = 'Stream'
    if ($Background) { $mode = 'Background' }
    try {
        Invoke-QueuectlCli -Command @('worker', 'start') -Option @{ '--count' = $Count; '--queue' = $Queue; '--burst' = $Burst; '--quiet' = $Quiet } -Store $Store -Mode $mode -LogPath $LogPath
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Stop-QueuectlWorker {
    <#
    .SYNOPSIS
    Asks every running worker of the store (any host) to stop after its current job.
    .DESCRIPTION
    Runs `queuectl worker stop`, which goes through the store and so works on every platform.
    Returns when the workers have exited; a terminating error (exit status 1) when -Timeout
    passed first. What the CLI prints about each worker is shown with -Verbose.
    .PARAMETER Timeout
    Seconds to wait for the workers to exit (the CLI's default: 60).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Stop-QueuectlWorker -Timeout 30
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [ValidateRange(0.0, [double]::MaxValue)]
        [Nullable[double]]$Timeout,
        [string]$Store
    )
    if (-not $PSCmdlet.ShouldProcess('every running worker of the store', 'Stop')) { return }
    try {
        $text = Invoke-QueuectlCli -Command @('worker', 'stop') -Option @{ '--timeout' = $Timeout } -Store $Store -StderrAsVerbose
        if ($text) { Write-Verbose $text.Trim() }
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}
