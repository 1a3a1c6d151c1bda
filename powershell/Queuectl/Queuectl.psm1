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

. (Join-Path (Join-Path $PSScriptRoot 'Private') 'QueuectlCli.ps1')

$script:JobType = 'Queuectl.Job'

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

function Add-QueuectlJob {
    <#
    .SYNOPSIS
    Enqueues jobs; returns their ids.
    .DESCRIPTION
    Builds each job's spec as JSON and passes it to `queuectl enqueue -` on standard input (UTF-8),
    so no quoting rule of any PowerShell version can reach it. Specs come from the parameters
    (-Command, -Id, ...) or from -Spec: hashtables, objects or JSON strings, also from the
    pipeline; all the specs of one call are enqueued together, all or nothing, and a job may name
    an earlier one in -After. Returns the new ids, one string each, in order. A job whose
    -UniqueKey an unfinished job holds is not added: that job's id is returned and the CLI's
    'already queued: ID' becomes a warning.
    .PARAMETER Command
    The shell command (cmd /c on Windows, sh -c elsewhere).
    .PARAMETER Id
    The job id (default: generated).
    .PARAMETER MaxRetries
    Retries after the first run (default: config max-retries).
    .PARAMETER Priority
    Higher runs first among ready jobs (default 0).
    .PARAMETER Queue
    The named queue (default: default).
    .PARAMETER RunAt
    Not started before this time; a DateTime without a zone is taken as local time.
    .PARAMETER Delay
    Start no sooner than this many seconds from now (instead of -RunAt).
    .PARAMETER Timeout
    Kill the run after this many seconds; 0 = none (default: config job-timeout).
    .PARAMETER After
    Ids of jobs that must have completed first.
    .PARAMETER UniqueKey
    At most one unfinished job per key.
    .PARAMETER WorkingDirectory
    The folder the command runs in; a relative path is resolved against the current location.
    .PARAMETER Environment
    Variables added to the command's environment, as a hashtable of names to values.
    .PARAMETER Spec
    Whole specs: hashtables or objects with the SPEC's field names (command, id, max_retries,
    priority, queue, run_at, delay, timeout, after, unique_key, cwd, env), or JSON strings.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Add-QueuectlJob -Command 'echo hello' -Id job1 -MaxRetries 2
    .EXAMPLE
    $build = Add-QueuectlJob -Command 'make' -WorkingDirectory .\src -Environment @{ MODE = 'release' }
    Add-QueuectlJob -Command 'make deploy' -After $build -UniqueKey deploy
    .EXAMPLE
    @{ command = 'echo a' }, @{ command = 'echo b'; queue = 'batch' } | Add-QueuectlJob
    #>
    [CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'Fields')]
    [OutputType([string])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ParameterSetName = 'Fields')]
        [ValidateNotNullOrEmpty()]
        [string]$Command,
        [Parameter(ParameterSetName = 'Fields')]
        [string]$Id,
        [Parameter(ParameterSetName = 'Fields')]
        [Nullable[int]]$MaxRetries,
        [Parameter(ParameterSetName = 'Fields')]
        [Nullable[int]]$Priority,
        [Parameter(ParameterSetName = 'Fields')]
        [string]$Queue,
        [Parameter(ParameterSetName = 'Fields')]
        [Nullable[datetime]]$RunAt,
        [Parameter(ParameterSetName = 'Fields')]
        [Nullable[double]]$Delay,
        [Parameter(ParameterSetName = 'Fields')]
        [Nullable[double]]$Timeout,
        [Parameter(ParameterSetName = 'Fields')]
        [string[]]$After,
        [Parameter(ParameterSetName = 'Fields')]
        [string]$UniqueKey,
        [Parameter(ParameterSetName = 'Fields')]
        [Alias('Cwd')]
        [string]$WorkingDirectory,
        [Parameter(ParameterSetName = 'Fields')]
        [Alias('Env')]
        [System.Collections.IDictionary]$Environment,
        [Parameter(Mandatory = $true, ParameterSetName = 'Spec', ValueFromPipeline = $true)]
        [object[]]$Spec,
        [string]$Store
    )
    begin {
        $lines = New-Object System.Collections.Generic.List[string]
    }
    process {
        if ($PSCmdlet.ParameterSetName -eq 'Fields') {
            $fields = [ordered]@{ command = $Command }
            if ($Id) { $fields['id'] = $Id }
            if ($null -ne $MaxRetries) { $fields['max_retries'] = $MaxRetries }
            if ($null -ne $Priority) { $fields['priority'] = $Priority }
            if ($Queue) { $fields['queue'] = $Queue }
            if ($null -ne $RunAt) {
                $fields['run_at'] = $RunAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
            }
            if ($null -ne $Delay) { $fields['delay'] = $Delay }
            if ($null -ne $Timeout) { $fields['timeout'] = $Timeout }
            # @(): a single id must still be a JSON list.
            if ($After) { $fields['after'] = @($After) }
            if ($UniqueKey) { $fields['unique_key'] = $UniqueKey }
            if ($WorkingDirectory) {
                # Like the CLI's --cwd flag: relative to where the caller is (JSON wants absolute).
                $fields['cwd'] = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($WorkingDirectory)
            }
            if ($Environment) {
                $envFields = [ordered]@{}
                foreach ($name in $Environment.Keys) { $envFields[[string]$name] = [string]$Environment[$name] }
                $fields['env'] = $envFields
            }
            $specs = @($fields)
        } else {
            $specs = @($Spec)
        }
        foreach ($one in $specs) {
            if ($one -is [string]) {
                $json = $one
            } else {
                $json = ConvertTo-Json -InputObject $one -Compress -Depth 5
            }
            if ($PSCmdlet.ShouldProcess($json, 'Enqueue job')) { $lines.Add($json) }
        }
    }
    end {
        if ($lines.Count -eq 0) { return }
        try {
            $output = Invoke-QueuectlCli -Command @('enqueue') -Argument @('-') -InputText $lines.ToArray() -Store $Store
        } catch {
            $PSCmdlet.ThrowTerminatingError($_)
        }
        foreach ($line in ($output -split "`r?`n")) {
            if ($line) { $line }
        }
    }
}

