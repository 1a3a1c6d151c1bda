# The core flow end to end through the Queuectl PowerShell module (SPEC section 10): enqueue,
# workers, a job that fails and is retried, one that uses up its retries and goes to the
# dead-letter queue, dlq retry through the pipeline, cancel, pause/resume, config and status.
# Runs on Windows PowerShell 5.1 and PowerShell 7 (Windows, Linux, macOS), on a private
# throw-away store; exits 1 at the first failure, 0 when every check passed.
#
#   pwsh -NoProfile -File tests/test_core_flow.ps1
#   powershell -NoProfile -ExecutionPolicy Bypass -File tests\test_core_flow.ps1
#
# The queuectl program: $env:QUEUECTL_EXE, else `queuectl` on PATH, else `python -m queuectl`
# from this checkout ($env:PYTHON, else python).

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root (Join-Path 'powershell' (Join-Path 'Queuectl' 'Queuectl.psd1'))) -Force

$onWindows = $env:OS -eq 'Windows_NT'
$checks = 0

function Assert-That([bool]$Condition, [string]$Message) {
    if (-not $Condition) { throw "FAILED: $Message" }
    $script:checks++
    Write-Host "ok - $Message"
}

# Commands in the platform shell's syntax (cmd /c on Windows, sh -c elsewhere).
if ($onWindows) {
    $flakyCommand = 'echo attempt %QUEUECTL_ATTEMPT% & if %QUEUECTL_ATTEMPT% LSS 2 exit 1'
} else {
    $flakyCommand = 'echo attempt $QUEUECTL_ATTEMPT; test "$QUEUECTL_ATTEMPT" -ge 2'
}

