"""Runs' log files: the folder they go in, each run's file as its command writes it, reading back.

Output goes straight from the command to a log file descriptor, so the worker never holds it
in memory, however much the job prints; only the last TAIL_BYTES are read back for the store.
`logs` reads the whole file back (open_run_log, read_chunks). The file's name is a pure rule,
models.log_file_name, which the stores use too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from .errors import QueueError
from .models import OWNER_ONLY, OWNER_ONLY_FOLDER


class RunLog(NamedTuple):
    """A run's output as `logs` prints it, and where it comes from."""

    chunks: Iterator[bytes]
    # The run's log file is not on this host (deleted, or the run was on another host): the
    # output is the tail the store keeps, empty if the run printed nothing or is still running.
    from_store: bool
    partial: bool  # from the store, and only the end of the output
    other_host: str | None  # the host that ran it, if not this one: its log file is there


# How much of a run's output the store keeps (the end of it).
TAIL_BYTES = 8192


class LogFolder:
    """A logs folder, as one worker writes its runs' log files there.

    It holds the folder open (for linkat, which names a file in it) and, on Linux, a spare
    file: an anonymous file that stayed empty, kept for the next run. Creating and dropping an
    inode per job was a tenth of a no-op job's cost in the worker. Both belong to the worker
    that made this object, for its runs one after another; close() lets them go."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1  # the folder, opened when the first log file is
        self._spare = -1

    def open(self, name: str) -> LogFile:
        """A new log file for one run, `name` in this folder (made if missing, owner-only)."""
        try:
            return LogFile(self, name)
        except FileNotFoundError:
            # The folder was deleted since this process last wrote there: make it again.
            self.close()
            return LogFile(self, name)

    def open_folder(self) -> None:
        """Make the folder if needed and hold it open; raises OSError if that fails."""
        if self.fd < 0:
            make_private_folder(self.path)
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def reopen(self) -> bool:
        """Open the folder the path names now (the one held open was deleted, replaced or
        remounted); returns whether that worked."""
        self.close()
        try:
            self.open_folder()
        except OSError:
            return False
        return True

    def take_spare(self) -> int:
        """The spare empty file, now the caller's, or -1 if there is none."""
        spare, self._spare = self._spare, -1
        return spare

    def keep_spare(self, fd: int) -> bool:
        """Keep `fd`, an anonymous empty file, for the next run; False if one is kept already
        (the caller then closes its own)."""
        if self._spare >= 0:
            return False
        self._spare = fd
        return True

    def close(self) -> None:
        """Close the folder and the spare file; the next open() opens the folder again."""
        for fd in (self.fd, self._spare):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self._spare = -1


class LogFile:
    """Where one run's output goes, written by the command itself through a file descriptor.

    On Linux the file starts anonymous (O_TMPFILE) and gets its name only when there is output
    to keep, or when the run lasts long enough that someone may want to follow it: creating a
    named file costs a few hundred microseconds on ext4 under load, the largest part of a no-op
    job's overhead, and a job that prints nothing then leaves no empty file behind.

    An anonymous file that stayed empty is kept for the next run in the same folder (see
    LogFolder), once the command is reaped and nothing is left in its process group. (A
    process that left the group, with setsid, and kept the output open could still write
    there, into a later run's log; one that did not leave the group keeps the file from being
    reused.)"""

    def __init__(self, folder: LogFolder, name: str) -> None:
        # Plain strings, not pathlib: this runs once per job, and pathlib costs tens of µs.
        self.folder = folder
        self.name = name
        self.path = os.path.join(folder.path, name)
        self.named = False
        self.fd = -1
        folder.open_folder()
        self.fd = folder.take_spare()
        if self.fd >= 0:
            return
        if hasattr(os, "O_TMPFILE"):
            with contextlib.suppress(OSError):  # a filesystem without O_TMPFILE
                self.fd = os.open(folder.path, os.O_TMPFILE | os.O_RDWR, OWNER_ONLY)
        if self.fd < 0:
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            self.fd = os.open(self.path, flags, OWNER_ONLY)
            self.named = True

    def publish(self, retry: bool = True) -> None:
        """Give the file its name, so `logs` can read it (a no-op once named). Failing that,
        the output still reaches the store's tail."""
        if self.named:
            return
        source = f"/proc/self/fd/{self.fd}"
        try:
            # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N names an O_TMPFILE file.
            os.link(source, self.name, dst_dir_fd=self.folder.fd)
        except FileExistsError:
            # A stale file holds the name (left by a store deleted since, whose run ids started
            # again at 1, or by an older queuectl): this run's output replaces it, or `logs`
            # would show the stale output instead.
            self._replace_stale(source)
        except OSError:
            if retry and self.folder.reopen():
                # The folder held open was deleted, replaced or remounted since: its path now
                # names another one, where this run's output (and the next runs') must go.
                self.publish(retry=False)
            return  # no /proc: the output still reaches the store's tail
        self.named = True

    def _replace_stale(self, source: str) -> None:
        # linkat cannot overwrite: link under a name of our own, then rename over the stale
        # file (atomic, and a symlink there is replaced, never followed).
        temp = f"{self.name}.{os.urandom(4).hex()}.tmp"
        dir_fd = self.folder.fd
        try:
            os.link(source, temp, dst_dir_fd=dir_fd)
        except OSError:
            return  # the output still reaches the store's tail
        try:
            os.replace(temp, self.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:  # e.g. a folder under that name
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)

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
            if reusable and size == 0 and not self.named and self.folder.keep_spare(self.fd):
                self.fd = -1
            self.close()
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        """Close the file (idempotent)."""
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


def open_run_log(path: str) -> BinaryIO:
    """Open a run's log file for reading (read_chunks closes it). Its name was once the same
    without the `_` that now goes before a leading `-` (models.log_file_name): older runs of
    such jobs are found under that name. Both names are in the folder the store named."""
    try:
        return open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        folder, name = os.path.split(path)
        if not name.startswith("_-"):
            raise
        return open(os.path.join(folder, name[1:]), "rb")  # noqa: SIM115


def read_chunks(handle: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    """The file's contents in chunks of at most `chunk_size` bytes; closes it at the end. A read
    error (EIO, say) is a QueueError: part of the output may have been printed already."""
    with handle:
        try:
            while chunk := handle.read(chunk_size):
                yield chunk
        except OSError as exc:
            raise QueueError(f"cannot read the log file {handle.name}: {exc.strerror}") from None
