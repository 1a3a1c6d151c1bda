"""The event lines of `worker start` (supervisor and workers): whole, escaped, never in the way.

The pool's stderr is a terminal or a pipe (`queuectl worker start 2>&1 | tee w.log`), and either
can go away while jobs run: the terminal is closed, `tee` dies of the Ctrl-C meant for the pool,
a pager stops reading. None of that may touch a job (SPEC §4), so:

- lines are written by a thread of their own from an in-memory queue: a reader that stops
  reading blocks that thread, never the worker's heartbeats and outcomes; lines that do not fit
  in the queue meanwhile are dropped;
- a write that fails (EPIPE, EIO from a vanished terminal, a closed descriptor) ends the output
  for good, silently; nothing else changes;
- each line is one `write()`, so the lines of several workers sharing one pipe never mix
  (pipes write up to PIPE_BUF bytes atomically), whatever Python's buffering
  (PYTHONUNBUFFERED=1 makes `print` write the text and its newline apart);
- control characters are escaped: a job's command, id or error, or a hostile host name, never
  drives the operator's terminal.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time

from .formatting import clean

# Lines held while the reader is slow; more are dropped rather than held up or kept forever.
CAPACITY = 1000
# At exit, how long the lines still queued may take to be written before they are given up.
DRAIN_SECONDS = 1.0


class EventLog:
    """Writes timestamped event lines to a file descriptor (stderr by default) from a thread.

    `say` may be called from a signal handler: it only puts a line on a SimpleQueue, whose
    `put` is reentrant, and starts nothing."""

    def __init__(self, name: str, enabled: bool = True, fd: int = 2) -> None:
        self.name = name
        self.enabled = enabled
        self.fd = fd
        self.dropped = 0
        self.broken = False
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writing thread (before any signal handler may call `say`)."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._write_lines, name="events", daemon=True)
            self._thread.start()

    def say(self, message: str) -> None:
        """Queue one line: `HH:MM:SS <name>: <message>`, control characters escaped."""
        if not self.enabled or self.broken:
            return
        if self._lines.qsize() >= CAPACITY:
            self.dropped += 1
            return
        line = clean(f"{time.strftime('%H:%M:%S')} {self.name}: {message}") + "\n"
        self._lines.put(line.encode("utf-8", "backslashreplace"))

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Write what is queued, waiting at most `timeout` seconds for a reader that is slow."""
        if self._thread is None:
            return
        self._lines.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _write_lines(self) -> None:
        while (line := self._lines.get()) is not None:
            if self.broken:
                continue  # drain, so close() returns at once
            try:
                _write_all(self.fd, line)
            except BlockingIOError:
                self.dropped += 1  # somebody made the descriptor non-blocking: skip the line
            except OSError:
                self.broken = True  # the reader or the terminal is gone: no more output


def _write_all(fd: int, data: bytes) -> None:
    # One write() for a line unless the descriptor takes less (only past PIPE_BUF, or on a
    # signal after some bytes were written); then the rest follows.
    while data:
        written = os.write(fd, data)
        data = data[written:]


def write_line(message: str, fd: int = 2) -> None:
    """Write one escaped line at once, for the few lines said before or without an EventLog;
    a reader that is gone is not an error of ours."""
    with contextlib.suppress(OSError):
        _write_all(fd, (clean(message) + "\n").encode("utf-8", "backslashreplace"))