$workDir = Join-Path ([System.IO.Path]::GetTempPath()) ('queuectl-ps-flow-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory -Path $workDir | Out-Null
$savedEnv = @{}
foreach ($item in @(Get-ChildItem Env: | Where-Object { $_.Name -like 'QUEUECTL_*' -and $_.Name -ne 'QUEUECTL_EXE' })) {
    $savedEnv[$item.Name] = $item.Value
    Remove-Item "Env:$($item.Name)"
}
$savedPythonPath = $env:PYTHONPATH
# From the temporary folder: no .env file of the caller's is read.
Push-Location $workDir
$exitCode = 0
try {
    if (-not $env:QUEUECTL_EXE -and -not (Get-Command -Name queuectl -CommandType Application -ErrorAction SilentlyContinue)) {
        $python = if ($env:PYTHON) { $env:PYTHON } else { 'python' }
        $env:PYTHONPATH = $root
        Set-QueuectlDefault -Executable $python -ExecutableArgument '-m', 'queuectl'
    }
    $store = Join-Path $workDir 'flow.db'
    Set-QueuectlDefault -Store $store
    Write-Host "store: $store; program: $((Get-QueuectlDefault).ResolvedProgram)"

    # Retries at once (backoff 0 ** k), so burst workers see every retry.
    Set-QueuectlConfig -Key backoff-base -Value 0
    $setting = Get-QueuectlConfig -Key backoff-base
    Assert-That ($setting.Value -eq '0' -and $setting.Source -eq 'store') 'config set/get backoff-base 0 (from the store)'

    # -- enqueue --------------------------------------------------------------------------
    $ok = Add-QueuectlJob -Command 'echo hello from the flow' -Id 'ok'
    Assert-That ($ok -eq 'ok') 'Add-QueuectlJob returns the id'
    $null = Add-QueuectlJob -Command $flakyCommand -Id 'flaky' -MaxRetries 2
    $null = Add-QueuectlJob -Command 'exit 3' -Id 'doomed' -MaxRetries 1
    $batch = @(@{ command = 'echo batch one'; queue = 'batch' }, @{ command = 'echo batch two'; queue = 'batch' } | Add-QueuectlJob)
    Assert-That ($batch.Count -eq 2) 'hashtable specs from the pipeline give one id each'
    $after = Add-QueuectlJob -Command 'echo after ok' -After 'ok' -Queue 'batch'
    $waiting = Get-QueuectlJob -Id $after
    Assert-That ($waiting.state -eq 'waiting' -and @($waiting.after).Count -eq 1) 'a job with -After waits, its after is a list'

    $all = @(Get-QueuectlJob)
    Assert-That ($all.Count -eq 6) "Get-QueuectlJob returns one object per job ($($all.Count))"
    Assert-That ((Get-QueuectlJob | Measure-Object).Count -eq 6) 'jobs reach the pipeline one by one (arrays unrolled)'
    Assert-That (@(Get-QueuectlJob -State pending).Count -eq 5) 'five jobs pending'
    Assert-That (@(Get-QueuectlJob -Queue batch).Count -eq 3) 'three jobs in queue batch'
    Assert-That ((Get-QueuectlStatus).jobs.pending -eq 5) 'status counts five pending'

    # -- workers, retries, the dead-letter queue ------------------------------------------
    Start-QueuectlWorker -Count 2 -Burst -Quiet
    $jobs = @{}
    foreach ($job in @(Get-QueuectlJob)) { $jobs[$job.id] = $job }
    Assert-That ($jobs['ok'].state -eq 'completed' -and $jobs['ok'].attempts -eq 1) 'ok completed on its first run'
    Assert-That ($jobs['flaky'].state -eq 'completed' -and $jobs['flaky'].attempts -eq 2) "flaky failed once, then completed (attempts $($jobs['flaky'].attempts))"
    Assert-That ($jobs['doomed'].state -eq 'dead' -and $jobs['doomed'].attempts -eq 2) "doomed is dead after 2 runs ($($jobs['doomed'].state), $($jobs['doomed'].attempts))"
    Assert-That ($jobs['doomed'].exit_code -eq 3) 'doomed exit code 3'
    Assert-That ($jobs[$after].state -eq 'completed') 'the dependent job ran after ok'

    $shown = Get-QueuectlJob -Id doomed
    Assert-That (@($shown.runs).Count -eq 2 -and $shown.runs[0].outcome -eq 'exited') 'show gives the run history'
    $log = @(Get-QueuectlLog -Id ok)
    Assert-That (($log -join "`n") -match 'hello from the flow') 'Get-QueuectlLog returns the output'
    $flakyLog = (Get-QueuectlJob -Id flaky | Get-QueuectlLog) -join "`n"
    Assert-That ($flakyLog -match 'attempt 1' -and $flakyLog -match 'attempt 2') 'logs of every run, with the id from the pipeline'

    $dead = @(Get-QueuectlDeadLetter)
    Assert-That ($dead.Count -eq 1 -and $dead[0].id -eq 'doomed') 'the dead-letter queue holds doomed'

    # A finished job cannot be canceled: a non-terminating error carrying the CLI's message.
    $cancelErrors = $null
    Stop-QueuectlJob -Id ok -ErrorAction SilentlyContinue -ErrorVariable cancelErrors
    Assert-That (@($cancelErrors).Count -eq 1 -and $cancelErrors[0].Exception.Data['ExitCode'] -eq 1) 'canceling a completed job is an error with exit status 1'
    Assert-That ($cancelErrors[0].Exception.Message -match 'completed') "the error is the CLI's message: $($cancelErrors[0].Exception.Message)"

    # -WhatIf changes nothing; then dlq retry through the pipeline.
    Get-QueuectlJob -State dead | Restart-QueuectlDeadLetter -WhatIf
    Assert-That ((Get-QueuectlJob -Id doomed).state -eq 'dead') '-WhatIf retried nothing'
    $retried = @(Get-QueuectlJob -State dead | Restart-QueuectlDeadLetter -PassThru)
    Assert-That ($retried.Count -eq 1 -and $retried[0].state -eq 'pending' -and $retried[0].attempts -eq 0) 'dlq retry: dead -> pending, attempts 0'
    Assert-That (@(Get-QueuectlDeadLetter).Count -eq 0) 'the dead-letter queue is empty'

    Start-QueuectlWorker -Burst -Quiet
    $waitWarnings = $null
    $finished = @(Wait-QueuectlJob -Id doomed -Timeout 60 -WarningAction SilentlyContinue -WarningVariable waitWarnings)
    Assert-That ($finished.Count -eq 1 -and $finished[0].state -eq 'dead') 'Wait-QueuectlJob returns the job, dead again'
    Assert-That (@($waitWarnings).Count -eq 1 -and "$($waitWarnings[0])" -match 'doomed') 'and warns that it ended dead'
    Assert-That (@((Get-QueuectlJob -Id doomed).runs).Count -eq 4) 'the run history was kept across the retry'

    # -- waiting with a timeout, cancel through the pipeline -------------------------------
    $later = Add-QueuectlJob -Command 'echo later' -Delay 3600
    $waitErrors = $null
    $none = @(Wait-QueuectlJob -Id $later -Timeout 0.5 -ErrorAction SilentlyContinue -ErrorVariable waitErrors)
    Assert-That ($none.Count -eq 0 -and @($waitErrors).Count -eq 1 -and $waitErrors[0].Exception.Data['ExitCode'] -eq 124) 'Wait-QueuectlJob -Timeout gives a timeout error'
    Get-QueuectlJob -State pending | Stop-QueuectlJob
    Assert-That ((Get-QueuectlJob -Id $later).state -eq 'canceled') 'Get-QueuectlJob | Stop-QueuectlJob cancels'

    # -- queues ---------------------------------------------------------------------------
    Suspend-QueuectlQueue -Name held
    $held = Add-QueuectlJob -Command 'echo held' -Queue held
    Start-QueuectlWorker -Burst -Quiet
    Assert-That ((Get-QueuectlJob -Id $held).state -eq 'pending') 'a job of a paused queue is not run'
    $queue = @(Get-QueuectlQueue -Name held)
    Assert-That ($queue.Count -eq 1 -and $queue[0].paused -eq $true) 'Get-QueuectlQueue shows the queue paused'
    Assert-That (@((Get-QueuectlStatus).paused_queues) -contains 'held') 'status lists the paused queue'
    Get-QueuectlQueue -Name held | Resume-QueuectlQueue
    Start-QueuectlWorker -Burst -Quiet
    Assert-That ((Get-QueuectlJob -Id $held).state -eq 'completed') 'after Resume-QueuectlQueue it runs'

    # -- status -----------------------------------------------------------------------------
    $status = Get-QueuectlStatus
    Assert-That ($status.store -like '*flow.db') "status names the store ($($status.store))"
    Assert-That ($status.jobs.dead -eq 1 -and $status.jobs.canceled -eq 1 -and $status.jobs.completed -eq 6) "status counts: $($status.jobs | ConvertTo-Json -Compress)"
    Assert-That (@($status.workers).Count -eq 0) 'no worker is left running'

    Write-Host "core flow: $checks checks passed"
} catch {
    Write-Host "core flow FAILED after $checks checks: $($_.Exception.Message)"
    Write-Host $_.ScriptStackTrace
    $exitCode = 1
} finally {
    Pop-Location
    $env:PYTHONPATH = $savedPythonPath
    foreach ($name in $savedEnv.Keys) { Set-Item -Path "Env:$name" -Value $savedEnv[$name] }
    Remove-Item -Recurse -Force -LiteralPath $workDir -ErrorAction SilentlyContinue
}
exit $exitCode
