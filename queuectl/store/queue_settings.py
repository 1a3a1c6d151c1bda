"""Queue settings and run counts (SPEC §8), written once for every backend: pause, resume and
limit a queue, list the queues, and the cumulative runs by queue and outcome that the metrics
publish. The claim statements enforce the settings (sqlite_sql.py, postgres_claim_sql.py);
these only read and change them. Imported on first use: never on `enqueue`'s path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..models import STATES


class QueueInfo(NamedTuple):
    """One queue as `queue list` shows it."""

    name: str
    paused: bool
    limit: int | None  # None: no limit
    jobs: dict[str, int]  # jobs by state, every state present
    oldest_ready_age: float | None  # seconds since the oldest due pending job became due

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "paused": self.paused,
            "limit": self.limit,
            "jobs": self.jobs,
            "oldest_ready_age": self.oldest_ready_age,
        }


class RunCount(NamedTuple):
    """Runs ended so far in one queue with one outcome, and their total run time."""

    queue: str
    outcome: str  # completed, failed (a non-zero exit), or a run outcome such as timed_out
    runs: int
    seconds: float


def set_paused(tx: Any, sql: Any, names: Sequence[str], paused: bool) -> None:
    """Pause or resume queues; resuming wakes idle workers, as a new job does."""
    for name in dict.fromkeys(names):
        tx.execute(sql.SET_QUEUE_PAUSED, {"name": name, "paused": paused})
    if not paused:
        tx.wake("resume")


def set_limit(tx: Any, sql: Any, name: str, limit: int) -> None:
    """Set a queue's limit on running jobs (0: none). A higher limit, or none, may let idle
    workers claim at once: they are woken."""
    tx.execute(sql.SET_QUEUE_LIMIT, {"name": name, "limit": limit})
    tx.wake("limit")


def fold_job_counts(tx: Any, sql: Any) -> None:
    """Fold the job count changes the triggers appended into the counts, where the backend
    appends them (PostgreSQL; SQLite's triggers count in place): keeps list_queues' reading
    to a few rows. Safe at any time, from any number of callers at once."""
    if sql.FOLD_JOB_COUNTS is not None:
        tx.execute(sql.FOLD_JOB_COUNTS, {})


def list_queues(tx: Any, sql: Any) -> list[QueueInfo]:
    """Every queue that has jobs or a setting, by name."""
    settings = {row[0]: (bool(row[1]), row[2]) for row in tx.execute(sql.QUEUE_SETTINGS, {})}
    jobs: dict[str, dict[str, int]] = {}
    for queue, state, count in tx.execute(sql.QUEUE_JOB_COUNTS, {}):
        jobs.setdefault(queue, dict.fromkeys(STATES, 0))[state] = count
    ages = dict(tx.execute(sql.QUEUE_OLDEST_READY, {"now": tx.now}).fetchall())
    queues = []
    for name in sorted(settings.keys() | jobs.keys()):
        paused, limit = settings.get(name, (False, 0))
        if not (paused or limit or name in jobs):
            continue  # known once, but with neither jobs nor settings now
        counts = jobs.get(name) or dict.fromkeys(STATES, 0)
        age = ages.get(name)
        queues.append(
            QueueInfo(name, paused, limit or None, counts, None if age is None else max(0.0, age))
        )
    return queues


def paused_queues(tx: Any, sql: Any) -> list[str]:
    """The names of the paused queues, sorted as `queue list` sorts them (by code point,
    whatever the server's collation: PostgreSQL's ORDER BY follows the database's locale)."""
    return sorted(row[0] for row in tx.execute(sql.PAUSED_QUEUES, {}))


def run_counts(tx: Any, sql: Any) -> list[RunCount]:
    """Runs ended so far by queue and outcome: kept apart from the jobs, so they only grow
    (prune does not lower them)."""
    return [RunCount(*row) for row in tx.execute(sql.RUN_COUNTS, {})]
