# Public functions of the Queuectl module. Jobs: enqueue, list and show, the store's status, wait,
# cancel and read a job's logs. Dot-sourced by Queuectl.psm1, in the order of its file list; the
# manifest exports them.

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
