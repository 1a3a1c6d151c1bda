# Private helpers of the Queuectl module: how the queuectl command line is found, started and
# read. Dot-sourced by Queuectl.psm1; nothing here is exported (the manifest's
# FunctionsToExport names the public functions only).
#
# Every call of the CLI in the module goes through Invoke-QueuectlCli, with the subcommand path
# as a literal array (-Command @('dlq', 'retry')) and the options as a literal hashtable whose
# keys are the CLI's option names (-Option @{ '--state' = $State }). tests/test_powershell.py
# reads those literals from the parse tree and checks each against the real Click command tree,
# so keep them literal.

# The module's defaults, changed by Set-QueuectlDefault. An empty Executable means
# $env:QUEUECTL_EXE, else 'queuectl' found on PATH; an empty Store means the CLI's own rule
# (--db is not passed: $env:QUEUECTL_DB, a .env file, else the per-user default store).
$script:QueuectlDefault = @{
    Executable         = ''
    ExecutableArgument = @()
    Store              = ''
}

function Resolve-QueuectlExecutable {
    # Returns the program to start and the arguments that go before the subcommand, e.g.
    # @('C:\venv\Scripts\queuectl.exe') or @('/usr/bin/python3', '-m', 'queuectl').
    [CmdletBinding()]
    param()
    $name = $script:QueuectlDefault.Executable
    $prefix = @($script:QueuectlDefault.ExecutableArgument)
    if (-not $name) { $name = $env:QUEUECTL_EXE }
    if (-not $name) { $name = 'queuectl' }
    # Get-Command resolves PATH and PATHEXT the way the shell does (queuectl -> queuectl.exe on
    # Windows); ProcessStartInfo alone would not on every platform.
    $found = @(Get-Command -Name $name -CommandType Application -ErrorAction SilentlyContinue)
    if ($found.Count -eq 0) {
        $message = "the queuectl program '$name' was not found: install queuectl (pip install .), " +
        'or set $env:QUEUECTL_EXE or Set-QueuectlDefault -Executable to its path'
        $exception = New-Object System.Management.Automation.ItemNotFoundException $message
        throw (New-Object System.Management.Automation.ErrorRecord $exception, 'QueuectlNotFound', 'ObjectNotFound', $name)
    }
    return , (@($found[0].Path) + $prefix)
}

function ConvertTo-QueuectlCommandLine {
    # Quotes arguments into one command line that the Microsoft C runtime (and so Python's
    # sys.argv on Windows, and .NET's own parser elsewhere) splits back into exactly the same
    # strings. Needed for Windows PowerShell 5.1 (.NET Framework: no ProcessStartInfo.ArgumentList)
    # and Start-Process, which both take a single string; it also avoids 5.1's native-argument
    # bug that drops embedded double quotes.
    [CmdletBinding()]
    param([string[]]$Argument)
    $backslash = [char]92
    $quoted = foreach ($arg in $Argument) {
        if ($arg.Length -gt 0 -and $arg -notmatch '[\s"]') {
            $arg
            continue
        }
        $builder = New-Object System.Text.StringBuilder
        [void]$builder.Append('"')
        $slashes = 0
        foreach ($char in $arg.ToCharArray()) {
            if ($char -eq $backslash) {
                $slashes++
                continue
            }
            if ($char -eq '"') {
                # Backslashes before a quote are doubled, and the quote itself escaped.
                [void]$builder.Append($backslash, 2 * $slashes + 1)
            } elseif ($slashes -gt 0) {
                [void]$builder.Append($backslash, $slashes)
            }
            [void]$builder.Append($char)
            $slashes = 0
        }
        # Trailing backslashes are doubled so that they do not escape the closing quote.
        if ($slashes -gt 0) { [void]$builder.Append($backslash, 2 * $slashes) }
        [void]$builder.Append('"')
        $builder.ToString()
    }
    return ($quoted -join ' ')
}

function ConvertTo-QueuectlArgumentList {
    # The argument vector after the program: prefix (e.g. -m queuectl), --db, the subcommand
    # path, then the options (a $null, '' or $false value is left out, $true is a bare flag, an
    # array repeats the option: --queue a --queue b), then the positional arguments.
    [CmdletBinding()]
    param(
        [string[]]$Prefix,
        [string]$Store,
        [string[]]$Command,
        [System.Collections.IDictionary]$Option,
        [string[]]$Argument,
        [switch]$Json
    )
    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    $list = New-Object System.Collections.Generic.List[string]
    foreach ($item in $Prefix) { $list.Add($item) }
    if (-not $Store) { $Store = $script:QueuectlDefault.Store }
    if ($Store) {
        $list.Add('--db')
        $list.Add($Store)
    }
    foreach ($item in $Command) { $list.Add($item) }
    if ($Option) {
        foreach ($name in @($Option.Keys | Sort-Object)) {
            $value = $Option[$name]
            if ($value -is [System.Management.Automation.SwitchParameter]) { $value = $value.IsPresent }
            if ($null -eq $value -or ($value -is [string] -and $value -eq '')) { continue }
            if ($value -is [bool]) {
                if ($value) { $list.Add($name) }
                continue
            }
            foreach ($one in @($value)) {
                $list.Add($name)
                # Invariant culture: 1.5 must not become '1,5' under a German locale.
                $list.Add([System.Convert]::ToString($one, $invariant))
            }
        }
    }
    if ($Json) { $list.Add('--json') }
    # '--' would be safer before ids that start with '-', but Click then treats every later
    # word as an argument, which is exactly what we want here.
    if ($Argument -and $Argument.Count -gt 0) {
        $list.Add('--')
        foreach ($item in $Argument) { $list.Add($item) }
    }
    return , $list.ToArray()
}

