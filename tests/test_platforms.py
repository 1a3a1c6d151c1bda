"""The Windows choices, checked on Linux: each is a pure function of the platform and the
environment it is given (the shell, the tree kill, the default store folder, how workers are
started and told to stop), and the worker pool runs when started from a `spawn` process, as
every Python program on Windows starts one."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys

import click
import pytest
from conftest import ROOT

from queuectl.process_groups import tree_kill_argv
from queuectl.spawning import shell_argv, windows_command_line, windows_popen_options
from queuectl.stopping import STOP_COPY_SECONDS, worker_copy_window
from queuectl.store import default_store_dir
from queuectl.supervisor import relay_signal, worker_popen_options

CMD = r"C:\WINDOWS\system32\cmd.exe"
CREATE_NEW_PROCESS_GROUP = 0x200  # its value in the Windows SDK (and subprocess, there)


# -- the platform shell (SPEC §2: `sh -c` / `cmd /c`) --------------------------------------


@pytest.mark.parametrize("platform", ["linux", "darwin", "freebsd14"])
def test_posix_commands_run_through_bin_sh(platform):
    assert shell_argv("echo $HOME; exit 3", platform) == ["/bin/sh", "-c", "echo $HOME; exit 3"]


def test_linux_runs_what_shell_argv_says(tmp_path):
    """The argv spawn() starts on this platform is shell_argv's: the shell's own features
    work, and the exit status is the command's."""
    argv = shell_argv('printf "%s|" a "b c"; exit 3')
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (3, "a|b c|")


@pytest.mark.parametrize(
    "environ, shell",
    [
        ({"ComSpec": CMD}, CMD),
        ({"COMSPEC": CMD, "SystemRoot": r"D:\Win"}, CMD),  # names are case-insensitive
        ({"comspec": "", "SystemRoot": r"C:\WINDOWS"}, r"C:\WINDOWS\System32\cmd.exe"),
        ({"SYSTEMROOT": r"D:\Win"}, r"D:\Win\System32\cmd.exe"),
    ],
)
def test_windows_commands_run_through_cmd_c(environ, shell):
    assert shell_argv("dir /b & exit 3", "win32", environ) == [shell, "/c", "dir /b & exit 3"]


def test_windows_without_a_known_cmd_exe_cannot_start_a_command():
    with pytest.raises(FileNotFoundError, match="ComSpec"):
        shell_argv("dir", "win32", {"PATH": r"C:\bin"})


def test_the_windows_command_line_is_the_one_shell_true_writes():
    # cmd /c strips the outer pair of quotes and runs the rest as typed: inner quotes stay.
    argv = shell_argv('echo "a b" > "out file.txt"', "win32", {"ComSpec": CMD})
    assert windows_command_line(argv) == CMD + r' /c "echo "a b" > "out file.txt""'


def test_windows_popen_options_give_a_process_group_and_cmd_by_its_path():
    options = windows_popen_options([CMD, "/c", "dir"])
    assert options["creationflags"] == CREATE_NEW_PROCESS_GROUP
    assert options["executable"] == CMD
    # A relative ComSpec is left to CreateProcess's search, as shell=True leaves it.
    assert windows_popen_options(["cmd.exe", "/c", "dir"])["executable"] is None


# -- killing a process tree ------------------------------------------------------------------


def test_windows_kills_a_tree_with_taskkill():
    assert tree_kill_argv(4242) == ["taskkill", "/F", "/T", "/PID", "4242"]


# -- the default store folder (SPEC §1: click.get_app_dir("queuectl")) ---------------------


@pytest.mark.parametrize(
    "platform, environ, folder",
    [
        ("win32", {"APPDATA": r"C:\Users\ann\AppData\Roaming"}, r"C:\Users\ann\AppData\Roaming"),
        ("win32", {"appdata": r"E:\Profiles\bo"}, r"E:\Profiles\bo"),
        ("win32", {"USERPROFILE": r"C:\Users\ann"}, r"C:\Users\ann"),
        ("win32", {"HOMEDRIVE": "H:", "HOMEPATH": r"\ann"}, r"H:\ann"),
    ],
)
def test_the_default_store_folder_on_windows(platform, environ, folder):
    expected = folder + r"\queuectl"
    assert default_store_dir(platform, environ) == expected


def test_the_default_store_folder_on_macos_and_linux():
    assert default_store_dir("darwin", {"HOME": "/Users/ann"}) == (
        "/Users/ann/Library/Application Support/queuectl"
    )
    assert default_store_dir("linux", {"HOME": "/home/ann"}) == "/home/ann/.config/queuectl"
    xdg = {"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg"}
    assert default_store_dir("linux", xdg) == "/cfg/queuectl"


@pytest.mark.parametrize(
    "environ",
    [{}, {"XDG_CONFIG_HOME": "/srv/cfg"}, {"HOME": "/home/somebody"}],
)
def test_the_default_store_folder_is_clicks_app_dir(monkeypatch, environ):
    """On this platform the rule is click's own (SPEC §1 names click.get_app_dir)."""
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert default_store_dir() == click.get_app_dir("queuectl")


# -- how the supervisor starts and stops its workers -----------------------------------------


def test_workers_start_apart_from_the_terminals_signals():
    assert worker_popen_options("linux") == {"start_new_session": True}
    assert worker_popen_options("win32") == {"creationflags": CREATE_NEW_PROCESS_GROUP}


def test_workers_are_asked_to_stop_with_sigterm_or_ctrl_break():
    assert relay_signal("linux") == signal.SIGTERM
    assert relay_signal("win32") == getattr(signal, "CTRL_BREAK_EVENT", 1)


def test_stop_signal_copies_are_counted_once_where_they_can_arrive_twice():
    assert worker_copy_window(1234, "linux") == 0.0  # only the supervisor's relay reaches it
    assert worker_copy_window(1234, "win32") == STOP_COPY_SECONDS  # Ctrl-Break reaches all
    assert worker_copy_window(None, "linux") == STOP_COPY_SECONDS


def run_pool(target: str) -> None:
    """A burst pool of one worker, as `worker start --burst --count 1` runs it; exits with the
    pool's status. The target of a `spawn` process: importable, nothing inherited."""
    from queuectl.supervisor import Supervisor

    sys.exit(Supervisor(target, 1, [], burst=True, quiet=True).run())


def test_a_pool_started_under_the_spawn_start_method_runs_a_job(tmp_path, monkeypatch):
    """Windows has no fork: a Python program there starts a pool from a `spawn` process, a
    fresh interpreter that inherits nothing. The pool's workers are fresh interpreters on
    every platform (`python -m queuectl.worker`, the target on stdin), so nothing to force:
    this starts the pool itself under spawn on Linux, and it runs a real job."""
    from queuectl import JobState, Queue

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers run this checkout's code
    target = str(tmp_path / "queue.db")
    with Queue.open(target, dotenv=False) as queue:
        job_id = queue.enqueue({"command": f"echo spawned > {tmp_path / 'out.txt'}"})
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=run_pool, args=(target,))
    process.start()
    try:
        process.join(timeout=60)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
    with Queue.open(target, dotenv=False) as queue:
        assert queue.get(job_id).state is JobState.COMPLETED
    assert (tmp_path / "out.txt").read_text() == "spawned\n"
