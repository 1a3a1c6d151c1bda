"""Runs one command to its end: start it, wait for it, kill it on request, say how it ended.

The parts are elsewhere: spawning starts the process (the platform shell, or the program
directly; a session of its own), runlogs gives it a log file to write to and reads the tail
back, process_groups signals its whole process group. This module ties them into the life of
one run, as the worker drives it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping

from .models import Outcome, RunResult
from .process_groups import KILL_GRACE_SECONDS, group_exists, kill_group_now, stop_group
from .runlogs import LogFolder
from .spawning import SpawnedChild, folder_error, spawn


class RunningCommand:
    """A started command: wait for it, kill its whole process tree, describe how it ended."""

    def __init__(
        self,
        command: str,
        extra_env: Mapping[str, str],
        log_path: str | os.PathLike,
        logs: LogFolder | None = None,
        cwd: str | None = None,
        job_env: Mapping[str, str] | None = None,
    ) -> None:
        """Start `command` in folder `cwd` (None: this process's) with `job_env` and then
        `extra_env` (which wins) added to its environment, its output going to `log_path`.
        `logs` is the LogFolder that path is in, as the worker keeps it from run to run (see
        LogFolder); None: one for this run only. A command that cannot be started (its
        folder missing, say) is no exception: result() says NOT_STARTED, and why."""
        self.started = time.monotonic()
        self.ended: float | None = None  # monotonic time its exit was first seen
        self._kill_reason: tuple[Outcome, str] | None = None
        self._log_path = log_path = os.fspath(log_path)
        folder, name = os.path.split(log_path)
        self._own_logs = logs is None
        self._logs = LogFolder(folder) if logs is None else logs
        self._proc: subprocess.Popen | SpawnedChild | None = None
        self._pidfd: int | None = None
        self._start_error: str | None = None
        try:
            self._log = self._logs.open(name)
        except OSError as exc:
            self._start_error = f"could not start: cannot write log file {log_path}: {exc.strerror}"
            return
        self._direct = False
        try:
            self._proc, self._direct = spawn(command, extra_env, self._log.fd, cwd, job_env)
        except OSError as exc:
            if folder_error(exc, cwd):
                why = f"cannot run in folder {cwd}: {exc.strerror or exc}"
            else:
                why = exc.strerror or str(exc)
            self._start_error = f"could not start: {why}"
        self._pidfd = _pidfd(self._proc.pid) if self._proc else None

    @property
    def pid(self) -> int | None:
        """The command's pid, which also names its process group; None if it never started."""
        return self._proc.pid if self._proc else None

    def publish_log(self) -> None:
        """Give the output file its name now, so `logs` can follow a long run."""
        if self._proc is not None:
            self._log.publish()

    def kill(self, outcome: Outcome, reason: str, grace: float = KILL_GRACE_SECONDS) -> None:
        """Stop the whole process tree: SIGTERM, then SIGKILL after `grace` seconds."""
        self._note_kill(outcome, reason)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            stop_group(proc.pid, proc.poll, grace)

    def kill_now(self, outcome: Outcome, reason: str) -> None:
        """SIGKILL the tree at once; safe to call from a signal handler."""
        self._note_kill(outcome, reason)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            kill_group_now(proc.pid)

    def _note_kill(self, outcome: Outcome, reason: str) -> None:
        # The first reason wins (a timeout stays a timeout when a stop signal follows). No
        # lock: the only other caller is a signal handler on this same thread.
        if self._kill_reason is None:
            self._kill_reason = (outcome, reason)

    def wait_for_exit(self, timeout: float) -> bool:
        """Block until the command exits (True) or `timeout` seconds pass (False)."""
        if self._proc is None or self._proc.returncode is not None:
            return True
        if self._pidfd is not None:
            # A pidfd becomes readable when the process exits: no polling, instant wake-up.
            exited = bool(select.select([self._pidfd], [], [], timeout)[0])
        else:
            try:
                self._proc.wait(timeout)
                exited = True
            except subprocess.TimeoutExpired:
                exited = False
        if exited and self.ended is None:
            self.ended = time.monotonic()
        return exited

    def result(self) -> RunResult:
        """Reap the command (waiting if needed) and describe how the run ended."""
        if self._proc is None:
            if hasattr(self, "_log"):
                self._log.close()
            self._close_logs()
            return RunResult(Outcome.NOT_STARTED, None, self._start_error, "", self._log_path)
        returncode = self._proc.wait()
        if self.ended is None:
            self.ended = time.monotonic()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        # The file may serve the next run only if nothing can still write to it: the command
        # is reaped, and nothing it started is left in its process group.
        tail = self._log.finish(reusable=not group_exists(self._proc.pid))
        self._close_logs()
        return self._result(returncode, tail)._replace(seconds=self.ended - self.started)

    def _close_logs(self) -> None:
        if self._own_logs:
            self._logs.close()

    def _result(self, returncode: int, tail: str) -> RunResult:
        log = self._log_path
        if self._kill_reason is not None:
            outcome, reason = self._kill_reason
            return RunResult(outcome, None, reason, tail, log)
        if returncode < 0 and self._direct:
            # Through `sh -c`, a program killed by a signal is reported by the shell as exit
            # status 128 + N; a program started without the shell must look the same.
            returncode = 128 - returncode
        if returncode < 0:
            name = _signal_name(-returncode)
            return RunResult(Outcome.KILLED, None, f"killed by signal {name}", tail, log)
        if returncode == 0:
            return RunResult(Outcome.EXITED, 0, None, tail, log)
        return RunResult(Outcome.EXITED, returncode, _exit_message(returncode), tail, log)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux ≥ 5.3: fall back to Popen.wait(timeout)
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _exit_message(code: int) -> str:
    if code == 127:
        return "exited with code 127 (command not found)"
    if code == 126:
        return "exited with code 126 (command not executable)"
    return f"exited with code {code}"
