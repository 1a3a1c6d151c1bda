"""Recent activity for the dashboard (SPEC §9): how many runs ended in each minute of the last
hour, written once for every backend over the admin statements (RUNS_PER_MINUTE). Imported on
first use: never on `enqueue`'s path.
"""

from __future__ import annotations

from typing import Any


def runs_per_minute(tx: Any, sql: Any, minutes: int) -> list[int]:
    """Runs ended in each of the last `minutes` minutes, oldest minute first; the last entry
    is the minute up to now."""
    counts = [0] * minutes
    params = {"now": tx.now, "span": 60.0 * minutes}
    for ago, count in tx.execute(sql.RUNS_PER_MINUTE, params):
        if 0 <= ago < minutes:  # a run ending exactly at the span's far edge
            counts[minutes - 1 - int(ago)] += int(count)
    return counts