function Get-QueuectlJob {
    <#
    .SYNOPSIS
    Gets jobs: all of them, those of a state or queue, or some by id.
    .DESCRIPTION
    Without -Id, runs `queuectl list --json` and returns one object per job, oldest first, with
    the SPEC's fields (id, command, state, attempts, max_retries, priority, queue, run_at,
    created_at, updated_at, exit_code, last_error, ...). With -Id (also from the pipeline, by value
    or by an Id property) runs `queuectl show --json` for each, which adds the run history (runs).
    Objects carry the type name Queuectl.Job.
    .PARAMETER Id
    Job ids to show, with their run history.
    .PARAMETER State
    Only jobs in this state: waiting, pending, processing, completed, failed, dead or canceled.
    .PARAMETER Queue
    Only jobs of this queue.
    .PARAMETER Limit
    At most this many jobs, oldest first; 0 (the default here, unlike the CLI's 100) = all.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlJob -State failed | Format-Table id, attempts, last_error
    .EXAMPLE
    (Get-QueuectlJob -Id job1).runs | Format-Table attempt, outcome, exit_code
    #>
    [CmdletBinding(DefaultParameterSetName = 'List')]
    [OutputType('Queuectl.Job')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ParameterSetName = 'Id', ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [Parameter(ParameterSetName = 'List')]
        [ValidateSet('waiting', 'pending', 'processing', 'completed', 'failed', 'dead', 'canceled')]
        [string]$State,
        [Parameter(ParameterSetName = 'List')]
        [string]$Queue,
        [Parameter(ParameterSetName = 'List')]
        [ValidateRange(0, [int]::MaxValue)]
        [int]$Limit = 0,
        [string]$Store
    )
    process {
        if ($PSCmdlet.ParameterSetName -eq 'Id') {
            foreach ($one in $Id) {
                try {
                    Invoke-QueuectlCli -Command @('show') -Argument $one -Json -Store $Store -Target $one |
                        Add-QueuectlTypeName -TypeName $script:JobType
                } catch {
                    $PSCmdlet.WriteError($_)
                }
            }
            return
        }
        try {
            # -StderrAsVerbose: the CLI's '(showing the first N ...)' note is for its own users.
            Invoke-QueuectlCli -Command @('list') -Option @{ '--state' = $State; '--queue' = $Queue; '--limit' = $Limit } -Json -Store $Store -StderrAsVerbose |
                Add-QueuectlTypeName -TypeName $script:JobType
        } catch {
            $PSCmdlet.ThrowTerminatingError($_)
        }
    }
}

