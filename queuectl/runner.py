"""Runs one command: its own process group, output to a file, a kill switch.

How the process is started (the platform shell or the program itself) is spawning's job;
signalling its process group is process_groups'.

Output goes straight from the child to a log file descriptor, so the worker never holds it in
memory, however much the job prints; only the last few KiB are read back for the store.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping

from .models import OWNER_ONLY, OWNER_ONLY_FOLDER, Outcome, RunResult
from .process_groups import KILL_GRACE_SECONDS, group_exists, kill_group_now, stop_group
from .spawning import SpawnedChild, spawn

TAIL_BYTES = 8192


class RunningCommand:
    """A started command: wait for it, kill its whole process tree, describe how it ended."""

    def __init__(
        self, command: str, extra_env: Mapping[str, str], log_path: str | os.PathLike
    ) -> None:
        self.started = time.monotonic()
        self.ended: float | None = None  # monotonic time its exit was first seen
        self._kill_reason: tuple[Outcome, str] | None = None
        self._log_path = log_path = os.fspath(log_path)
        self._proc: subprocess.Popen | SpawnedChild | None = None
        self._start_error: str | None = None
        try:
            self._log = LogFile(log_path)
        except OSError as exc:
            self._start_error = f"could not start: cannot write log file {log_path}: {exc.strerror}"
            return
        self._direct = False
        try:
            self._proc, self._direct = spawn(command, extra_env, self._log.fd)
        except OSError as exc:
            self._start_error = f"could not start: {exc.strerror or exc}"
        self._pidfd = _pidfd(self._proc.pid) if self._proc else None

    @property
    def pid(self) -> int | None:
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
        return self._result(returncode, tail)._replace(seconds=self.ended - self.started)

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


class LogFile:
    """Where one run's output goes, written by the command itself through a file descriptor.

    On Linux the file starts anonymous (O_TMPFILE) and gets its name only when there is output
    to keep, or when the run lasts long enough that someone may want to follow it: creating a
    named file costs a few hundred microseconds on ext4 under load, the largest part of a no-op
    job's overhead, and a job that prints nothing then leaves no empty file behind.

    An anonymous file that stayed empty is kept for the next run in the same folder, once the
    command is reaped and nothing is left in its process group: creating and dropping an inode
    per job was a tenth of a no-op job's cost in the worker. (A process that left the group,
    with setsid, and kept the output open could still write there, into a later run's log;
    one that did not leave the group keeps the file from being reused.)"""

    _dir_fds: dict[str, int] = {}  # one open descriptor per logs folder, for linkat
    _spare: dict[str, int] = {}  # per logs folder: an empty anonymous file, for the next run

    def __init__(self, path: str) -> None:
        # Plain strings, not pathlib: this runs once per job, and pathlib costs tens of µs.
        self.path = path
        self.folder, self.name = os.path.split(path)
        self.named = False
        self.fd = -1
        try:
            self._open()
        except FileNotFoundError:
            # The logs folder was deleted since this process last wrote there: make it again.
            _forget_dir_fd(self.folder)
            self._open()

    def _open(self) -> None:
        folder = self.folder
        if folder not in self._dir_fds:
            make_private_folder(folder)
            self._dir_fds[folder] = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        self._dir_fd = self._dir_fds[folder]
        spare = self._spare.pop(folder, None)
        if spare is not None:
            self.fd = spare
            return
        if hasattr(os, "O_TMPFILE"):
            with contextlib.suppress(OSError):  # a filesystem without O_TMPFILE
                self.fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, OWNER_ONLY)
        if self.fd < 0:
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            self.fd = os.open(self.path, flags, OWNER_ONLY)
            self.named = True

    def publish(self, retry: bool = True) -> None:
        if self.named:
            return
        source = f"/proc/self/fd/{self.fd}"
        try:
            # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N names an O_TMPFILE file.
            os.link(source, self.name, dst_dir_fd=self._dir_fd)
        except FileExistsError:
            # A stale file holds the name (left by a store deleted since, whose run ids started
            # again at 1, or by an older queuectl): this run's output replaces it, or `logs`
            # would show the stale output instead.
            self._replace_stale(source)
        except OSError:
            if retry and self._reopen_folder():
                # The folder held open was deleted, replaced or remounted since: its path now
                # names another one, where this run's output (and the next runs') must go.
                self.publish(retry=False)
            return  # no /proc: the output still reaches the store's tail
        self.named = True

    def _replace_stale(self, source: str) -> None:
        # linkat cannot overwrite: link under a name of our own, then rename over the stale
        # file (atomic, and a symlink there is replaced, never followed).
        temp = f"{self.name}.{os.urandom(4).hex()}.tmp"
        dir_fd = self._dir_fd
        try:
            os.link(source, temp, dst_dir_fd=dir_fd)
        except OSError:
            return  # the output still reaches the store's tail
        try:
            os.replace(temp, self.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:  # e.g. a folder under that name
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)

    def _reopen_folder(self) -> bool:
        folder = self.folder
        _forget_dir_fd(folder)
        self._dir_fd = -1
        try:
            make_private_folder(folder)
            self._dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return False
        self._dir_fds[folder] = self._dir_fd
        return True

    def finish(self, reusable: bool = False) -> str:
        """Name the file if the run printed anything; return the tail; close it, or keep it
        for the next run if it is `reusable`, anonymous and still empty."""
        size = -1
        try:
            size = os.fstat(self.fd).st_size
            if size:
                self.publish()
            start = max(0, size - TAIL_BYTES)
            data = os.pread(self.fd, size - start, start) if size else b""
        except OSError:
            data = b""
        finally:
            if reusable and size == 0 and not self.named and self.folder not in self._spare:
                self._spare[self.folder] = self.fd
                self.fd = -1
            self.close()
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def make_private_folder(folder: str) -> None:
    """Make `folder` and any missing parent, each readable and writable by its owner only
    (SPEC §5; os.makedirs gives its mode to the last folder only, e.g. PostgreSQL logs go in
    `<app dir>/logs/pg-<store id>`). Folders that already exist keep their mode."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder)
    if parent and parent != folder:
        make_private_folder(parent)
    try:
        os.mkdir(folder, OWNER_ONLY_FOLDER)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise


def _forget_dir_fd(folder: str) -> None:
    for stale in (LogFile._dir_fds.pop(folder, None), LogFile._spare.pop(folder, None)):
        if stale is not None:
            with contextlib.suppress(OSError):
                os.close(stale)


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
