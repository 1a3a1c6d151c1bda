"""Dependencies (`after`) and unique keys (SPEC §7), written once for every backend.

Functions over an operation's Transaction (store/operations.py) and the backend's named
statements; each runs inside the transaction of the operation that calls it, so that a job's
dependents are released or canceled in the very transaction that finishes it, and a unique key
is taken by exactly one of any number of enqueuers (the store's partial unique index decides).
"""

# No `from __future__ import annotations` (see store/__init__.py): imported by `enqueue`.

from collections.abc import Sequence
from typing import Any

from ..errors import DependencyError, DuplicateJob
from ..models import FAILED_DEPENDENCY_STATES, JobSpec, JobState


def check_batch(specs: Sequence[JobSpec]) -> None:
    """A batch may name in `after` a job of an earlier line, never one of a later line."""
    later = {spec.id: index for index, spec in enumerate(specs)}
    for index, spec in enumerate(specs):
        for dep in spec.after:
            if later.get(dep, -1) > index:
                raise DependencyError(
                    f"job {spec.id!r} runs after {dep!r}, which comes on a later line: "
                    "put each job after the jobs it depends on"
                )


def add_linked(tx: Any, sql: Any, specs: Sequence[JobSpec], rows: Sequence[dict]) -> list[str]:
    """Insert jobs one at a time, in order, with their dependencies and unique keys. Returns
    one id per spec: its own, or, when its unique key is held by an unfinished job (or by an
    earlier spec of the batch), that job's id, and nothing is written for it."""
    held: dict[str, str] = {}  # unique key -> the id that holds it, within this batch
    ids = []
    for spec, row in zip(specs, rows, strict=True):
        key = spec.unique_key
        if key is not None and key in held:
            ids.append(held[key])
            continue
        if tx.execute(sql.SELECT_STATE, {"job": spec.id}).fetchone() is not None:
            raise DuplicateJob(spec.id)
        if key is None:
            seq = tx.execute(sql.INSERT_ONE_JOB, row).fetchone()[0]
        else:
            inserted = tx.execute(sql.INSERT_UNIQUE_JOB, row).fetchone()
            if inserted is None:
                holder = tx.execute(sql.SELECT_KEY_HOLDER, {"key": key}).fetchone()
                # None: the holder finished between the two statements (PostgreSQL); the key is
                # free now, and the insert is tried again, as anyone's would be.
                if holder is not None:
                    held[key] = holder[0]
                    ids.append(holder[0])
                    continue
                inserted = tx.execute(sql.INSERT_UNIQUE_JOB, row).fetchone()
                if inserted is None:
                    raise DuplicateJob(spec.id)  # a race twice in a row: let the caller retry
            seq = inserted[0]
            held[key] = spec.id
        if spec.after:
            _link(tx, sql, spec, seq)
        ids.append(spec.id)
    return ids


def _link(tx: Any, sql: Any, spec: JobSpec, seq: int) -> None:
    """Record a new job's dependencies; it stays `waiting` until those not completed yet are."""
    left = 0
    for dep in spec.after:
        row = tx.execute(sql.SELECT_DEPENDENCY, {"job": dep}).fetchone()
        if row is None:
            raise DependencyError(f"job {spec.id!r} runs after {dep!r}, and there is no such job")
        state = JobState(row[1])
        if state in FAILED_DEPENDENCY_STATES:
            raise DependencyError(
                f"job {spec.id!r} runs after {dep!r}, which already ended {state}: "
                "it would never run"
            )
        tx.execute(sql.INSERT_DEPENDENCY, {"dep_seq": row[0], "job_seq": seq})
        if state is not JobState.COMPLETED:
            left += 1
    tx.execute(sql.SET_DEPS_LEFT, {"seq": seq, "left": left})


def settle_dependents(tx: Any, sql: Any, job_id: str, state: JobState) -> None:
    """`job_id` has just ended in `state`: a completion releases the jobs waiting on it (those
    with no other dependency left become `pending`); dead or canceled cancels them, and the
    jobs waiting on those, naming the dependency that ended."""
    if state is JobState.COMPLETED:
        released = tx.execute(sql.RELEASE_DEPENDENTS, {"job": job_id, "now": tx.now})
        if released.rowcount:
            tx.wake("release")
    elif state in FAILED_DEPENDENCY_STATES:
        tx.execute(sql.CANCEL_DEPENDENTS, {"job": job_id, "state": state.value, "now": tx.now})


def settle_stranded(tx: Any, sql: Any) -> None:
    """Release or cancel waiting jobs whose dependencies settled without them: on PostgreSQL, a
    job linked to a dependency at the moment that dependency's one-statement finish runs is not
    in that statement's snapshot. Run by every worker's maintenance (rescue_expired), so such a
    job waits a maintenance interval at most; on SQLite, whose writers take turns, it never
    finds any."""
    if tx.execute(sql.RELEASE_STRANDED, {"now": tx.now}).rowcount:
        tx.wake("release")
    for job_id, state in tx.execute(sql.SELECT_FAILED_DEPENDENCIES, {}).fetchall():
        settle_dependents(tx, sql, job_id, JobState(state))


def key_held_elsewhere(tx: Any, sql: Any, job_id: str) -> str | None:
    """The unfinished job, other than `job_id`, that holds `job_id`'s unique key, if any."""
    row = tx.execute(sql.SELECT_OTHER_KEY_HOLDER, {"job": job_id}).fetchone()
    return None if row is None else row[0]
