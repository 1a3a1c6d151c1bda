"""The runner and spawning: plain commands start without a shell only where the result is the
same; log files as the runner writes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queuectl.models import Outcome
from queuectl.runlogs import LogFolder
from queuectl.runner import RunningCommand
from queuectl.spawning import USE_POSIX_SPAWN, _posix_spawn, plain_argv

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


def run(command: str, tmp_path: Path, logs: LogFolder | None = None, **env: str):
    running = RunningCommand(command, env, tmp_path / "logs" / "run.log", logs)
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


def ignored_signals(status_text: str) -> set[int]:
    mask = int(
        next(line for line in status_text.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


@pytest.mark.parametrize("command", ["cat /proc/self/status", "cat /proc/self/status;"])
def test_commands_get_the_signals_python_ignores_back(tmp_path, command):
    """Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec:
    the runner must hand commands the default back, started directly or through the shell."""
    ignored = ignored_signals(run(command, tmp_path).output_tail)
    assert signal.SIGPIPE not in ignored and signal.SIGXFSZ not in ignored, ignored
    # What that means for a pipeline: `yes` dies quietly when `head` is done.
    assert run("yes | head -n 2", tmp_path).output_tail == "y\ny\n"


INHERIT_CHECK = """
import os, sys
from queuectl.runner import RunningCommand
from queuectl.spawning import close_inherited_fds

def listing(name):
    running = RunningCommand("ls /proc/self/fd", {}, os.path.join(sys.argv[1], name))
    running.wait_for_exit(30)
    return running.result().output_tail.split()

read_end, write_end = os.pipe()
os.set_inheritable(write_end, True)  # as if this process had been started with it
before = listing("before.log")
close_inherited_fds()
print(str(write_end) in before, listing("after.log"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_commands_inherit_no_descriptor_but_stdin_stdout_and_stderr(tmp_path):
    """Nothing the worker holds (store files, pipes, sockets) reaches a command: `ls` lists
    only 0-2 and the folder it opened itself. The first listing shows the check can fail."""
    check = subprocess.run(
        [sys.executable, "-c", INHERIT_CHECK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert check.stdout.strip() == "True ['0', '1', '2', '3']", check.stdout + check.stderr


def log_inode(running: RunningCommand) -> int:
    return os.fstat(running._log.fd).st_ino


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE log files")
def test_a_silent_runs_log_file_serves_the_next_run(tmp_path):
    logs = LogFolder(str(tmp_path / "logs"))  # as a worker keeps it from run to run
    first = RunningCommand("true", {}, tmp_path / "logs" / "one.log", logs)
    first_inode = log_inode(first)
    first.wait_for_exit(30)
    assert first.result().output_tail == ""
    second = RunningCommand("true", {}, tmp_path / "logs" / "two.log", logs)
    assert log_inode(second) == first_inode
    second.wait_for_exit(30)
    second.result()
    logs.close()
    assert not list((tmp_path / "logs").iterdir())


def test_a_file_something_may_still_write_to_is_not_reused(tmp_path):
    """The command exits at once but leaves a writer behind in its process group: its late
    output must not land in the next run's log."""
    logs = LogFolder(str(tmp_path / "logs"))
    ready = tmp_path / "ready"
    leaves_a_writer = f"(sleep 0.5; echo late; touch {ready}) &"
    assert run(leaves_a_writer, tmp_path, logs).output_tail == ""
    after = RunningCommand(
        f"sh -c 'while [ ! -e {ready} ]; do sleep 0.05; done'",
        {},
        tmp_path / "logs" / "after.log",
        logs,
    )
    after.wait_for_exit(30)
    assert after.result().output_tail == ""
    logs.close()


@pytest.mark.skipif(not USE_POSIX_SPAWN, reason="os.posix_spawn is used on Linux only")
def test_a_spawned_child_waits_with_a_timeout_as_popen_does():
    """The polling wait used where Linux has no pidfds."""
    child = _posix_spawn(["sleep", "0.3"], {}, 1)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.01)
    assert child.poll() is None
    assert child.wait(10) == 0 and child.poll() == 0
