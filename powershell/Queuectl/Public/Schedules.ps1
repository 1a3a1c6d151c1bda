# Public functions of the Queuectl module. Schedules: list, add, remove, pause and resume
# recurring jobs. Dot-sourced by Queuectl.psm1, in the order of its file list; the manifest
# exports them.

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
