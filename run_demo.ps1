# A one-minute tour of queuectl on a private, throw-away store (Windows PowerShell 5.1 or
# PowerShell 7). The same tour as run_demo.sh:
#
#   .\run_demo.ps1
#   powershell -ExecutionPolicy Bypass -File .\run_demo.ps1     # if scripts are not allowed
#
# Makes (or reuses) .venv, installs this checkout into it, enqueues a few real jobs (one that
# succeeds, one that fails once and succeeds on retry, one that always fails and ends in the
# dead-letter queue, one killed by its timeout, a high-priority one, a delayed one and a batch
# read from stdin), runs workers until every job has settled, and shows the results.
# The demo store lives in a temporary folder, removed at the end unless $env:KEEP_DEMO is 1.
#
# Jobs are given with flags, and the batch as JSON on stdin: Windows PowerShell 5.1 would strip
# the double quotes of a JSON argument (see WINDOWS_GUIDE.md). Commands are cmd.exe syntax.

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2

$root = $PSScriptRoot
$python = if ($env:PYTHON) { $env:PYTHON } else { 'python' }
$venv = Join-Path $root '.venv'
$py = Join-Path $venv 'Scripts\python.exe'
$queuectl = Join-Path $venv 'Scripts\queuectl.exe'

function Say([string]$text) {
    Write-Host ''
    Write-Host "== $text" -ForegroundColor Cyan
}

# Run queuectl, showing the command first; stop the demo if it fails.
function Q {
    Write-Host ('PS> queuectl ' + ($args -join ' ')) -ForegroundColor DarkGray
    & $queuectl @args
    if ($LASTEXITCODE -ne 0) { throw "queuectl $($args -join ' ') failed with exit code $LASTEXITCODE" }
}

# Run queuectl quietly and return its stdout as one string (for --json output).
function Q-Text {
    $out = & $queuectl @args
    if ($LASTEXITCODE -ne 0) { throw "queuectl $($args -join ' ') failed with exit code $LASTEXITCODE" }
    return ($out -join "`n")
}

# -- 1. a virtual environment with this checkout installed ------------------------------------

if (-not (Test-Path $py)) {
    Say "creating .venv with $python"
    & $python -m venv $venv
    if ($LASTEXITCODE -ne 0) { throw "could not create $venv with $python" }
}

# Install when queuectl is missing from the venv, comes from somewhere else, or the project's
# metadata changed since it was installed.
$bytes = New-Object System.Collections.Generic.List[byte]
foreach ($name in 'pyproject.toml', 'setup.py', 'requirements.txt') {
    $bytes.AddRange([System.IO.File]::ReadAllBytes((Join-Path $root $name)))
}
$sha = [System.Security.Cryptography.SHA256]::Create()
$want = -join ($sha.ComputeHash($bytes.ToArray()) | ForEach-Object { $_.ToString('x2') })
$stamp = Join-Path $venv '.queuectl-demo-installed'

# -I: ignore the current folder and PYTHON* variables, so we see what is really installed.
# (Windows PowerShell 5.1 turns a redirected stderr line into an error under 'Stop'.)
$ErrorActionPreference = 'Continue'
$where = & $py -I -c 'import os, dotenv, queuectl.cli; print(os.path.dirname(os.path.abspath(queuectl.__file__)))' 2>$null
$imported = $LASTEXITCODE -eq 0
$ErrorActionPreference = 'Stop'
$installedHere = $imported -and ("$where" -eq (Join-Path $root 'queuectl')) -and (Test-Path $queuectl)
$stampOk = (Test-Path $stamp) -and ((Get-Content -Raw $stamp).Trim() -eq $want)
if ($installedHere -and $stampOk) {
    Say 'queuectl is already installed in .venv'
} else {
    Say 'installing queuectl from this checkout into .venv'
    Push-Location $root
    try {
        & $py -m pip install --quiet --disable-pip-version-check -e .
        if ($LASTEXITCODE -ne 0) { throw 'pip install failed' }
    } finally {
        Pop-Location
    }
    Set-Content -Path $stamp -Value $want -Encoding ASCII
}
& $queuectl --version

# -- 2. a private store in a temporary folder -------------------------------------------------

