# Module manifest of Queuectl: PowerShell functions over the queuectl command line (SPEC section 10).
# Import it by path from a checkout: Import-Module .\powershell\Queuectl\Queuectl.psd1
# RootModule Queuectl.psm1 dot-sources Private/*.ps1 and Public/*.ps1 from its own fixed list.
# tests/test_powershell.py checks that FunctionsToExport lists exactly the functions those files
# define, less the Private/ helpers.
@{
    RootModule           = 'Queuectl.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '50d6ef45-d37a-4d69-a895-17c19c1c04b2'
    Author               = 'queuectl contributors'
    CompanyName          = 'queuectl'
    Copyright            = '(c) queuectl contributors. MIT License.'
    Description          = 'Wrapper functions over the queuectl CLI (a background job queue for shell commands) that return objects and accept pipeline input.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Desktop', 'Core')
    FunctionsToExport    = @(
        'Get-QueuectlDefault'
        'Set-QueuectlDefault'
        'Add-QueuectlJob'
        'Get-QueuectlJob'
        'Get-QueuectlStatus'
        'Wait-QueuectlJob'
        'Stop-QueuectlJob'
        'Get-QueuectlLog'
        'Start-QueuectlWorker'
        'Stop-QueuectlWorker'
        'Get-QueuectlDeadLetter'
        'Restart-QueuectlDeadLetter'
        'Get-QueuectlConfig'
        'Set-QueuectlConfig'
        'Remove-QueuectlConfig'
        'Get-QueuectlQueue'
        'Set-QueuectlQueue'
        'Suspend-QueuectlQueue'
        'Resume-QueuectlQueue'
        'Get-QueuectlSchedule'
        'Add-QueuectlSchedule'
        'Remove-QueuectlSchedule'
        'Suspend-QueuectlSchedule'
        'Resume-QueuectlSchedule'
    )
    CmdletsToExport      = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('queue', 'jobs', 'worker', 'cli')
            LicenseUri = 'https://opensource.org/licenses/MIT'
        }
    }
}
