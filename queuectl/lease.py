"""Keeping a running job's lease, and fencing: a worker that cannot renew kills its own command
before the lease can run out, so that a rescuer's rerun never overlaps it (SPEC §5).

Why no overlap is possible (docs/fencing.md has the numbers):

- A renewal sent at local monotonic time `t` sets `lease_until = T + lease` by the store's
  clock, where `T` is when the store handled it: in real time, never before `t`.
- A rescuer requeues the job only once the store's clock passes `lease_until`, and the rerun
  starts after that (it is claimed later still).
- The worker starts killing its command at `t + fence_after(lease)`, by its own monotonic clock,
  and the kill ends (SIGKILL to the whole process group) `grace` seconds later. That is
  `margin` seconds before `t + lease`: enough while the two clocks' rates differ by less than
  margin / lease (5 %; NTP keeps real clocks within 0.05 %).

The renewals run on a thread of their own (LeaseKeeper), so a store call blocked by a silent
network partition or a table lock never holds up the fence or the job's timeout, which the
worker's main thread enforces while it waits for the command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .errors import StoreError
from .models import Claim
from .store import Store

# The longest time a command gets between SIGTERM and SIGKILL when it is killed.
MAX_KILL_GRACE_SECONDS = 2.0
# How often the main thread looks at what the keeper found, while a command runs.
CHECK_SECONDS = 0.1


class Fencing(NamedTuple):
    """When a worker that could not renew a lease of `lease` seconds kills its command."""

    fence_after: float  # seconds after the last renewal was sent: SIGTERM to the command
    grace: float  # then SIGKILL this much later
    margin: float  # left before the lease can run out by the store's clock


def fencing(lease: float) -> Fencing:
    """The fencing times for a lease (pure: see the module docstring for the argument)."""
    grace = min(MAX_KILL_GRACE_SECONDS, 0.15 * lease)
    margin = 0.05 * lease + 0.05  # clock rates 5 % apart, and 50 ms to be scheduled
    return Fencing(lease - grace - margin, grace, margin)


class LeaseKeeper:
    """Renews one claim from a thread of its own while its command runs.

    The main thread reads `lost` (the store says the claim is no longer held: canceled, or
    rescued) and `fence_due(now)`; it never waits for the keeper except in `stop`, after the
    command has ended."""

    def __init__(
        self,
        store: Store,
        claim: Claim,
        worker_id: str,
        lease: float,
        interval: float,
        renewed_at: float,
        first: Callable[[], None],
        on_stop_request: Callable[[], None],
        say: Callable[[str], None],
        chores: Callable[[], None] | None = None,
    ) -> None:
        """`chores`: other work on the store while the command runs (firing due schedules),
        done after each renewal: the store is this thread's until `stop`."""
        self.store = store
        self.claim = claim
        self.worker_id = worker_id
        self.lease = lease
        self.interval = interval
        self.fencing = fencing(lease)
        # Monotonic time the last successful renewal (or the claim) was sent.
        self.renewed_at = renewed_at
        self.lost = False
        self._first = first  # done once, before the first renewal (record the pid)
        self._on_stop_request = on_stop_request
        self._say = say
        self._chores = chores
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def fence_at(self) -> float:
        """The monotonic time at which the command must be killed, unless renewed first."""
        return self.renewed_at + self.fencing.fence_after

    def unrenewed_for(self, now: float) -> float:
        return now - self.renewed_at

    def stop(self) -> None:
        """Stop renewing; wait for a renewal in flight (bounded by the store's own timeouts),
        so that the store is the main thread's alone again."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        failing: str | None = None
        first_done = False
        wait = 0.0
        while not self._stop.wait(wait):
            sent = time.monotonic()
            try:
                if not first_done:
                    self._first()
                    first_done = True
                beat = self.store.heartbeat(self.worker_id, self.lease, self.claim)
            except StoreError as exc:
                if str(exc) != failing:
                    failing = str(exc)
                    self._say(f"{self.claim.job.id}: heartbeat failed, will retry: {exc}")
                # Retry sooner than the interval: every renewal that gets through pushes the
                # fence back, and a fresh connection is made for the retry.
                wait = min(self.interval, 0.5)
                continue
            if failing is not None:
                failing = None
                self._say(f"{self.claim.job.id}: heartbeat renewed again")
            self.renewed_at = sent
            if beat.stop_requested:
                self._on_stop_request()
            if not beat.held:
                self.lost = True
                return
            if self._chores is not None:
                self._do_chores()
            wait = self.interval

    def _do_chores(self) -> None:
        try:
            self._chores()
        except Exception as exc:  # a chore must never end the renewals, whatever it met
            self._say(f"{self.claim.job.id}: skipped the worker's chores: {exc!r}")
