# Pester 5 tests of the Queuectl module's own logic (no queuectl program needed): the manifest,
# help, argument quoting and the JSON unrolling. The end-to-end flow is tests/test_core_flow.ps1.
#
#   Invoke-Pester -Path tests/Queuectl.Tests.ps1 -Output Detailed

BeforeAll {
    $manifestPath = Join-Path (Split-Path -Parent $PSScriptRoot) (Join-Path 'powershell' (Join-Path 'Queuectl' 'Queuectl.psd1'))
    Import-Module $manifestPath -Force
}

AfterAll {
    Remove-Module Queuectl -ErrorAction SilentlyContinue
}

Describe 'the manifest' {
    It 'is valid and exports exactly the listed functions' {
        $manifest = Test-ModuleManifest -Path $manifestPath
        $exported = @((Get-Module Queuectl).ExportedFunctions.Keys | Sort-Object)
        $listed = @($manifest.ExportedFunctions.Keys | Sort-Object)
        $exported | Should -Be $listed
        (Get-Module Queuectl).ExportedCmdlets.Count | Should -Be 0
        (Get-Module Queuectl).ExportedAliases.Count | Should -Be 0
    }

    It 'loads its functions from the Public files and its helpers from the Private one' {
        foreach ($command in (Get-Command -Module Queuectl)) {
            Split-Path -Leaf (Split-Path -Parent $command.ScriptBlock.File) | Should -Be 'Public'
        }
        InModuleScope Queuectl {
            Split-Path -Leaf (Get-Command Invoke-QueuectlCli).ScriptBlock.File | Should -Be 'QueuectlCli.ps1'
            Split-Path -Leaf (Split-Path -Parent (Get-Command Invoke-QueuectlCli).ScriptBlock.File) | Should -Be 'Private'
        }
    }

    It 'uses approved verbs only' {
        $approved = @(Get-Verb | ForEach-Object { $_.Verb })
        foreach ($command in (Get-Command -Module Queuectl)) {
            $approved | Should -Contain $command.Verb
        }
    }

    It 'gives every function a synopsis and an example' {
        foreach ($command in (Get-Command -Module Queuectl)) {
            $help = Get-Help $command.Name -Full
            $help.Synopsis | Should -Not -BeNullOrEmpty
            @($help.Examples.Example).Count | Should -BeGreaterThan 0
        }
    }

    It 'lets -WhatIf through on functions that change things' {
        foreach ($name in 'Add-QueuectlJob', 'Stop-QueuectlJob', 'Restart-QueuectlDeadLetter', 'Set-QueuectlConfig', 'Suspend-QueuectlQueue', 'Resume-QueuectlQueue', 'Start-QueuectlWorker', 'Stop-QueuectlWorker') {
            (Get-Command $name).Parameters.ContainsKey('WhatIf') | Should -BeTrue
        }
    }
}

Describe 'the CLI arguments' {
    It 'quotes a command line that splits back into the same strings' {
        InModuleScope Queuectl {
            $line = ConvertTo-QueuectlCommandLine -Argument @('plain', 'two words', 'say "hi"', 'C:\my dir\', '', 'a\\"b')
            $line | Should -Be 'plain "two words" "say \"hi\"" "C:\my dir\\" "" "a\\\\\"b"'
        }
    }

    It 'puts --db, the subcommand, options, --json and -- arguments in order' {
        InModuleScope Queuectl {
            $argv = ConvertTo-QueuectlArgumentList -Prefix @('-m', 'queuectl') -Store 'q.db' -Command @('list') -Option @{ '--state' = 'dead'; '--queue' = ''; '--limit' = 0 } -Json
            ($argv -join ' ') | Should -Be '-m queuectl --db q.db list --limit 0 --state dead --json'
            $argv = ConvertTo-QueuectlArgumentList -Command @('worker', 'start') -Option @{ '--queue' = @('a', 'b'); '--burst' = $true; '--quiet' = $false }
            ($argv -join ' ') | Should -Be 'worker start --burst --queue a --queue b'
            $argv = ConvertTo-QueuectlArgumentList -Command @('dlq', 'retry') -Argument @('-odd-id')
            ($argv -join ' ') | Should -Be 'dlq retry -- -odd-id'
        }
    }
}

Describe 'JSON from the CLI' {
    It 'unrolls an array into one pipeline object per element' {
        InModuleScope Queuectl {
            @(ConvertFrom-QueuectlJson -Text '[{"id":"a"},{"id":"b"}]').Count | Should -Be 2
            (ConvertFrom-QueuectlJson -Text '[{"id":"a"},{"id":"b"}]' | Measure-Object).Count | Should -Be 2
            @(ConvertFrom-QueuectlJson -Text '[{"id":"a"}]')[0].id | Should -Be 'a'
            @(ConvertFrom-QueuectlJson -Text '[]').Count | Should -Be 0
        }
    }

    It 'keeps an object whole, with its arrays inside' {
        InModuleScope Queuectl {
            $status = @(ConvertFrom-QueuectlJson -Text '{"jobs":{"dead":1},"workers":[],"paused_queues":["q"]}')
            $status.Count | Should -Be 1
            $status[0].jobs.dead | Should -Be 1
            @($status[0].paused_queues) | Should -Be @('q')
        }
    }
}
