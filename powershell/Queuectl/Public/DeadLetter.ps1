# Public functions of the Queuectl module. The dead-letter queue: list dead jobs, retry them.
# Dot-sourced by Queuectl.psm1, in the order of its file list; the manifest exports them.

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
