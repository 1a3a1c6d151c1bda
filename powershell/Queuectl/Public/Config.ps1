# Public functions of the Queuectl module. The store's configuration: read, set and unset its
# keys. Dot-sourced by Queuectl.psm1, in the order of its file list; the manifest exports them.

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
