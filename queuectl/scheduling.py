"""A worker's part in firing schedules (SPEC §8): when to look for due ones, and the look.

Every running worker (not a burst one) has a ScheduleTicker. It looks about once a second,
and an idle worker also wakes for the next fire time the last look reported, so a job appears
within milliseconds of its fire time while any worker is idle, and within about a second
while every worker is busy (a busy worker looks from its lease-renewal thread, between
renewals). The exactly-once rule is the store's (store/schedule_ops.py): any number of workers
may look at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import StoreError
from .store import Store

# How often a worker looks for due schedules, at most this long apart while it runs.
LOOK_SECONDS = 1.0
# Woken for a fire time, look this much after it: the store's clock and this host's monotonic
# clock tick at slightly different rates, and a look a hair too early finds nothing due.
LATE_BY = 0.005


class ScheduleTicker:
    """When one worker looks for due schedules, and the look (`tick`)."""

    def __init__(
        self,
        store: Store,
        defaults: Callable[[], Mapping[str, Any]],
        say: Callable[[str], None],
    ) -> None:
        """`defaults`: the config in effect (`max-retries`, `job-timeout`) for the jobs of
        schedules that set none; `say`: the worker's event line."""
        self.store = store
        self._defaults = defaults
        self._say = say
        self._next_look = 0.0  # monotonic time of the next look
        self._said: set[str] = set()  # schedules' problems said already
        self._failing: str | None = None  # the store error said last, until a look succeeds

    def due_in(self) -> float:
        """Seconds until the next look (0: now)."""
        return max(0.0, self._next_look - time.monotonic())

    def tick(self) -> list[str]:
        """Look for due schedules if it is time to, and fire them; the ids of the jobs it
        enqueued. Never raises for a store error: said once, the next look comes anyway."""
        if time.monotonic() < self._next_look:
            return []
        self._next_look = time.monotonic() + LOOK_SECONDS
        try:
            firing = self.store.fire_schedules(self._defaults())
        except StoreError as exc:
            if str(exc) != self._failing:
                self._failing = str(exc)
                self._say(f"could not look for due schedules: {exc}")
            return []
        self._failing = None
        if firing.wait is not None:
            # The wait counts from the store's time during the look: from its end here.
            self._next_look = min(self._next_look, time.monotonic() + firing.wait + LATE_BY)
        for job_id in firing.enqueued:
            self._say(f"{job_id}: enqueued by its schedule")
        for job_id in firing.skipped:
            self._say(
                f"{job_id}: skipped (its schedule's previous job is unfinished, or the id is taken)"
            )
        for problem in firing.errors:
            if problem not in self._said:  # once each, not every second
                self._said.add(problem)
                self._say(problem)
        return firing.enqueued
