# Public functions of the Queuectl module. Queues: list them, set a limit, pause and resume them.
# Dot-sourced by Queuectl.psm1, in the order of its file list; the manifest exports them.

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
