# Argument completers of the Queuectl module (Register-ArgumentCompleter). Dot-sourced by
# Queuectl.psm1 after the functions; defines no functions.

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