function Get-QueuectlStatus {
    <#
    .SYNOPSIS
    Gets the store in use, job counts by state, live workers and paused queues.
    .DESCRIPTION
    Runs `queuectl status --json` and returns its object: store (the store in use), jobs (a count
    per state), workers (id, host, pid, started_at, last_heartbeat, current_job) and paused_queues.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    (Get-QueuectlStatus).jobs.dead
    .EXAMPLE
    Get-QueuectlStatus | Select-Object -ExpandProperty workers
    #>
    [CmdletBinding()]
    [OutputType('Queuectl.Status')]
    param([string]$Store)
    try {
        Invoke-QueuectlCli -Command @('status') -Json -Store $Store | Add-QueuectlTypeName -TypeName 'Queuectl.Status'
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Wait-QueuectlJob {
    <#
    .SYNOPSIS
    Waits until every job named has finished; returns the jobs.
    .DESCRIPTION
    Collects the ids (from -Id or the pipeline) and runs `queuectl wait` once for them all. When
    all completed, or some ended dead or canceled, returns each job (as Get-QueuectlJob -Id) so
    that you can look at its state; a job that ended dead or canceled also gives a warning with its
    last error. When -Timeout passes first, writes a non-terminating error (QueuectlExit124) and
    returns nothing; the jobs are left as they are. An unknown id is a terminating error, checked
    before waiting.
    .PARAMETER Id
    The jobs to wait for.
    .PARAMETER Timeout
    Give up after this many seconds (default: wait for ever).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Add-QueuectlJob -Command 'make test' | Wait-QueuectlJob -Timeout 600 | Select-Object id, state
    .EXAMPLE
    Get-QueuectlJob -Queue build | Wait-QueuectlJob
    #>
    [CmdletBinding()]
    [OutputType('Queuectl.Job')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [ValidateRange(0.0, [double]::MaxValue)]
        [Nullable[double]]$Timeout,
        [string]$Store
    )
    begin {
        $ids = New-Object System.Collections.Generic.List[string]
    }
    process {
        foreach ($one in $Id) { $ids.Add($one) }
    }
    end {
        if ($ids.Count -eq 0) { return }
        try {
            $result = Invoke-QueuectlCli -Command @('wait') -Option @{ '--timeout' = $Timeout } -Argument $ids.ToArray() -Store $Store -PassThruResult
        } catch {
            $PSCmdlet.ThrowTerminatingError($_)
        }
        if ($result.ExitCode -eq 124) {
            $PSCmdlet.WriteError((New-QueuectlError -Message "timed out after $Timeout s waiting for $($ids -join ', ')" -ExitCode 124 -CommandText 'wait' -Target $ids.ToArray()))
            return
        }
        if ($result.ExitCode -eq 3) {
            foreach ($line in ($result.ErrorText -split "`r?`n")) {
                if ($line) { Write-Warning $line }
            }
        } elseif ($result.ExitCode -ne 0) {
            $PSCmdlet.ThrowTerminatingError((New-QueuectlError -Message $result.ErrorText -ExitCode $result.ExitCode -CommandText 'wait' -Target $ids.ToArray()))
        }
        foreach ($one in $ids) {
            try {
                Invoke-QueuectlCli -Command @('show') -Argument $one -Json -Store $Store -Target $one |
                    Add-QueuectlTypeName -TypeName $script:JobType
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Stop-QueuectlJob {
    <#
    .SYNOPSIS
    Cancels jobs (queuectl cancel).
    .DESCRIPTION
    A waiting, pending or failed job becomes canceled; a processing job has its command killed
    (its whole process tree) and becomes canceled. A job that has already finished gives a
    non-terminating error and the next id is handled. Takes ids from the pipeline, by value or by
    an Id property, so Get-QueuectlJob output can be piped in.
    .PARAMETER Id
    The jobs to cancel.
    .PARAMETER PassThru
    Return each canceled job (as Get-QueuectlJob -Id).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Stop-QueuectlJob -Id job1
    .EXAMPLE
    Get-QueuectlJob -Queue reports -State pending | Stop-QueuectlJob -WhatIf
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
    [OutputType('Queuectl.Job')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [switch]$PassThru,
        [string]$Store
    )
    process {
        foreach ($one in $Id) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Cancel job')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('cancel') -Argument $one -Store $Store -Target $one
                if ($PassThru) {
                    Invoke-QueuectlCli -Command @('show') -Argument $one -Json -Store $Store -Target $one |
                        Add-QueuectlTypeName -TypeName $script:JobType
                }
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Get-QueuectlLog {
    <#
    .SYNOPSIS
    Gets the captured output (stdout and stderr together) of a job's runs, oldest run first.
    .DESCRIPTION
    Runs `queuectl logs` and returns the output as lines of text. The CLI's header before each
    run ('=== attempt N (...) ===') and its note when only the kept tail of a run's output is left
    are shown with -Verbose. With -Follow, lines are returned as the command writes them, run
    after run, until the job has finished.
    .PARAMETER Id
    The job, also from the pipeline (by value or by an Id property).
    .PARAMETER Follow
    Keep returning output as it is written until the job has finished.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlLog -Id job1
    .EXAMPLE
    Get-QueuectlJob -State dead | Get-QueuectlLog -Verbose
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [switch]$Follow,
        [string]$Store
    )
    process {
        foreach ($one in $Id) {
            try {
                if ($Follow) {
                    # Exit 3: the job ended dead or canceled, as `wait` says; its output was shown.
                    Invoke-QueuectlCli -Command @('logs') -Option @{ '--follow' = $true } -Argument $one -Store $Store -Target $one -Mode Stream -SuccessExitCode 0, 3
                } else {
                    $text = Invoke-QueuectlCli -Command @('logs') -Argument $one -Store $Store -Target $one -StderrAsVerbose
                    $lines = @($text -split "`r?`n")
                    # The output's last newline would otherwise give one empty line too many.
                    if ($lines.Count -gt 0 -and $lines[-1] -eq '') { $lines = @($lines | Select-Object -First ($lines.Count - 1)) }
                    $lines
                }
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

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

function Get-QueuectlDeadLetter {
    <#
    .SYNOPSIS
    Gets the jobs in the dead-letter queue (jobs that used up their retries).
    .DESCRIPTION
    Runs `queuectl dlq list --json`; returns one Queuectl.Job object per dead job.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlDeadLetter | Format-Table id, attempts, last_error
    .EXAMPLE
    Get-QueuectlDeadLetter | Where-Object queue -eq 'emails' | Restart-QueuectlDeadLetter
    #>
    [CmdletBinding()]
    [OutputType('Queuectl.Job')]
    param([string]$Store)
    try {
        Invoke-QueuectlCli -Command @('dlq', 'list') -Json -Store $Store | Add-QueuectlTypeName -TypeName $script:JobType
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Restart-QueuectlDeadLetter {
    <#
    .SYNOPSIS
    Retries dead jobs: dead becomes pending with attempts 0, due now (queuectl dlq retry).
    .DESCRIPTION
    Retries the jobs named (also from the pipeline, by value or by an Id property) or, with -All,
    every dead job. The run history is kept. A job that is not dead, or whose unique key another
    unfinished job now holds, gives a non-terminating error and the next id is handled.
    .PARAMETER Id
    The dead jobs to retry.
    .PARAMETER All
    Retry every dead job.
    .PARAMETER PassThru
    Return each retried job (as Get-QueuectlJob -Id).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlJob -State dead | Restart-QueuectlDeadLetter
    .EXAMPLE
    Restart-QueuectlDeadLetter -All -WhatIf
    #>
    [CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'Id')]
    [OutputType('Queuectl.Job')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ParameterSetName = 'Id', ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [Parameter(Mandatory = $true, ParameterSetName = 'All')]
        [switch]$All,
        [switch]$PassThru,
        [string]$Store
    )
    process {
        if ($PSCmdlet.ParameterSetName -eq 'All') {
            if (-not $PSCmdlet.ShouldProcess('every dead job', 'Retry')) { return }
            try {
                $dead = @(Get-QueuectlDeadLetter -Store $Store)
                $null = Invoke-QueuectlCli -Command @('dlq', 'retry') -Option @{ '--all' = $true } -Store $Store
            } catch {
                $PSCmdlet.ThrowTerminatingError($_)
            }
            if ($PassThru) { $dead | ForEach-Object { $_.id } | Get-QueuectlJob -Store $Store }
            return
        }
        foreach ($one in $Id) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Retry dead job')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('dlq', 'retry') -Argument $one -Store $Store -Target $one
                if ($PassThru) {
                    Invoke-QueuectlCli -Command @('show') -Argument $one -Json -Store $Store -Target $one |
                        Add-QueuectlTypeName -TypeName $script:JobType
                }
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Get-QueuectlConfig {
    <#
    .SYNOPSIS
    Gets settings: each key's value in effect and where it comes from.
    .DESCRIPTION
    Runs `queuectl config list --json` and returns one object per key with Key, Value (as the
    CLI shows it, a string) and Source (default, store or env: a QUEUECTL_<KEY> variable of this
    process wins). -Key takes names or wildcards; a plain name that is not a key is an error.
    .PARAMETER Key
    Only these keys (wildcards allowed), e.g. max-retries, backoff-*.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlConfig
    .EXAMPLE
    (Get-QueuectlConfig -Key max-retries).Value
    #>
    [CmdletBinding()]
    [OutputType('Queuectl.Config')]
    param(
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Key,
        [string]$Store
    )
    process {
        try {
            $document = Invoke-QueuectlCli -Command @('config', 'list') -Json -Store $Store
        } catch {
            $PSCmdlet.ThrowTerminatingError($_)
        }
        $settings = foreach ($property in $document.PSObject.Properties) {
            [pscustomobject]@{
                PSTypeName = 'Queuectl.Config'
                Key        = $property.Name
                Value      = $property.Value.value
                Source     = $property.Value.source
            }
        }
        if (-not $Key) {
            $settings
            return
        }
        foreach ($pattern in $Key) {
            $found = @($settings | Where-Object { $_.Key -like $pattern })
            if ($found.Count -eq 0 -and -not [System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters($pattern)) {
                $PSCmdlet.WriteError((New-QueuectlError -Message "unknown config key '$pattern'" -ExitCode 1 -CommandText 'config list' -Target $pattern))
            }
            $found
        }
    }
}

function Set-QueuectlConfig {
    <#
    .SYNOPSIS
    Stores a setting shared by every worker of the store (queuectl config set).
    .DESCRIPTION
    Values are plain decimal numbers (retention: a duration such as 7d); a bad key or value is
    an error with the CLI's message. Key and Value can come from the pipeline by property name.
    .PARAMETER Key
    The setting: max-retries, backoff-base, backoff-max, job-timeout, lease-seconds,
    poll-interval or retention.
    .PARAMETER Value
    Its new value.
    .PARAMETER PassThru
    Return the setting as Get-QueuectlConfig shows it afterwards.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Set-QueuectlConfig -Key max-retries -Value 5
    .EXAMPLE
    Set-QueuectlConfig backoff-base 1.5 -PassThru
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('Queuectl.Config')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string]$Key,
        [Parameter(Mandatory = $true, Position = 1, ValueFromPipelineByPropertyName = $true)]
        [string]$Value,
        [switch]$PassThru,
        [string]$Store
    )
    process {
        if (-not $PSCmdlet.ShouldProcess($Key, "Set to '$Value'")) { return }
        try {
            $null = Invoke-QueuectlCli -Command @('config', 'set') -Argument @($Key, $Value) -Store $Store -Target $Key
        } catch {
            $PSCmdlet.ThrowTerminatingError($_)
        }
        if ($PassThru) { Get-QueuectlConfig -Key $Key -Store $Store }
    }
}

function Remove-QueuectlConfig {
    <#
    .SYNOPSIS
    Removes a setting's stored value, back to its default (queuectl config unset).
    .DESCRIPTION
    The key's value is then the default again (or a QUEUECTL_<KEY> variable's, for a process
    that has one).
    .PARAMETER Key
    The setting to reset.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Remove-QueuectlConfig -Key backoff-base
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string]$Key,
        [string]$Store
    )
    process {
        if (-not $PSCmdlet.ShouldProcess($Key, 'Reset to default')) { return }
        try {
            $null = Invoke-QueuectlCli -Command @('config', 'unset') -Argument $Key -Store $Store -Target $Key
        } catch {
            $PSCmdlet.ThrowTerminatingError($_)
        }
    }
}

function Get-QueuectlQueue {
    <#
    .SYNOPSIS
    Gets the queues that have jobs or settings.
    .DESCRIPTION
    Runs `queuectl queue list --json`; returns one object per queue with name, paused, limit
    (null when none), jobs (a count per state) and oldest_ready_age (seconds, or null).
    .PARAMETER Name
    Only these queues (wildcards allowed).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlQueue | Where-Object paused
    #>
    [CmdletBinding()]
    [OutputType('Queuectl.Queue')]
    param(
        [Parameter(Position = 0)]
        [string[]]$Name,
        [string]$Store
    )
    try {
        $queues = @(Invoke-QueuectlCli -Command @('queue', 'list') -Json -Store $Store)
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
    foreach ($queue in $queues) {
        $wanted = -not $Name
        foreach ($pattern in @($Name)) {
            if ($pattern -and $queue.name -like $pattern) { $wanted = $true }
        }
        if ($wanted) { $queue | Add-QueuectlTypeName -TypeName 'Queuectl.Queue' }
    }
}

function Set-QueuectlQueue {
    <#
    .SYNOPSIS
    Limits how many jobs of a queue run at the same moment (queuectl queue limit).
    .DESCRIPTION
    At most -Limit jobs of each queue named are processing at once, across every worker and
    host; 0 removes the limit. A queue that has no job yet may be limited.
    .PARAMETER Name
    The queues, also from the pipeline by a Name property (Get-QueuectlQueue output).
    .PARAMETER Limit
    The most jobs running at once; 0 = no limit.
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Set-QueuectlQueue -Name reports -Limit 4
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [Parameter(Mandatory = $true)]
        [ValidateRange(0, [int]::MaxValue)]
        [int]$Limit,
        [string]$Store
    )
    process {
        foreach ($one in $Name) {
            if (-not $PSCmdlet.ShouldProcess($one, "Limit to $Limit running jobs")) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('queue', 'limit') -Argument @($one, [string]$Limit) -Store $Store -Target $one
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Suspend-QueuectlQueue {
    <#
    .SYNOPSIS
    Pauses queues: no worker on any host claims their jobs until they are resumed.
    .DESCRIPTION
    Runs `queuectl queue pause`. Enqueueing still works and running jobs finish. A queue that has
    no job yet may be paused.
    .PARAMETER Name
    The queues, also from the pipeline (by value or by a Name property).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Suspend-QueuectlQueue -Name emails
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [string]$Store
    )
    process {
        foreach ($one in $Name) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Pause queue')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('queue', 'pause') -Argument $one -Store $Store -Target $one
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Resume-QueuectlQueue {
    <#
    .SYNOPSIS
    Resumes paused queues: their jobs can be claimed at once.
    .DESCRIPTION
    Runs `queuectl queue resume`; idle workers wake as for a new job.
    .PARAMETER Name
    The queues, also from the pipeline (by value or by a Name property).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlQueue | Where-Object paused | Resume-QueuectlQueue
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [string]$Store
    )
    process {
        foreach ($one in $Name) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Resume queue')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('queue', 'resume') -Argument $one -Store $Store -Target $one
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}


function Get-QueuectlSchedule {
    <#
    .SYNOPSIS
    Gets cron schedules.
    .DESCRIPTION
    Without -Name runs `queuectl schedule list --json`; with -Name runs `queuectl schedule show
    --json` for each, which adds next_runs (the next five fire times, UTC). Objects have name,
    cron, tz, command, queue, priority, max_retries, timeout, overlap, paused, next_run_at and
    last_enqueued_at.
    .PARAMETER Name
    Schedules to show, also from the pipeline (by value or by a Name property).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlSchedule | Format-Table name, cron, next_run_at
    .EXAMPLE
    (Get-QueuectlSchedule -Name nightly).next_runs
    #>
    [CmdletBinding(DefaultParameterSetName = 'List')]
    [OutputType('Queuectl.Schedule')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ParameterSetName = 'Name', ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [string]$Store
    )
    process {
        if ($PSCmdlet.ParameterSetName -eq 'List') {
            try {
                Invoke-QueuectlCli -Command @('schedule', 'list') -Json -Store $Store | Add-QueuectlTypeName -TypeName 'Queuectl.Schedule'
            } catch {
                $PSCmdlet.ThrowTerminatingError($_)
            }
            return
        }
        foreach ($one in $Name) {
            try {
                Invoke-QueuectlCli -Command @('schedule', 'show') -Argument $one -Json -Store $Store -Target $one |
                    Add-QueuectlTypeName -TypeName 'Queuectl.Schedule'
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Add-QueuectlSchedule {
    <#
    .SYNOPSIS
    Adds a cron schedule: each fire time becomes a job NAME@TIME, enqueued once by a running worker.
    .DESCRIPTION
    Runs `queuectl schedule add` and returns the new schedule (as Get-QueuectlSchedule -Name).
    An invalid expression or zone, or a name in use, is an error and nothing is written.
    .PARAMETER Name
    The schedule's name: 1 to 100 characters, no control characters, no '@'.
    .PARAMETER Cron
    A 5-field cron expression, or @hourly, @daily, @weekly, @monthly, @yearly, @annually.
    .PARAMETER Command
    The shell command of each job.
    .PARAMETER TimeZone
    The IANA zone of the expression (default UTC).
    .PARAMETER Queue
    The queue of its jobs (default: default).
    .PARAMETER Priority
    The priority of its jobs (default 0).
    .PARAMETER MaxRetries
    The retries of its jobs (default: config max-retries).
    .PARAMETER Timeout
    The timeout of its jobs in seconds; 0 = none (default: config job-timeout).
    .PARAMETER Overlap
    skip: no job for a fire time while the previous one is unfinished (default: allow).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Add-QueuectlSchedule -Name nightly -Cron '30 2 * * *' -Command 'backup.cmd' -TimeZone Europe/Berlin
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('Queuectl.Schedule')]
    param(
        [Parameter(Mandatory = $true, Position = 0)]
        [string]$Name,
        [Parameter(Mandatory = $true, Position = 1)]
        [string]$Cron,
        [Parameter(Mandatory = $true, Position = 2)]
        [ValidateNotNullOrEmpty()]
        [string]$Command,
        [string]$TimeZone,
        [string]$Queue,
        [Nullable[int]]$Priority,
        [Nullable[int]]$MaxRetries,
        [Nullable[double]]$Timeout,
        [ValidateSet('allow', 'skip')]
        [string]$Overlap,
        [string]$Store
    )
    if (-not $PSCmdlet.ShouldProcess($Name, "Add schedule '$Cron'")) { return }
    try {
        $null = Invoke-QueuectlCli -Command @('schedule', 'add') -Option @{
            '--command'     = $Command
            '--tz'          = $TimeZone
            '--queue'       = $Queue
            '--priority'    = $Priority
            '--max-retries' = $MaxRetries
            '--timeout'     = $Timeout
            '--overlap'     = $Overlap
        } -Argument @($Name, $Cron) -Store $Store -Target $Name
        Invoke-QueuectlCli -Command @('schedule', 'show') -Argument $Name -Json -Store $Store -Target $Name |
            Add-QueuectlTypeName -TypeName 'Queuectl.Schedule'
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Remove-QueuectlSchedule {
    <#
    .SYNOPSIS
    Deletes schedules; the jobs they enqueued stay.
    .DESCRIPTION
    Runs `queuectl schedule remove` for each name; an unknown name gives a non-terminating error.
    .PARAMETER Name
    The schedules, also from the pipeline (by value or by a Name property).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Remove-QueuectlSchedule -Name nightly -Confirm
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [string]$Store
    )
    process {
        foreach ($one in $Name) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Remove schedule')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('schedule', 'remove') -Argument $one -Store $Store -Target $one
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Suspend-QueuectlSchedule {
    <#
    .SYNOPSIS
    Pauses schedules: their fire times are not enqueued until they are resumed.
    .DESCRIPTION
    Runs `queuectl schedule pause` for each name. Fire times while a schedule is paused are
    never enqueued, also after it is resumed.
    .PARAMETER Name
    The schedules, also from the pipeline (by value or by a Name property).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Suspend-QueuectlSchedule -Name nightly
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [string]$Store
    )
    process {
        foreach ($one in $Name) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Pause schedule')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('schedule', 'pause') -Argument $one -Store $Store -Target $one
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Resume-QueuectlSchedule {
    <#
    .SYNOPSIS
    Resumes paused schedules, from their next fire time.
    .DESCRIPTION
    Runs `queuectl schedule resume` for each name; fire times missed while paused are not
    enqueued.
    .PARAMETER Name
    The schedules, also from the pipeline (by value or by a Name property).
    .PARAMETER Store
    The store (queuectl --db); default: Set-QueuectlDefault -Store, else the CLI's rule.
    .EXAMPLE
    Get-QueuectlSchedule | Where-Object paused | Resume-QueuectlSchedule
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name,
        [string]$Store
    )
    process {
        foreach ($one in $Name) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Resume schedule')) { continue }
            try {
                $null = Invoke-QueuectlCli -Command @('schedule', 'resume') -Argument $one -Store $Store -Target $one
            } catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

# -- Tab completion ---------------------------------------------------------------------------
# Registered when the module is imported. The states and keys are the SPEC's fixed lists (sections 3, 6
# and 8); queue and schedule names are read from the store in use (the -Store being typed, else the
# module's default), and a store that cannot be read just completes nothing.

$script:QueuectlStates = @('waiting', 'pending', 'processing', 'completed', 'failed', 'dead', 'canceled')
$script:QueuectlConfigKeys = @('max-retries', 'backoff-base', 'backoff-max', 'job-timeout', 'lease-seconds', 'poll-interval', 'retention')

Register-ArgumentCompleter -CommandName 'Get-QueuectlJob' -ParameterName 'State' -ScriptBlock {
    param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
    New-QueuectlCompletion -Word $script:QueuectlStates -Typed $wordToComplete
}

Register-ArgumentCompleter -CommandName 'Get-QueuectlConfig', 'Set-QueuectlConfig', 'Remove-QueuectlConfig' -ParameterName 'Key' -ScriptBlock {
    param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
    New-QueuectlCompletion -Word $script:QueuectlConfigKeys -Typed $wordToComplete
}

$queueCompleter = {
    param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
    $store = ''
    if ($fakeBoundParameters.ContainsKey('Store')) { $store = [string]$fakeBoundParameters['Store'] }
    $names = @()
    try {
        $names = @(Invoke-QueuectlCli -Command @('queue', 'list') -Json -Store $store -ErrorAction Stop | ForEach-Object { $_.name })
    } catch {
        $names = @()
    }
    New-QueuectlCompletion -Word $names -Typed $wordToComplete
}
Register-ArgumentCompleter -CommandName 'Get-QueuectlJob', 'Add-QueuectlJob', 'Start-QueuectlWorker', 'Add-QueuectlSchedule' -ParameterName 'Queue' -ScriptBlock $queueCompleter
Register-ArgumentCompleter -CommandName 'Get-QueuectlQueue', 'Set-QueuectlQueue', 'Suspend-QueuectlQueue', 'Resume-QueuectlQueue' -ParameterName 'Name' -ScriptBlock $queueCompleter

Register-ArgumentCompleter -CommandName 'Get-QueuectlSchedule', 'Remove-QueuectlSchedule', 'Suspend-QueuectlSchedule', 'Resume-QueuectlSchedule' -ParameterName 'Name' -ScriptBlock {
    param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
    $store = ''
    if ($fakeBoundParameters.ContainsKey('Store')) { $store = [string]$fakeBoundParameters['Store'] }
    $names = @()
    try {
        $names = @(Invoke-QueuectlCli -Command @('schedule', 'list') -Json -Store $store -ErrorAction Stop | ForEach-Object { $_.name })
    } catch {
        $names = @()
    }
    New-QueuectlCompletion -Word $names -Typed $wordToComplete
}
