"""Bounded waits on PostgreSQL connections (SPEC §5): every store call of the CLI and of the
workers ends, also when the network goes silent (packets dropped, no reset).

Three layers, each for what the others cannot see:
- the kernel (connect_timeout, tcp_user_timeout, keepalives): a peer that acknowledges nothing
  is dead after `Limits.network` seconds; a slow but alive server is never cut;
- the server (lock_timeout, statement_timeout, idle_in_transaction_session_timeout): a lock or a
  statement that takes too long is reported with a clear error, the connection kept;
- the `Watchdog`: every call has a cut-off (`Limits.call`, or a command's --timeout), at
  which its connection is cut whatever the kernel's retransmission timers say: the last
  resort for a hung server, exact for callers that chose call_timeout.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import psycopg

# How long a silent network may hold a call of a store opened without `call_timeout` (the CLI's)
# before its connection is taken for dead: long enough for a slow link, short enough for a
# person at a terminal. Never more than busy_timeout; never under 2 s (libpq's floor).
NETWORK_TIMEOUT = 10.0
# The fewest seconds a connection attempt may be given: psycopg rounds connect_timeout down to
# whole seconds and raises anything lower to 2.
MIN_CONNECT_TIMEOUT = 2


class Limits(NamedTuple):
    """How long each kind of wait may last on one connection, in seconds (0: no limit).

    network: connect_timeout, tcp_user_timeout and keepalives. A peer that acknowledges
        nothing for this long is dead: unacknowledged data (tcp_user_timeout) and an idle
        connection (keepalives) alike. A server that is merely slow still acknowledges at the
        TCP level, so this never cuts a long statement, a bulk COPY or a LISTEN wait.
    lock: lock_timeout. The CLI waits busy_timeout for a locked row (SPEC §5); then StoreBusy.
    statement: statement_timeout. Queue statements touch a handful of rows; one running far
        longer than a lock wait is a stuck server or a bad plan, better reported than waited
        on. Bulk adds and migrations lift it for their own transaction (they may be big).
    idle_in_transaction: idle_in_transaction_session_timeout. Our transactions never wait on
        the client between statements, so an idle one means its client vanished (a partition
        mid-transaction): the server ends it and frees its row locks for the other workers.
    call: the cut-off of one call (the Watchdog's). By then the server, if it is working, has
        answered or reported a timeout of its own; only a hung server (stopped, stuck on a
        dead disk) or a proxy that accepts and forwards nothing is still silent, and the
        kernel, which acknowledges for it, never gives up on those.
    """

    network: float
    lock: float
    statement: float
    idle_in_transaction: float
    call: float

    @classmethod
    def choose(cls, busy_timeout: float, call_timeout: float | None) -> Limits:
        if call_timeout is None:
            # The CLI and plain library use: a lock is waited on for busy_timeout, a statement
            # for twice that, the network for NETWORK_TIMEOUT.
            network = max(float(MIN_CONNECT_TIMEOUT), min(busy_timeout, NETWORK_TIMEOUT))
            statement = 2 * busy_timeout
            return cls(network, busy_timeout, statement, max(5.0, network), statement + network)
        # A caller that must hear back within call_timeout (a worker's heartbeat): the server
        # reports a lock or a slow statement before the deadline, with a clear error and the
        # connection kept; only a silent network or server reaches the cut-off.
        return cls(
            max(1.0, call_timeout),
            min(busy_timeout, call_timeout / 2),
            0.8 * call_timeout,
            max(5.0, call_timeout),
            call_timeout,
        )

    def connection_params(self) -> dict[str, str]:
        """libpq parameters for the network limit (psycopg passes them on to libpq)."""
        network = self.network
        return {
            "application_name": "queuectl",
            "connect_timeout": str(max(MIN_CONNECT_TIMEOUT, int(network))),
            # Linux: unacknowledged data, and keepalive probes, give up after this long.
            "tcp_user_timeout": str(int(network * 1000)),
            # Elsewhere (no tcp_user_timeout): idle + interval * count is about `network`.
            "keepalives": "1",
            "keepalives_idle": str(max(1, int(network / 2))),
            "keepalives_interval": str(max(1, int(network / 6))),
            "keepalives_count": "3",
        }

    def session_values(self) -> list[tuple[str, str]]:
        """The server settings, as (name, value in ms) pairs; 0 is no limit."""
        values = {
            "lock_timeout": self.lock,
            "statement_timeout": self.statement,
            "idle_in_transaction_session_timeout": self.idle_in_transaction,
        }
        return [
            (name, f"{max(1, int(value * 1000)) if value > 0 else 0}ms")
            for name, value in values.items()
        ]


class Cut:
    """One watched call: when it is cut, on which socket, and whether it was."""

    __slots__ = ("deadline", "fd", "fired")

    def __init__(self, deadline: float, fd: int) -> None:
        self.deadline = deadline
        self.fd = fd
        self.fired = False


class Watchdog:
    """Cuts the connection of a call that outlives its cut-off.

    The kernel notices a silent network within about `Limits.network`, but not at a given
    instant (its retransmissions back off), and never notices a hung server whose kernel still
    acknowledges. Shutting the socket down wakes the blocked read at once: libpq reports the
    connection lost, and `_run` treats it as any other loss, on a fresh connection. One thread
    per store, started by the first watched call, asleep while nothing is watched; several
    threads of one store may be watched at once. A socket is never closed here, only shut
    down, and the call's own thread unwatches it (under the same lock) before closing it, so a
    descriptor number that was reused is never touched."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._watched: set[Cut] = set()
        self._sleeping_until = -math.inf  # when the thread wakes up next, if it sleeps
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, conn: psycopg.Connection, deadline: float) -> Iterator[Cut]:
        """Cut `conn` at `deadline` (time.monotonic()) unless the block is done by then."""
        cut = Cut(deadline, conn.pgconn.socket)
        with self._cond:
            self._watched.add(cut)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="queuectl-postgres-watchdog", daemon=True
                )
                self._thread.start()
            elif deadline < self._sleeping_until:
                self._cond.notify()
        try:
            yield cut
        finally:
            with self._cond:
                self._watched.discard(cut)

    def _loop(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for cut in [cut for cut in self._watched if cut.deadline <= now]:
                    self._watched.discard(cut)
                    cut.fired = True
                    _shut_down(cut.fd)
                until = min((cut.deadline for cut in self._watched), default=math.inf)
                self._sleeping_until = until
                self._cond.wait(None if until == math.inf else until - now)


def _shut_down(fd: int) -> None:
    """Shut a socket down (both ways) without closing it: its owner still will."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()
