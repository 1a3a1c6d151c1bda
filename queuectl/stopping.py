"""Stop signals, shared by the supervisor and its workers: which signals ask for a stop, how
the copies of one request are told from a second request (SPEC §4 `worker start`), and the
signal a worker gets when its supervisor dies."""

from __future__ import annotations

import signal
import sys

# The signals that ask for a stop, where the platform has them. SIGHUP: the terminal the pool
# ran in was closed; SIGBREAK: Windows, where the supervisor relays stops as CTRL_BREAK_EVENT.
STOP_SIGNALS = tuple(
    name for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK") if hasattr(signal, name)
)
# What a worker gets when its supervisor dies (Linux): not a stop signal, so it is never taken
# for a second stop request (see Worker.handle_parent_death).
PARENT_DEATH_SIGNAL = getattr(signal, "SIGUSR1", None)
# Stop signals this close to the last counted one are copies of it (see StopSignals).
STOP_COPY_SECONDS = 0.5


class StopSignals:
    """Counts stop requests among stop signals: the copies of one request count once.

    One user action can deliver its signal more than once. Coreutils `timeout` (on expiry, or
    when it is sent SIGTERM itself) signals its child and then its whole process group, which
    the child is in; a terminal sends Ctrl-C to the whole foreground process group; a Windows
    console sends Ctrl-Break to every process on it, workers included, besides the copy the
    supervisor relays. Nothing in a signal tells a copy from a second request, but copies
    arrive within microseconds (milliseconds on a loaded machine) of each other, while a
    second request is a second action: a person pressing Ctrl-C again, a script signalling
    again after the first stop was announced. So a signal within `window` seconds of the last
    counted request is a copy. Counting against the last *counted* request, not the last
    signal, keeps a stream of signals from postponing the forced stop forever.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.requests = 0
        self._last: float | None = None

    def count(self, now: float) -> bool:
        """Record a stop signal handled at monotonic time `now`; True if it is a new request."""
        if self._last is not None and now - self._last < self.window:
            return False
        self._last = now
        self.requests += 1
        return True


def signal_name(signum: int) -> str:
    """SIGTERM, SIGINT…, or `signal N` for a number the platform does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def worker_copy_window(supervisor: int | None, platform: str = sys.platform) -> float:
    """How close together stop signals are copies of one request, for a worker relayed to by
    the supervisor of pid `supervisor` (None: a worker run on its own).

    Started by the supervisor on POSIX, a worker runs in a session of its own: no terminal or
    process-group signal reaches it, only what the supervisor relays, which has already
    counted copies as one request, so every signal counts (a worker busy in a long store call
    handles signals late, and a window here could swallow the relayed second request). On
    Windows a console Ctrl-Break reaches the workers as well as the supervisor, and a worker
    run on its own shares its terminal's (or `timeout`'s) process group: copies come there."""
    if supervisor is not None and platform != "win32":
        return 0.0
    return STOP_COPY_SECONDS


def die_with_parent() -> None:
    """If the supervisor is killed outright, stop gracefully instead of running on unseen
    (Linux: PR_SET_PDEATHSIG; until the handler is set, the signal simply ends the worker,
    which has claimed nothing yet)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, PARENT_DEATH_SIGNAL)
    except (OSError, AttributeError):
        pass