function New-QueuectlProcessStartInfo {
    # A ProcessStartInfo for the program with the argument vector, quoted for .NET Framework or
    # passed one by one through ArgumentList where it exists (PowerShell 7, .NET Core).
    [CmdletBinding()]
    param([string]$FilePath, [string[]]$Argument)
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = $FilePath
    $info.UseShellExecute = $false
    if ($null -ne $info.PSObject.Properties['ArgumentList']) {
        foreach ($item in $Argument) { $info.ArgumentList.Add($item) }
    } else {
        $info.Arguments = ConvertTo-QueuectlCommandLine -Argument $Argument
    }
    return $info
}

function New-QueuectlError {
    # An ErrorRecord carrying the CLI's own message (its stderr) and exit status.
    [CmdletBinding()]
    param([string]$Message, [int]$ExitCode, [string]$CommandText, [object]$Target)
    $text = $Message.Trim()
    if (-not $text) { $text = "queuectl $CommandText exited with status $ExitCode" }
    $exception = New-Object System.InvalidOperationException $text
    $exception.Data['ExitCode'] = $ExitCode
    $exception.Data['Command'] = "queuectl $CommandText"
    $category = 'InvalidOperation'
    if ($ExitCode -eq 2) { $category = 'InvalidArgument' }
    if ($ExitCode -eq 124) { $category = 'OperationTimeout' }
    return New-Object System.Management.Automation.ErrorRecord $exception, "QueuectlExit$ExitCode", $category, $Target
}

