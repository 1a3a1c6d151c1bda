"""The runner: plain commands start without a shell only where the result is the same."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from queuectl.models import Outcome
from queuectl.runner import RunningCommand, plain_argv

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell semantics")


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("sleep 2", ["sleep", "2"]),
        ("/usr/bin/env", ["/usr/bin/env"]),
        ("python3 -m http.server 8000", ["python3", "-m", "http.server", "8000"]),
        ("./build.sh --target=x", None),  # '=' could be an assignment in other positions
        ("make -j4 all", ["make", "-j4", "all"]),
    ],
)
def test_plain_commands_are_split_into_words(command, argv):
    assert plain_argv(command) == argv


@pytest.mark.parametrize(
    "command",
    [
        "echo hello",  # builtin: its options and escapes differ from /bin/echo
        "true",
        "cd /tmp",
        "sleep 1; sleep 2",
        "ls *.txt",
        "cat ~/notes",
        "echo $HOME",
        "grep 'a b' f",
        'grep "a" f',
        "a | b",
        "a > out",
        "a && b",
        "FOO=1 env",
        "sleep  2",  # two spaces: empty word
        "sleep\t2",
        "sleep 2\n",
        "if true",
        "time sleep 1",
        "(sleep 1)",
        "sleep `x`",
    ],
)
def test_anything_the_shell_would_interpret_goes_through_the_shell(command):
    assert plain_argv(command) is None


def run(command: str, tmp_path: Path, **env: str):
    running = RunningCommand(command, env, tmp_path / "logs" / "run.log")
    running.wait_for_exit(30)
    return running.result()


def test_a_plain_command_runs_directly_and_sees_the_job_variables(tmp_path):
    result = run("printenv QUEUECTL_JOB_ID", tmp_path, QUEUECTL_JOB_ID="job-7")
    assert result.outcome is Outcome.EXITED and result.exit_code == 0
    assert result.output_tail == "job-7\n"


def test_a_missing_program_fails_as_the_shell_reports_it(tmp_path):
    result = run("no-such-program-xyz arg", tmp_path)
    assert result.exit_code == 127
    assert "not found" in result.output_tail


def test_a_script_without_shebang_runs_as_the_shell_would_run_it(tmp_path):
    script = tmp_path / "noshebang"
    script.write_text("echo from-script\nexit 3\n")
    script.chmod(0o700)
    result = run(str(script), tmp_path)
    assert result.exit_code == 3
    assert result.output_tail == "from-script\n"


def test_a_program_killed_by_a_signal_reports_what_the_shell_would(tmp_path):
    script = tmp_path / "segv"
    script.write_text("#!/bin/sh\nkill -SEGV $$\n")
    script.chmod(0o700)
    direct = run(str(script), tmp_path)
    through_shell = run(f"{script};", tmp_path)  # ';' forces the shell
    assert plain_argv(str(script)) is not None and plain_argv(f"{script};") is None
    assert direct.exit_code == through_shell.exit_code == 128 + 11
    assert direct.outcome is through_shell.outcome is Outcome.EXITED


def test_a_timeout_kill_of_a_direct_program_is_a_kill_not_an_exit_code(tmp_path):
    running = RunningCommand("sleep 30", {}, tmp_path / "logs" / "run.log")
    assert not running.wait_for_exit(0.05)
    running.kill(Outcome.TIMED_OUT, "timed out after 0.05s", grace=1)
    assert running.wait_for_exit(5)
    result = running.result()
    assert result.outcome is Outcome.TIMED_OUT and result.exit_code is None


def test_log_files_are_owner_only(tmp_path):
    old = os.umask(0)
    try:
        run("printenv HOME", tmp_path)
    finally:
        os.umask(old)
    assert (tmp_path / "logs" / "run.log").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o700


def test_a_silent_run_leaves_no_log_file_and_a_printing_one_does(tmp_path):
    silent = run("sleep 0", tmp_path)
    assert silent.output_tail == "" and not (tmp_path / "logs" / "run.log").exists()
    loud = run("printenv HOME", tmp_path)
    assert (tmp_path / "logs" / "run.log").read_text() == loud.output_tail != ""


def test_a_published_log_can_be_followed_while_the_command_runs(tmp_path):
    log = tmp_path / "logs" / "run.log"
    running = RunningCommand("sh -c 'echo first; sleep 30'", {}, log)
    try:
        running.publish_log()
        deadline = time.monotonic() + 10
        while not (log.exists() and log.read_text() == "first\n"):
            assert time.monotonic() < deadline, "the running command's output never showed"
            time.sleep(0.01)
    finally:
        running.kill(Outcome.KILLED, "test over", grace=0)
        running.wait_for_exit(5)
        running.result()


def test_the_tail_keeps_only_the_last_bytes(tmp_path):
    result = run("sh -c 'seq 1 100000'", tmp_path)
    assert len(result.output_tail.encode()) <= 8192
    assert result.output_tail.endswith("99999\n100000\n")
    assert (tmp_path / "logs" / "run.log").stat().st_size == len(
        "".join(f"{n}\n" for n in range(1, 100001))
    )
