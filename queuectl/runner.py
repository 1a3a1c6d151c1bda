"""Runs one command: the platform shell, its own process group, output to a file, a kill switch.

Output goes straight from the child to a log file descriptor, so the worker never holds it in
memory, however much the job prints; only the last few KiB are read back for the store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .models import Outcome, RunResult

TAIL_BYTES = 8192
# After SIGTERM, a job gets this long to clean up before its whole group is SIGKILLed.
KILL_GRACE_SECONDS = 2.0
IS_WINDOWS = sys.platform == "win32"
OWNER_ONLY = 0o600


class RunningCommand:
    """A started command. `wait()` blocks until it ends; `kill()` may be called from any thread."""

    def __init__(self, command: str, env: Mapping[str, str], log_path: Path) -> None:
        self.started = time.monotonic()
        self._kill_reason: tuple[Outcome, str] | None = None
        self._lock = threading.Lock()
        self._log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._start_error: str | None = None
        try:
            log_fd = _open_log(log_path)
        except OSError as exc:
            self._start_error = f"could not start: cannot write log file {log_path}: {exc.strerror}"
            return
        try:
            self._proc = _spawn(command, env, log_fd)
        except OSError as exc:
            self._start_error = f"could not start: {exc.strerror or exc}"
        finally:
            os.close(log_fd)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def kill(self, outcome: Outcome, reason: str, grace: float = KILL_GRACE_SECONDS) -> None:
        """Stop the whole process tree: SIGTERM, then SIGKILL after `grace` seconds."""
        with self._lock:
            if self._kill_reason is None:
                self._kill_reason = (outcome, reason)
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if IS_WINDOWS:
            _kill_tree_windows(proc.pid)
            return
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(proc.pid):
            time.sleep(0.02)
        _signal_group(proc.pid, signal.SIGKILL)

    def kill_now(self, outcome: Outcome, reason: str) -> None:
        """SIGKILL the tree at once; safe to call from a signal handler."""
        with self._lock:
            if self._kill_reason is None:
                self._kill_reason = (outcome, reason)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if IS_WINDOWS:
                _kill_tree_windows(proc.pid)
            else:
                _signal_group(proc.pid, signal.SIGKILL)

    def wait(self) -> RunResult:
        if self._proc is None:
            return RunResult(Outcome.NOT_STARTED, None, self._start_error, "", str(self._log_path))
        returncode = self._proc.wait()
        tail = read_tail(self._log_path)
        return self._result(returncode, tail)

    def _result(self, returncode: int, tail: str) -> RunResult:
        log = str(self._log_path)
        if self._kill_reason is not None:
            outcome, reason = self._kill_reason
            return RunResult(outcome, None, reason, tail, log)
        if returncode < 0:
            name = _signal_name(-returncode)
            return RunResult(Outcome.KILLED, None, f"killed by signal {name}", tail, log)
        if returncode == 0:
            return RunResult(Outcome.EXITED, 0, None, tail, log)
        return RunResult(Outcome.EXITED, returncode, _exit_message(returncode), tail, log)


def _open_log(path: Path) -> int:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, OWNER_ONLY)


def _spawn(command: str, env: Mapping[str, str], log_fd: int) -> subprocess.Popen:
    common = {
        "stdin": subprocess.DEVNULL,
        "stdout": log_fd,
        "stderr": subprocess.STDOUT,
        "env": dict(env),
        "close_fds": True,
    }
    if IS_WINDOWS:
        flags = subprocess.CREATE_NEW_PROCESS_GROUP
        return subprocess.Popen(command, shell=True, creationflags=flags, **common)
    # No preexec_fn: it would force fork() instead of vfork() and cut the spawn rate by about
    # three. A dead worker's command is killed by the supervisor (a child subreaper) or, if the
    # whole pool died, by the worker that rescues the job (kill_orphaned_run).
    return subprocess.Popen(
        ["/bin/sh", "-c", command],
        start_new_session=True,  # its own process group: a kill reaches everything it started
        **common,
    )


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group (POSIX)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_tree_windows(pid: int) -> None:
    subprocess.run(
        ["taskkill", "/F", "/T", "/PID", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


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


def kill_orphaned_run(pgid: int, job_id: str) -> bool:
    """Kill what is left of a lost run on this host: its process group, if the group still
    holds a process started for this job (checked through /proc, so a recycled id is never
    hit). Linux only; returns whether a group was killed."""
    marker = f"QUEUECTL_JOB_ID={job_id}\0".encode()
    for entry in os.scandir("/proc") if sys.platform.startswith("linux") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = handle.read() + b"\0"
        except (OSError, IndexError, ValueError):
            continue
        if b"\0" + marker in b"\0" + environ:
            _signal_group(pgid, signal.SIGKILL)
            return True
    return False


def read_tail(path: Path, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes of a log file as text (undecodable bytes replaced)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(0, end - size))
            data = handle.read(size)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