function Invoke-QueuectlCli {
    # Runs one queuectl command.
    #   -Mode Capture (default): stdin gets -InputText (UTF-8, one line each); stdout and stderr
    #     are read whole (UTF-8). Returns stdout as one string, or with -Json the parsed document
    #     with arrays unrolled (see ConvertFrom-QueuectlJson). Non-empty stderr of a successful
    #     run is passed on as a warning (e.g. 'already queued: ID'), or as verbose output with
    #     -StderrAsVerbose (the run headers of `logs`).
    #   -Mode Stream: stdout lines go down the pipeline as they are written; stderr goes to the
    #     console as it is (worker event lines, progress bars).
    #   -Mode Background: started detached with stdout and stderr in files; returns the Process.
    # An exit status that is not in -SuccessExitCode throws an ErrorRecord whose message is the
    # CLI's stderr; the public functions turn it into a terminating or non-terminating error.
    # With -PassThruResult it returns @{ ExitCode; Output; ErrorText } instead of throwing.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string[]]$Command,
        [System.Collections.IDictionary]$Option,
        [string[]]$Argument,
        [switch]$Json,
        [string]$Store,
        [string[]]$InputText,
        [ValidateSet('Capture', 'Stream', 'Background')][string]$Mode = 'Capture',
        [int[]]$SuccessExitCode = @(0),
        [string]$LogPath,
        [object]$Target,
        [switch]$StderrAsVerbose,
        [switch]$PassThruResult
    )
    # Local to this function: the caller's -ErrorAction SilentlyContinue must not turn the
    # `throw` below into a silent continue (it reaches the caller's catch as it should).
    $ErrorActionPreference = 'Stop'
    $program = Resolve-QueuectlExecutable
    $file = $program[0]
    $prefix = @($program | Select-Object -Skip 1)
    $argv = ConvertTo-QueuectlArgumentList -Prefix $prefix -Store $Store -Command $Command -Option $Option -Argument $Argument -Json:$Json
    $commandText = ($Command -join ' ')
    Write-Verbose ("queuectl " + (ConvertTo-QueuectlCommandLine -Argument ($argv | Select-Object -Skip $prefix.Count)))

    if ($Mode -eq 'Background') {
        if (-not $LogPath) {
            $LogPath = Join-Path ([System.IO.Path]::GetTempPath()) ('queuectl-worker-' + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.log')
        }
        # One string: Start-Process would join an array with spaces, unquoted.
        $process = Start-Process -FilePath $file -ArgumentList (ConvertTo-QueuectlCommandLine -Argument $argv) `
            -NoNewWindow -PassThru -RedirectStandardError $LogPath -RedirectStandardOutput ($LogPath + '.out')
        $process | Add-Member -NotePropertyName LogPath -NotePropertyValue $LogPath
        return $process
    }

    $info = New-QueuectlProcessStartInfo -FilePath $file -Argument $argv
    $utf8 = New-Object System.Text.UTF8Encoding $false
    $info.RedirectStandardOutput = $true
    $info.StandardOutputEncoding = $utf8
    if ($Mode -eq 'Capture') {
        $info.RedirectStandardInput = $true
        $info.RedirectStandardError = $true
        $info.StandardErrorEncoding = $utf8
        $info.CreateNoWindow = $true
    }
    # Python's stdin/stdout in UTF-8 whatever the console code page, matching the encodings above.
    $info.EnvironmentVariables['PYTHONIOENCODING'] = 'utf-8'

    $process = [System.Diagnostics.Process]::Start($info)
    $errorText = ''
    $output = $null
    try {
        if ($Mode -eq 'Capture') {
            # Both pipes are drained concurrently, so a chatty child cannot block on a full pipe
            # while we write its stdin or wait for it.
            $stdoutTask = $process.StandardOutput.ReadToEndAsync()
            $stderrTask = $process.StandardError.ReadToEndAsync()
            $writer = New-Object System.IO.StreamWriter $process.StandardInput.BaseStream, $utf8
            try {
                foreach ($line in @($InputText)) {
                    if ($null -eq $line) { continue }
                    $writer.Write($line)
                    $writer.Write("`n")
                }
                $writer.Close()
            } catch [System.IO.IOException] {
                # The program ended without reading all its input (a usage error, say): its exit
                # status and stderr below tell what happened.
                Write-Verbose "queuectl did not read its input: $($_.Exception.Message)"
            }
            $process.WaitForExit()
            $output = $stdoutTask.Result
            $errorText = $stderrTask.Result
        } else {
            while ($null -ne ($line = $process.StandardOutput.ReadLine())) {
                Write-Output $line
            }
            $process.WaitForExit()
        }
        $exitCode = $process.ExitCode
    } finally {
        $process.Dispose()
    }

    if ($PassThruResult) {
        return [pscustomobject]@{ ExitCode = $exitCode; Output = $output; ErrorText = $errorText }
    }
    if ($SuccessExitCode -notcontains $exitCode) {
        throw (New-QueuectlError -Message $errorText -ExitCode $exitCode -CommandText $commandText -Target $Target)
    }
    if ($errorText -and $errorText.Trim()) {
        if ($StderrAsVerbose) { Write-Verbose $errorText.Trim() } else { Write-Warning $errorText.Trim() }
    }
    if ($Mode -ne 'Capture') { return }
    if ($Json) {
        return ConvertFrom-QueuectlJson -Text $output
    }
    return $output
}

function ConvertFrom-QueuectlJson {
    # Parses one JSON document and writes it to the pipeline so that a JSON array becomes one
    # pipeline object per element on every PowerShell version.
    #
    # Why: Windows PowerShell 5.1's ConvertFrom-Json writes a JSON array as ONE object (the
    # array itself); PowerShell 7 writes its elements one by one. Piping 5.1's output straight
    # on would hand Stop-QueuectlJob a single Object[] whose 'id' property does not exist.
    # Assigning the result to a variable and enumerating it with foreach gives the same result
    # on both: an array (5.1: the array; 7: the collected elements) yields its elements, a single
    # object (a JSON object, or a one-element array on 7) yields itself, and an empty array
    # yields nothing. A JSON object is written as it is (not enumerated: PSCustomObject is not
    # a collection).
    [CmdletBinding()]
    param([string]$Text)
    if (-not $Text -or -not $Text.Trim()) { return }
    $parsed = $Text | ConvertFrom-Json
    foreach ($item in $parsed) {
        $item
    }
}

function Add-QueuectlTypeName {
    # Tags objects with a type name (e.g. Queuectl.Job) so that users can tell them apart and
    # format them; passes them on.
    [CmdletBinding()]
    param(
        [Parameter(ValueFromPipeline = $true)][object]$InputObject,
        [string]$TypeName
    )
    process {
        if ($null -ne $InputObject) {
            $InputObject.PSObject.TypeNames.Insert(0, $TypeName)
            $InputObject
        }
    }
}

function New-QueuectlCompletion {
    # CompletionResults for the words that start with what was typed, quoted when needed.
    param([string[]]$Word, [string]$Typed)
    $typedText = $Typed.Trim([char[]]@([char]39, [char]34))
    foreach ($one in $Word) {
        if ($one -notlike "$typedText*") { continue }
        $text = $one
        if ($one -match '[\s''"$;,&|(){}@#`]') { $text = "'" + $one.Replace("'", "''") + "'" }
        New-Object System.Management.Automation.CompletionResult $text, $one, 'ParameterValue', $one
    }
}
