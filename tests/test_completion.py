"""Shell completion for bash, zsh and fish: Click's (SPEC §10), through `_QUEUECTL_COMPLETE`.
PowerShell's is the PowerShell module's (WINDOWS_GUIDE.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import base_env


def complete(tmp_path: Path, instruction: str, **env: str) -> subprocess.CompletedProcess:
    """`queuectl` run as a shell's completion runs it (prog_name is `queuectl` also under
    `python -m queuectl`, so the variable and the scripts are the console script's)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environment = base_env(str(tmp_path / "never-created.db"), tmp_path)
    environment.update(HOME=str(home), _QUEUECTL_COMPLETE=instruction, **env)
    return subprocess.run(
        [sys.executable, "-m", "queuectl"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.mark.parametrize(
    "shell, marker",
    [
        ("bash", "complete -o nosort -F _queuectl_completion queuectl"),
        ("zsh", "compdef _queuectl_completion queuectl"),
        ("fish", "complete --no-files --command queuectl"),
    ],
)
def test_each_shell_gets_a_completion_script(tmp_path, shell, marker):
    result = complete(tmp_path, f"{shell}_source")
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert "_QUEUECTL_COMPLETE" in result.stdout
    # Completing opens no store: nothing is created, not even the default one.
    assert not (tmp_path / "never-created.db").exists()
    assert list((tmp_path / "home").iterdir()) == []


@pytest.mark.parametrize(
    "words, cword, expected",
    [
        ("queuectl wor", "1", ["plain,worker"]),
        ("queuectl dlq ", "2", ["plain,list", "plain,retry"]),
        ("queuectl worker st", "2", ["plain,start", "plain,stop"]),
        ("queuectl list --st", "2", ["plain,--state"]),
        ("queuectl list --state d", "3", ["plain,dead"]),
    ],
)
def test_bash_completion_offers_commands_options_and_states(tmp_path, words, cword, expected):
    result = complete(tmp_path, "bash_complete", COMP_WORDS=words, COMP_CWORD=cword)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_zsh_and_fish_completion_offer_the_command(tmp_path):
    zsh = complete(tmp_path, "zsh_complete", COMP_WORDS="queuectl wor", COMP_CWORD="1")
    assert zsh.returncode == 0 and zsh.stdout.splitlines()[:2] == ["plain", "worker"]
    fish = complete(tmp_path, "fish_complete", COMP_WORDS="queuectl wor", COMP_CWORD="wor")
    assert fish.returncode == 0
    assert fish.stdout.splitlines() == ["plain,worker\tStart and stop worker processes."]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_sourced_in_bash_completes_a_command(tmp_path):
    """The whole path: bash sources the script and its function asks `queuectl` (a stand-in
    on PATH that runs this Python's queuectl) for the candidates."""
    script = complete(tmp_path, "bash_source").stdout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "queuectl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m queuectl "$@"\n')
    (bin_dir / "queuectl").chmod(0o755)
    (tmp_path / "complete.bash").write_text(script)
    env = base_env(str(tmp_path / "never-created.db"), tmp_path)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    probe = (
        "source ./complete.bash\n"
        "complete -p queuectl\n"
        "COMP_WORDS=(queuectl sch); COMP_CWORD=1\n"
        "_queuectl_completion queuectl\n"
        'echo "offered: ${COMPREPLY[*]}"\n'
    )
    result = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "complete -o nosort -F _queuectl_completion queuectl",
        "offered: schedule",
    ]
