"""Schedules (SPEC §8), written once for every backend: adding, listing, pausing, resuming and
removing them, and firing them, which enqueues each fire time exactly once.

Firing has no leader. Every running worker looks for due schedules about once a second
(scheduling.py) and fires each in a transaction of its own that
1. reads the schedule and checks that the fire time it saw (`next_run_at`) is still there;
2. moves `next_run_at` from that value to the first fire time after now: a compare-and-set,
   so of any number of workers firing the same fire time exactly one changes the row (on
   PostgreSQL the others wait on its row lock, then find the value moved on and change
   nothing; on SQLite the write lock takes them one at a time);
3. only then, and only for that worker, inserts the job of the LATEST fire time not after now
   (after a time without workers, only that one), id `<NAME>@<fire time>`, unless a job of
   that id exists already or `overlap` is `skip` and the previous job is unfinished.
Times are the store's (`tx.time()`: the server's clock on PostgreSQL), handed to cron.py.

Imported by the store's methods when they run (see operations.py): never on `enqueue`'s path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import cron
from ..errors import QueueError, ScheduleExists, ScheduleNotFound
from ..models import FINISHED_STATES, JobState
from ..schedules import Firing, Schedule, job_id, job_spec
from .chaining import add_linked
from .operations import RETRY

# At most this many schedules are fired in one look; more due ones wait for the next look.
FIRE_BATCH = 100


def add(ops: Any, schedule: Schedule) -> Schedule:
    """Insert a new schedule, first due at its first fire time after the store's now."""
    admin = ops.admin_sql

    def insert(tx: Any) -> Schedule:
        now = tx.time()
        first = _next_after(schedule, now)
        row = schedule._replace(created_at=now, next_run_at=first)._asdict()
        if tx.execute(admin.INSERT_SCHEDULE, {**row, "now": now}).rowcount != 1:
            raise ScheduleExists(schedule.name)
        return _read(tx, admin, schedule.name)

    def landed(tx: Any) -> Any:
        # A COMMIT whose answer was lost: ours if a schedule of that name does what we asked.
        row = tx.execute(admin.SELECT_SCHEDULE, {"name": schedule.name}).fetchone()
        if row is None:
            return RETRY
        found = Schedule.from_row(row)
        same = (found.cron, found.tz, found.command) == (
            schedule.cron,
            schedule.tz,
            schedule.command,
        )
        return found if same else RETRY

    return ops._transaction(insert, probe=landed)


def list_all(ops: Any) -> list[Schedule]:
    admin = ops.admin_sql
    return ops._transaction(
        lambda tx: [Schedule.from_row(row) for row in tx.execute(admin.SELECT_SCHEDULES, {})],
        reads=True,
        single=True,
    )


def get(ops: Any, name: str) -> Schedule:
    admin = ops.admin_sql
    return ops._transaction(lambda tx: _read(tx, admin, name), reads=True, single=True)


def pause(ops: Any, name: str) -> Schedule:
    """Paused: no fire time is due until it is resumed (pausing twice changes nothing)."""
    admin = ops.admin_sql

    def change(tx: Any) -> Schedule:
        if tx.execute(admin.PAUSE_SCHEDULE, {"name": name}).rowcount != 1:
            raise ScheduleNotFound(name)
        return _read(tx, admin, name)

    return ops._transaction(change)


def resume(ops: Any, name: str) -> Schedule:
    """Due again from the first fire time strictly after now: none of the fire times that
    passed while it was paused is ever enqueued. Resuming a running schedule changes nothing."""
    admin = ops.admin_sql

    def change(tx: Any) -> Schedule:
        schedule = _read(tx, admin, name)
        if schedule.paused:
            first = _next_after(schedule, tx.time())
            tx.execute(admin.RESUME_SCHEDULE, {"name": name, "next_run_at": first})
            tx.wake("schedule")  # idle workers learn the new fire time at once
        return _read(tx, admin, name)

    return ops._transaction(change)


def remove(ops: Any, name: str) -> None:
    """Delete a schedule; its jobs stay. ScheduleNotFound if there is none of that name."""
    admin = ops.admin_sql

    def delete(tx: Any) -> None:
        if tx.execute(admin.DELETE_SCHEDULE, {"name": name}).rowcount != 1:
            raise ScheduleNotFound(name)

    def landed(tx: Any) -> Any:
        gone = tx.execute(admin.SELECT_SCHEDULE, {"name": name}).fetchone() is None
        return None if gone else RETRY

    ops._transaction(delete, probe=landed)


