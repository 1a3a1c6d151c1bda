"""Waking idle workers of an SQLite store the moment there is work, without polling.

Each idle-capable worker owns a named pipe (FIFO) in a private folder beside the store file.
Whoever commits new work (enqueue, dlq retry, a stop request) writes one byte into every pipe
there. A worker blocks in select() on its own pipe, so it wakes at once and uses no CPU while
it waits. The pipe exists for the worker's whole life and keeps bytes written while the worker
was busy, so a wake-up sent between "nothing to claim" and "wait" is never lost.

Where named pipes are missing (Windows), `FifoWakeup.create` returns None and the store falls
back to watching SQLite's data_version counter.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select

from ..models import OWNER_ONLY, OWNER_ONLY_FOLDER


def wake_dir_for(store_path: str) -> str:
    return store_path + "-wake"


def notify_all(wake_dir: str) -> None:
    """Write a byte into every worker's pipe; forget pipes whose worker is gone."""
    try:
        entries = list(os.scandir(wake_dir))
    except OSError:  # no folder: no worker has ever waited on this store
        return
    for entry in entries:
        if not entry.name.endswith(".fifo"):
            continue
        try:
            fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nobody reads it: a killed worker left it behind
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            continue
        try:
            os.write(fd, b"\0")
        except OSError:  # EAGAIN: the pipe is full of unread wake-ups, which is just as good
            pass
        finally:
            os.close(fd)


class FifoWakeup:
    """One worker's end: its own named pipe, and a wait that returns when woken."""

    def __init__(self, path: str, fd: int, keep_open_fd: int) -> None:
        self.path = path
        self._fd = fd
        self._keep_open_fd = keep_open_fd

    @classmethod
    def create(cls, wake_dir: str) -> FifoWakeup | None:
        if not hasattr(os, "mkfifo"):
            return None
        try:
            os.makedirs(wake_dir, mode=OWNER_ONLY_FOLDER, exist_ok=True)
            path = os.path.join(wake_dir, f"{os.urandom(8).hex()}.fifo")
            os.mkfifo(path, OWNER_ONLY)
            # Read end, non-blocking so the open does not wait for a writer.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            # Our own write end: without a writer, a pipe whose last writer left reads as
            # end-of-file and select() would return at once, forever.
            keep_open_fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None
        return cls(path, fd, keep_open_fd)

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if woken. Drains queued wake-ups."""
        ready = select.select([self._fd], [], [], max(0.0, timeout))[0]
        if ready:
            self._drain()
        return bool(ready)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 4096):
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        for fd in (self._fd, self._keep_open_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