$demoDir = Join-Path ([System.IO.Path]::GetTempPath()) ('queuectl-demo-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory -Path $demoDir | Out-Null

# Settings from your environment must not change the demo; they are put back at the end.
$savedEnv = @{}
foreach ($item in @(Get-ChildItem Env: | Where-Object { $_.Name -like 'QUEUECTL_*' })) {
    $savedEnv[$item.Name] = $item.Value
    Remove-Item "Env:$($item.Name)"
}
$env:QUEUECTL_DB = Join-Path $demoDir 'demo.db'
$workers = $null
# Run from the demo folder, so that no .env file of yours is read.
Push-Location $demoDir

try {
    Say 'a private store for the demo'
    Write-Host "QUEUECTL_DB=$env:QUEUECTL_DB"
    # Short retry delays, so the whole demo takes seconds: retry k waits 1.5**k seconds.
    Q config set backoff-base '1.5'
    Q config list

    # -- 3. jobs ------------------------------------------------------------------------------

    Say 'enqueueing jobs'
    Q enqueue --id hello --command 'echo hello from queuectl'
    # QUEUECTL_ATTEMPT is 1 on the first run, 2 on the second...: this one fails once, then works.
    Q enqueue --id flaky --command 'echo attempt %QUEUECTL_ATTEMPT% & if %QUEUECTL_ATTEMPT% LSS 2 exit 1'
    Q enqueue --id doomed --command 'echo cannot reach the server 1>&2 & exit 3' --max-retries 2
    Q enqueue --id sleepy --command 'ping -n 30 127.0.0.1 >nul' --timeout 1 --max-retries 0
    Q enqueue --id urgent --command 'echo I jumped the queue' --priority 10
    Q enqueue --id later --command 'echo I waited 3 seconds' --delay 3

    Say 'a batch from stdin, one JSON spec a line (ids are generated)'
    $batch = foreach ($n in 1..3) {
        [ordered]@{ command = "echo batch item $n"; queue = 'batch' } | ConvertTo-Json -Compress
    }
    $batch | ForEach-Object { Write-Host $_ }
    Write-Host 'PS> $batch | queuectl enqueue -' -ForegroundColor DarkGray
    $batch | & $queuectl enqueue '-'
    if ($LASTEXITCODE -ne 0) { throw 'bulk enqueue failed' }

    Q list

    # -- 4. workers ---------------------------------------------------------------------------

    Say 'a burst run: 3 workers take every job that is ready now, then exit'
    Write-Host '(urgent has the highest priority, so it starts first)'
    Q worker start --count 3 --burst

    Say 'what the burst run left behind'
    Write-Host '(flaky and doomed wait for their retry, later for its start time: burst workers do not wait)'
    Q status

    Say 'a worker pool in the background until every job has settled'
    $workersOut = Join-Path $demoDir 'workers.out'
    $workersErr = Join-Path $demoDir 'workers.log'
    Write-Host 'PS> Start-Process queuectl -ArgumentList worker,start,--count,3' -ForegroundColor DarkGray
    $workers = Start-Process -FilePath $queuectl -ArgumentList 'worker', 'start', '--count', '3' `
        -NoNewWindow -PassThru -RedirectStandardOutput $workersOut -RedirectStandardError $workersErr
    Start-Sleep -Seconds 1
    Q status
    $deadline = (Get-Date).AddSeconds(60)
    while ($true) {
        $jobs = (Q-Text status --json | ConvertFrom-Json).jobs
        $left = $jobs.pending + $jobs.failed + $jobs.processing
        if ($left -eq 0) { break }
        Write-Host "  jobs still to settle: $left"
        if ((Get-Date) -gt $deadline) {
            Get-Content $workersErr | Write-Host
            throw 'jobs did not settle within 60 s'
        }
        Start-Sleep -Seconds 1
    }
    Write-Host '  every job has settled'
    Q worker stop --timeout 30
    $workers.WaitForExit()
    $workers = $null
    Write-Host "what the pool printed (stderr of 'queuectl worker start'):"
    Get-Content $workersErr | ForEach-Object { Write-Host "  $_" }

    # -- 5. results ---------------------------------------------------------------------------

    Say 'results'
    Q status
    Q list
    Q dlq list
    Say 'the output of every run of flaky (a header per run on stderr, the output on stdout)'
    Q logs flaky
    Say 'the dead job, with its run history'
    Q show doomed
    Say 'the job killed by its timeout'
    Q show sleepy --json

    # -- 6. summary ---------------------------------------------------------------------------

    Say 'summary'
    # Assigned first: Windows PowerShell 5.1's ConvertFrom-Json emits a JSON array as one object.
    $jobList = Q-Text list --limit 0 --json | ConvertFrom-Json
    $all = @{}
    foreach ($job in $jobList) { $all[$job.id] = $job }
    $expected = [ordered]@{
        hello = 'completed'; flaky = 'completed'; urgent = 'completed'; later = 'completed'
        doomed = 'dead'; sleepy = 'dead'
    }
    $problems = @()
    foreach ($id in $expected.Keys) {
        if ($all[$id].state -ne $expected[$id]) {
            $problems += "$id is $($all[$id].state), expected $($expected[$id])"
        }
    }
    $batchJobs = @($all.Values | Where-Object { $_.queue -eq 'batch' })
    foreach ($job in $batchJobs) {
        if ($job.state -ne 'completed') { $problems += "batch job $($job.id) is $($job.state)" }
    }
    Write-Host "- hello, urgent, later and $($batchJobs.Count) batch jobs completed on their first run"
    Write-Host "- flaky failed once, then completed on attempt $($all['flaky'].attempts)"
    Write-Host "- doomed ran $($all['doomed'].attempts) times (max_retries 2), then went to the dead-letter queue"
    Write-Host "- sleepy was killed by its timeout: $($all['sleepy'].last_error)"
    if ($problems.Count -gt 0) { throw ('UNEXPECTED: ' + ($problems -join '; ')) }
    Write-Host 'demo finished: every job ended as expected'
    Write-Host ''
    if ($env:KEEP_DEMO -eq '1') {
        Write-Host 'Try next, on this demo store, which is kept (set $env:QUEUECTL_DB as printed below):'
        Write-Host "  & '$queuectl' dlq retry doomed     # back to pending with attempts 0"
        Write-Host "  & '$queuectl' show flaky           # run history of the retried job"
    } else {
        Write-Host 'This demo store is removed now; set $env:KEEP_DEMO = 1 and run the demo again to try more on it.'
    }
    Write-Host 'On your own queue: see QUICKSTART.md and WINDOWS_GUIDE.md.'
} finally {
    if ($null -ne $workers -and -not $workers.HasExited) {
        & $queuectl worker stop --timeout 10 | Out-Null
        if (-not $workers.HasExited) { Stop-Process -Id $workers.Id -Force }
    }
    Pop-Location
    $demoDb = $env:QUEUECTL_DB
    Remove-Item Env:QUEUECTL_DB
    foreach ($name in $savedEnv.Keys) { Set-Item -Path "Env:$name" -Value $savedEnv[$name] }
    if ($env:KEEP_DEMO -eq '1') {
        Write-Host "the demo store is kept: `$env:QUEUECTL_DB = '$demoDb'"
    } else {
        Remove-Item -Recurse -Force $demoDir -ErrorAction SilentlyContinue
    }
}
