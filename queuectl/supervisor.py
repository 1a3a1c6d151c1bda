"""`worker start`: run N worker processes in the foreground, relay stop signals, replace the dead.

Workers run in a session of their own, so a Ctrl-C at the terminal, or the signal coreutils
`timeout` sends to its process group, reaches only the supervisor. It counts stop requests, not
signals (copies of one signal that arrive within STOP_COPY_SECONDS are one request: see
`stopping.StopSignals`), and relays each request once: the first asks for a graceful stop, the
second kills the running commands. On Linux the supervisor is a child subreaper: when a worker
is killed, the commands it was running are re-parented here, and their process groups are
killed at once instead of running on as orphans beside the retry (process_groups).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .eventlog import EventLog, write_line
from .process_groups import become_subreaper, reap_adopted
from .stopping import STOP_COPY_SECONDS, STOP_SIGNALS, StopSignals, signal_name

# A worker that dies sooner than this after starting is restarted only after a pause.
FLAP_SECONDS = 2.0
TICK_SECONDS = 0.1


@dataclass
class _Child:
    proc: subprocess.Popen
    started: float  # monotonic
    relayed: int = 0  # stop requests relayed to it so far


class Supervisor:
    def __init__(
        self,
        target: str,
        count: int,
        queues: Sequence[str],
        burst: bool,
        quiet: bool = False,
        banner: str | None = None,
    ) -> None:
        self.target = target
        self.count = count
        self.queues = list(queues)
        self.burst = burst
        self.quiet = quiet
        self.banner = banner  # printed once stop signals are handled, before any worker starts
        self.events = EventLog("supervisor", enabled=not quiet)
        self.workers: dict[int, _Child] = {}
        self._exits = _ExitWatch()
        self._stop_signals = StopSignals(STOP_COPY_SECONDS)
        self.signals_seen = 0  # stop requests by signal, copies not counted
        self.failed = False  # a worker died unexpectedly (SPEC §4: the pool then exits 1)
        self._replacements: list[float] = []  # when each pending replacement may start
        # (when, message, message if the pool is gone before then) for the main loop to print.
        self._notices: list[tuple[float, str, str]] = []

    def run(self) -> int:
        become_subreaper()
        self.events.start()
        self._exits.wake_on_signals()
        for name in STOP_SIGNALS:
            signal.signal(getattr(signal, name), self._on_signal)
        if self.banner and not self.quiet:
            write_line(self.banner)
        for _ in range(self.count):
            if self.signals_seen:
                break  # stopped while starting: no more workers
            self._spawn()
            self._relay()  # a stop that came while this one was being started
        while self.workers or (self._replacements and not self.signals_seen):
            self._exits.wait(self._tick())
            self._relay()
            self._print_notices()
            self._reap()
            self._replace()
        self._print_notices(final=True)
        self._exits.close()
        reap_adopted(set(), kill=False)
        self.events.close()
        return 1 if (self.failed or self.signals_seen > 1) else 0

    def _tick(self) -> float:
        if self._replacements:
            return max(0.0, min(TICK_SECONDS, self._replacements[0] - time.monotonic()))
        return TICK_SECONDS

    def _command(self) -> list[str]:
        args = [sys.executable, "-m", "queuectl.worker", "--db", "-"]
        args += ["--parent", str(os.getpid())]
        for queue in self.queues:
            args += ["--queue", queue]
        if self.burst:
            args.append("--burst")
        if self.quiet:
            args.append("--quiet")
        return args

    def _spawn(self) -> None:
        extra = worker_popen_options(sys.platform)
        proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, **extra)
        # The target goes on a pipe, not in argv or the environment (see worker.read_target).
        with contextlib.suppress(OSError):  # it died at once: _reap says so
            proc.stdin.write(self.target.encode("utf-8", "surrogateescape") + b"\n")
        with contextlib.suppress(OSError):
            proc.stdin.close()
        self.workers[proc.pid] = _Child(proc, time.monotonic())
        self._exits.add(proc.pid)

    def _reap(self) -> None:
        for pid, child in list(self.workers.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.workers[pid]
            self._exits.discard(pid)
            if code == 0 or self.signals_seen:
                # A worker stopped before it set up its handlers dies of the relayed SIGTERM;
                # it had claimed nothing, so that is a clean stop too.
                stopped_early = self.signals_seen == 1 and code == -signal.SIGTERM
                if code != 0 and not stopped_early:
                    self.failed = True
                continue
            self.failed = True
            self.events.say(f"worker pid {pid} died ({_describe(code)})")
            reap_adopted(set(self.workers), kill=True)
            if self.burst:
                continue
            flapping = time.monotonic() - child.started < FLAP_SECONDS
            self._replacements.append(time.monotonic() + (FLAP_SECONDS if flapping else 0.0))
        reap_adopted(set(self.workers), kill=False)

    def _replace(self) -> None:
        """Start the replacements that are due; a stop cancels those not started yet."""
        if self.signals_seen:
            self._replacements.clear()
            return
        while self._replacements and self._replacements[0] <= time.monotonic():
            self._replacements.pop(0)
            self.events.say("starting a replacement worker")
            self._spawn()

    def _relay(self) -> None:
        """Relay every stop request to every worker once, in order; a worker started after a
        request (or while it arrived) gets it too, so a stop never misses one."""
        relay = relay_signal(sys.platform)
        for child in self.workers.values():
            while child.relayed < self.signals_seen:
                child.relayed += 1
                with contextlib.suppress(OSError):
                    child.proc.send_signal(relay)

    def _on_signal(self, signum: int, frame: object) -> None:
        """Count stop requests, however many copies of their signal arrive; the main loop,
        woken at once, relays them. The stop is announced only when the copy window has passed,
        so that a signal sent after seeing the announcement (a person pressing Ctrl-C again, a
        script) is always the second request. Printing is left to the main loop too."""
        now = time.monotonic()
        if not self._stop_signals.count(now):
            return
        self.signals_seen = self._stop_signals.requests
        name = signal_name(signum)
        if self.signals_seen == 1:
            self._notices.append(
                (
                    now + STOP_COPY_SECONDS,
                    f"got {name}: stopping once the running jobs finish; a second stop signal"
                    " kills them",
                    f"got {name}: stopping",
                )
            )
        elif self.signals_seen == 2:
            message = f"got {name}, a second stop signal: killing the running jobs"
            self._notices.append((now, message, message))

    def _print_notices(self, final: bool = False) -> None:
        """Print the notices that are due; with `final` (the pool is gone), all of them."""
        while self._notices:
            when, message, early = self._notices[0]
            if time.monotonic() < when and not final:
                return
            self._notices.pop(0)
            self.events.say(message if time.monotonic() >= when else early)


def worker_popen_options(platform: str) -> dict:
    """How a worker process is started apart from the terminal's signals: a session of its own
    on POSIX, a process group of its own on Windows (where only Ctrl-Break can reach it).

    Workers are fresh interpreters (`python -m queuectl.worker`, the target on stdin) on every
    platform: nothing is inherited through fork, so Linux runs them as Windows must."""
    if platform == "win32":
        # subprocess.CREATE_NEW_PROCESS_GROUP, which exists on Windows only.
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def relay_signal(platform: str) -> int:
    """The signal that asks a worker to stop: SIGTERM, or on Windows CTRL_BREAK_EVENT (the one
    console event a process group of its own receives)."""
    if platform == "win32":
        return getattr(signal, "CTRL_BREAK_EVENT", 1)  # its value, for tests elsewhere
    return signal.SIGTERM


class _ExitWatch:
    """Wakes the supervisor the moment a worker exits (Linux: each worker's pidfd becomes
    readable then), so `worker start --burst` returns as soon as the work is done instead of
    at the next tick, and the moment a stop signal arrives (through `signal.set_wakeup_fd`), so
    that it is relayed at once. Elsewhere it simply sleeps for the tick."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._wake: tuple[int, int] | None = None  # the signal wake-up pipe (read, write)

    def wake_on_signals(self) -> None:
        """Wake `wait` when a signal arrives; the handler itself runs as usual."""
        if self._poll is None or sys.platform == "win32":
            return
        read, write = os.pipe()
        for fd in (read, write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(write)
        self._wake = (read, write)
        self._poll.register(read, select.POLLIN)

    def add(self, pid: int) -> None:
        if self._poll is None or not hasattr(os, "pidfd_open"):
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # a kernel older than 5.3
            return
        self._fds[pid] = fd
        self._poll.register(fd, select.POLLIN)

    def discard(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            self._poll.unregister(fd)
            os.close(fd)

    def wait(self, timeout: float) -> None:
        if not self._fds and self._wake is None:
            time.sleep(timeout)
            return
        self._poll.poll(timeout * 1000)
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake[0], 512)

    def close(self) -> None:
        for pid in list(self._fds):
            self.discard(pid)
        if self._wake is not None:
            signal.set_wakeup_fd(-1)
            self._poll.unregister(self._wake[0])
            for fd in self._wake:
                os.close(fd)
            self._wake = None


def _describe(code: int) -> str:
    return f"killed by {signal_name(-code)}" if code < 0 else f"exit status {code}"
