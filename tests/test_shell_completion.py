"""Click's shell completion for the `queuectl` program (SPEC §10), as docs/usage.md tells users
to install it: `_QUEUECTL_COMPLETE=<shell>_source queuectl` prints a script for bash, zsh and
fish, and the completion it then asks for names real commands and choices.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, base_env


def run_completion(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    env = {**base_env(str(tmp_path / "queue.db"), tmp_path), **variables}
    return subprocess.run(
        [sys.executable, "-m", "queuectl"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _queuectl_completion queuectl"),
        ("zsh", "#compdef queuectl"),
        ("fish", "complete --no-files --command queuectl"),
    ],
)
def test_the_completion_script_of_each_shell(tmp_path, shell, marker):
    result = run_completion(tmp_path, _QUEUECTL_COMPLETE=f"{shell}_source")
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert f"_QUEUECTL_COMPLETE={shell}_complete" in result.stdout
    assert not (tmp_path / "queue.db").exists()  # completing never creates a store


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("queuectl dl", "1", {"plain,dlq"}),
        ("queuectl list --state p", "3", {"plain,pending", "plain,processing"}),
        ("queuectl dlq re", "2", {"plain,retry"}),
    ],
)
def test_bash_completion_answers(tmp_path, words, cword, expected):
    result = run_completion(
        tmp_path, _QUEUECTL_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == expected
