"""Run times by queue (SPEC §9's histogram `queuectl_job_run_duration_seconds`), written once
for every backend. Each run is put in its bucket by the trigger that counts it in run_counts
(sqlite_schema.py migration 6, postgres_schema.py migration 5), in the transaction that closes
it: the buckets survive restarts and prune, and a queue's count is always the sum of its run
counts. Imported on first use: never on `enqueue`'s path.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

# The buckets' upper bounds in seconds, +Inf last. Fixed: the migrations' CASE expressions
# spell them out, and a stored count cannot be split into finer buckets later (a test holds the
# two together). From sub-second commands to the hour-long ones a job-timeout of hours allows.
RUN_DURATION_BOUNDS: tuple[float, ...] = (
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
    math.inf,
)


class RunDurations(NamedTuple):
    """The run times of one queue's closed runs, as a Prometheus histogram wants them."""

    queue: str
    buckets: tuple[tuple[float, int], ...]  # (upper bound, runs at or under it), cumulative
    count: int  # every closed run: the +Inf bucket
    seconds: float  # their total run time


def run_durations(tx: Any, sql: Any) -> list[RunDurations]:
    """Every queue's histogram of run times, by queue name (code point order), each with every
    bound of RUN_DURATION_BOUNDS."""
    per_queue: dict[str, dict[float, int]] = {}
    totals: dict[str, float] = {}
    for queue, le, runs, seconds in tx.execute(sql.RUN_DURATIONS, {}):
        per_queue.setdefault(queue, {})[float(le)] = int(runs)
        totals[queue] = totals.get(queue, 0.0) + float(seconds)
    histograms = []
    for queue in sorted(per_queue):
        counts, running, buckets = per_queue[queue], 0, []
        for bound in RUN_DURATION_BOUNDS:
            running += counts.get(bound, 0)
            buckets.append((bound, running))
        histograms.append(RunDurations(queue, tuple(buckets), running, totals[queue]))
    return histograms
