"""`worker start`: run N worker processes in the foreground, relay stop signals, replace the dead.

Workers run in a session of their own, so a Ctrl-C at the terminal, or the signal coreutils
`timeout` sends to its process group, reaches only the supervisor. It counts stop requests, not
signals (copies of one signal that arrive within STOP_COPY_SECONDS are one request: see
`worker.StopSignals`), and relays each request once: the first asks for a graceful stop, the
second kills the running commands. On Linux the supervisor is a child subreaper: when a worker
is killed, the commands it was running are re-parented here, and their process groups are
killed at once instead of running on as orphans beside the retry.
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

from .worker import STOP_COPY_SECONDS, WORKER_TARGET_VARIABLE, StopSignals, signal_name

IS_LINUX = sys.platform.startswith("linux")
_PR_SET_CHILD_SUBREAPER = 36
# A worker that dies sooner than this after starting is restarted only after a pause.
FLAP_SECONDS = 2.0
TICK_SECONDS = 0.1


class Supervisor:
    def __init__(
        self, target: str, count: int, queues: Sequence[str], burst: bool, quiet: bool = False
    ) -> None:
        self.target = target
        self.count = count
        self.queues = list(queues)
        self.burst = burst
        self.quiet = quiet
        self.workers: dict[int, tuple[subprocess.Popen, float]] = {}
        self._exits = _ExitWatch()
        self._stop_signals = StopSignals(STOP_COPY_SECONDS)
        self.signals_seen = 0  # stop requests by signal, copies not counted
        self.failed = False
        # (when, message, message if the pool is gone before then) for the main loop to print.
        self._notices: list[tuple[float, str, str]] = []

    def run(self) -> int:
        _become_subreaper()
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        if hasattr(signal, "SIGBREAK"):
            signal.signal(signal.SIGBREAK, self._on_signal)
        for _ in range(self.count):
            if self.signals_seen:
                break  # stopped while starting: no more workers
            self._spawn()
        while self.workers:
            self._exits.wait(TICK_SECONDS)
            self._print_notices()
            self._reap()
        self._print_notices(final=True)
        self._exits.close()
        _reap_orphans(set(), kill=False)
        return 1 if (self.failed or self.signals_seen > 1) else 0

    def _command(self) -> list[str]:
        args = [sys.executable, "-m", "queuectl.worker", "--parent", str(os.getpid())]
        for queue in self.queues:
            args += ["--queue", queue]
        if self.burst:
            args.append("--burst")
        if self.quiet:
            args.append("--quiet")
        return args

    def _spawn(self) -> None:
        extra = {}
        if sys.platform == "win32":
            extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            extra["start_new_session"] = True
        # The target goes through the environment, not argv: a PostgreSQL URL may hold a
        # password, and argv is visible to every user in `ps`. The worker removes it again.
        env = dict(os.environ, **{WORKER_TARGET_VARIABLE: self.target})
        proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, env=env, **extra)
        self.workers[proc.pid] = (proc, time.monotonic())
        self._exits.add(proc.pid)

    def _reap(self) -> None:
        for pid, (proc, started) in list(self.workers.items()):
            code = proc.poll()
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
            self._say(f"worker pid {pid} died ({_describe(code)})")
            _reap_orphans(set(self.workers), kill=True)
            if self.burst:
                self.failed = True
                continue
            if time.monotonic() - started < FLAP_SECONDS:
                time.sleep(FLAP_SECONDS)
                if self.signals_seen:  # a stop arrived during the pause
                    continue
            self._say("starting a replacement worker")
            self._spawn()
        _reap_orphans(set(self.workers), kill=False)

    def _on_signal(self, signum: int, frame: object) -> None:
        """Relay each stop request to every worker once, however many copies of its signal
        arrive. The workers are told at once (they stop claiming); the stop is announced only
        when the copy window has passed, so that a signal sent after seeing the announcement
        (a person pressing Ctrl-C again, a script) is always the second request. Printing is
        left to the main loop: a handler that prints can interrupt a print."""
        now = time.monotonic()
        if not self._stop_signals.count(now):
            return
        self.signals_seen = self._stop_signals.requests
        relay = signal.SIGTERM if sys.platform != "win32" else signal.CTRL_BREAK_EVENT
        for proc, _ in list(self.workers.values()):
            with contextlib.suppress(OSError):
                proc.send_signal(relay)
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
            self._say(message if time.monotonic() >= when else early)

    def _say(self, message: str) -> None:
        if not self.quiet:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} supervisor: {message}", file=sys.stderr, flush=True)


class _ExitWatch:
    """Wakes the supervisor the moment a worker exits (Linux: each worker's pidfd becomes
    readable then), so `worker start --burst` returns as soon as the work is done instead of
    at the next tick. Elsewhere, or without pidfds, it simply sleeps for the tick."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self._poll = select.poll() if hasattr(select, "poll") else None

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
        if self._fds:
            self._poll.poll(timeout * 1000)
        else:
            time.sleep(timeout)

    def close(self) -> None:
        for pid in list(self._fds):
            self.discard(pid)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _become_subreaper() -> None:
    if not IS_LINUX:
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        pass


def _adopted_children(workers: set[int]) -> list[int]:
    """Children that are not workers: commands orphaned by a dead worker, or leftovers."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as handle:
            pids = [int(text) for text in handle.read().split()]
    except OSError:
        return []
    return [pid for pid in pids if pid not in workers]


def _reap_orphans(workers: set[int], kill: bool) -> None:
    """Collect adopted children that exited; with `kill`, first kill their process groups."""
    if not IS_LINUX:
        return
    for pid in _adopted_children(workers):
        if kill:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
