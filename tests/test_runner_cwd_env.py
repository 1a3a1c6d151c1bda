"""A job's cwd and env as the runner applies them (SPEC §7), on both ways of starting a command:
os.posix_spawn (Linux, jobs without a cwd) and Popen (jobs with a cwd, and elsewhere)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from queuectl import spawning
from queuectl.models import Outcome
from queuectl.runner import RunningCommand

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell semantics")

WORKER_ENV = {"QUEUECTL_JOB_ID": "job", "QUEUECTL_ATTEMPT": "1"}
# Prints the folder and each variable asked for, NUL-separated: values may hold newlines.
SHOW = 'pwd; for n in {names}; do printf \'%s=%s\\0\' "$n" "$(printenv "$n")"; done'


@pytest.fixture(params=["posix_spawn", "popen"])
def spawn_path(request, monkeypatch):
    """Each way of starting a command; posix_spawn only where the worker uses it."""
    if request.param == "posix_spawn" and not spawning.USE_POSIX_SPAWN:
        pytest.skip("os.posix_spawn is used on Linux only")
    monkeypatch.setattr(spawning, "USE_POSIX_SPAWN", request.param == "posix_spawn")
    return request.param


def run(tmp_path: Path, command: str, cwd=None, job_env=None, name: str = "run.log"):
    """Run one command to its end; its result, and its output (the tail the runner reads back:
    these outputs are short)."""
    running = RunningCommand(
        command, WORKER_ENV, tmp_path / "logs" / name, cwd=cwd, job_env=job_env
    )
    running.wait_for_exit(30)
    result = running.result()
    return result, result.output_tail.encode()


def shown(output: bytes) -> tuple[str, dict[str, str]]:
    folder, _, rest = output.decode().partition("\n")
    pairs = [item.split("=", 1) for item in rest.split("\0") if item]
    return folder, dict(pairs)


def test_the_job_env_is_added_and_the_worker_variables_win(tmp_path, spawn_path):
    env = {"GREETING": "hello", "QUEUECTL_JOB_ID": "not-allowed-but-loses-anyway"}
    result, output = run(tmp_path, SHOW.format(names="GREETING QUEUECTL_JOB_ID"), job_env=env)
    assert result.succeeded, result
    _folder, seen = shown(output)
    assert seen == {"GREETING": "hello", "QUEUECTL_JOB_ID": "job"}


def test_hostile_values_arrive_intact(tmp_path, spawn_path):
    env = {
        "NL": "line one\nline two\r\n",
        "QUOTES": 'it\'s "q" `x` $(y) \\ $HOME',
        "UNI": "h\u00e9llo \u2713 \U0001f600",
        "EMPTY": "",
        "EQ": "a=b=c",
    }
    result, output = run(tmp_path, SHOW.format(names=" ".join(env)), job_env=env)
    assert result.succeeded, result
    # $(...) strips trailing newlines: compare what the shell can show.
    expected = {name: value.rstrip("\n") for name, value in env.items()}
    assert shown(output)[1] == expected


def test_the_command_runs_in_its_cwd(tmp_path, spawn_path):
    folder = tmp_path / "work dir \u00e9"
    folder.mkdir()
    (folder / "marker").write_text("here")
    result, output = run(tmp_path, SHOW.format(names="X") + "; cat marker", cwd=str(folder))
    assert result.succeeded, result
    assert output.decode().splitlines()[0] == str(folder)
    assert output.decode().endswith("here")


def test_a_plain_command_also_runs_in_its_cwd(tmp_path, spawn_path):
    # Started without the shell: the program is found and run there all the same.
    folder = tmp_path / "plain"
    folder.mkdir()
    result, output = run(tmp_path, "pwd", cwd=str(folder))
    assert result.succeeded, result
    assert output.decode().strip() == str(folder)


def test_a_relative_program_is_found_in_the_cwd(tmp_path, spawn_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    script = folder / "hello.sh"
    script.write_text("#!/bin/sh\necho from script\n")
    script.chmod(0o755)
    result, output = run(tmp_path, "./hello.sh", cwd=str(folder))
    assert result.succeeded, result
    assert output == b"from script\n"


@pytest.mark.parametrize("kind", ["missing", "a file", "under a file"])
def test_a_folder_that_cannot_be_entered_means_not_started(tmp_path, spawn_path, kind):
    (tmp_path / "file").write_text("")
    folder = {
        "missing": tmp_path / "nowhere",
        "a file": tmp_path / "file",
        "under a file": tmp_path / "file" / "sub",
    }[kind]
    result, _ = run(tmp_path, "echo never > /dev/null", cwd=str(folder))
    assert result.outcome is Outcome.NOT_STARTED, result
    assert result.exit_code is None
    assert result.error.startswith(f"could not start: cannot run in folder {folder}: ")
    reason = result.error.rsplit(": ", 1)[1]
    assert reason in ("No such file or directory", "Not a directory"), result.error


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root enters any folder")
def test_a_folder_without_search_permission_means_not_started(tmp_path, spawn_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o600)
    try:
        result, _ = run(tmp_path, "pwd", cwd=str(folder))
    finally:
        folder.chmod(0o700)
    assert result.outcome is Outcome.NOT_STARTED, result
    assert result.error == f"could not start: cannot run in folder {folder}: Permission denied"


def test_a_folder_removed_after_the_check_still_fails_as_not_started(tmp_path, monkeypatch):
    # Popen's own chdir in the child is the last line: the error names the folder as well.
    monkeypatch.setattr(spawning, "check_folder", lambda path: None)
    result, _ = run(tmp_path, "pwd", cwd=str(tmp_path / "gone"))
    assert result.outcome is Outcome.NOT_STARTED, result
    assert result.error == (
        f"could not start: cannot run in folder {tmp_path / 'gone'}: No such file or directory"
    )


def test_a_missing_program_is_not_blamed_on_the_folder(tmp_path, spawn_path):
    result, output = run(tmp_path, "no-such-program-qctl", cwd=str(tmp_path))
    assert result.outcome is Outcome.EXITED and result.exit_code == 127, result


def test_one_jobs_env_does_not_leak_into_the_next(tmp_path, spawn_path):
    first, _ = run(tmp_path, "true", job_env={"LEAKY": "yes"}, name="one.log")
    assert first.succeeded
    second, output = run(tmp_path, SHOW.format(names="LEAKY"), name="two.log")
    assert second.succeeded
    assert shown(output)[1] == {"LEAKY": ""}
    assert "LEAKY" not in os.environ