def fire_due(ops: Any, defaults: Mapping[str, Any]) -> Firing:
    """Fire every due schedule (see the module doc), each in a transaction of its own.

    `defaults`: the config in effect for the caller (`max-retries`, `job-timeout`), for the
    schedules that leave those to it. A schedule this host cannot compute (a zone its time
    zone database lacks) is reported in `errors` and left to other workers."""
    admin = ops.admin_sql
    rows = ops._transaction(
        lambda tx: tx.execute(
            admin.NEXT_SCHEDULES, {"now": tx.now, "limit": FIRE_BATCH}
        ).fetchall(),
        reads=True,
        single=True,
    )
    enqueued: list[str] = []
    skipped: list[str] = []
    errors: list[str] = []
    upcoming: list[float] = []
    now = rows[0][2] if rows else 0.0  # the store's time, the same in every row
    for name, expected, _now in rows:
        if expected > now:
            upcoming.append(expected)
            break  # ordered by next_run_at: the rest are later still
        try:
            fired = ops._transaction(lambda tx, n=name, e=expected: _fire(tx, ops, n, e, defaults))
        except cron.CronError as exc:
            errors.append(f"schedule {name!r} cannot be fired on this host: {exc}")
            continue
        if fired is None:
            continue  # another worker fired it first, or it changed meanwhile
        job, added, following = fired
        (enqueued if added else skipped).append(job)
        if following is not None:
            upcoming.append(following)
    if len(rows) == FIRE_BATCH and rows[-1][1] <= now:
        wait: float | None = 0.0  # more due than one look fires: look again at once
    else:
        wait = max(0.0, min(upcoming) - now) if upcoming else None
    return Firing(enqueued, skipped, errors, wait)


def _fire(
    tx: Any, ops: Any, name: str, expected: float, defaults: Mapping[str, Any]
) -> tuple[str, bool, float | None] | None:
    """One schedule's due fire time, in the caller's transaction: (the job id, whether it was
    enqueued, the schedule's next fire time), or None when another worker fired it first."""
    admin, sql = ops.admin_sql, ops.sql
    row = tx.execute(admin.SELECT_SCHEDULE, {"name": name}).fetchone()
    now = tx.time()
    if row is None:
        return None
    schedule = Schedule.from_row(row)
    if schedule.paused or schedule.next_run_at != expected or expected > now:
        return None
    fire_time = cron.latest(schedule.cron, schedule.tz, now, expected)
    following = cron.next_after(schedule.cron, schedule.tz, now)
    job = job_id(name, fire_time if fire_time is not None else expected)
    enqueue = fire_time is not None and not _held_back(tx, sql, schedule, job)
    params = {"name": name, "expected": expected, "next_run_at": following}
    params.update(enqueued_at=now if enqueue else None, job_id=job if enqueue else None)
    if tx.execute(admin.ADVANCE_SCHEDULE, params).rowcount != 1:
        return None  # lost the compare-and-set: the winner enqueues
    if enqueue:
        add_linked(tx, sql, [job_spec(schedule, fire_time, defaults)], now)
        tx.wake("schedule")
    return job, enqueue, following


def _held_back(tx: Any, sql: Any, schedule: Schedule, job: str) -> bool:
    """Whether the fire time's job is not to be added: a job of its id exists already (added
    by hand, or by a schedule of the same name removed and added again), or the schedule
    skips overlaps and its previous job is unfinished."""
    if tx.execute(sql.SELECT_STATE, {"job": job}).fetchone() is not None:
        return True
    if schedule.overlap != "skip" or schedule.last_job_id is None:
        return False
    row = tx.execute(sql.SELECT_STATE, {"job": schedule.last_job_id}).fetchone()
    return row is not None and JobState(row[0]) not in FINISHED_STATES


def _next_after(schedule: Schedule, now: float) -> float | None:
    try:
        return cron.next_after(schedule.cron, schedule.tz, now)
    except cron.CronError as exc:  # e.g. a zone this host's time zone database lacks
        raise QueueError(f"schedule {schedule.name!r}: {exc}") from None


def _read(tx: Any, admin: Any, name: str) -> Schedule:
    row = tx.execute(admin.SELECT_SCHEDULE, {"name": name}).fetchone()
    if row is None:
        raise ScheduleNotFound(name)
    return Schedule.from_row(row)
