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
from ..models import ENDED_BADLY, JobSpec, JobState
from .rows import new_job_row


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


def add_linked(tx: Any, sql: Any, specs: Sequence[JobSpec], now: float) -> list[str]:
    """Insert jobs one at a time, in order, with their dependencies and unique keys. Returns
    one id per spec: its own, or, when its unique key is held by an unfinished job (or by an
    earlier spec of the batch), that job's id, and nothing is written for it. A later spec that
    runs after such a one runs after the job holding the key: re-running a script that queues
    `build` then `test --after build` makes `test` wait for the `build` already queued."""
    held: dict[str, str] = {}  # unique key -> the id that holds it, within this batch
    alias: dict[str, str] = {}  # a spec not written -> the job holding its key
    ids = []
    for spec in specs:
        if spec.after:
            spec = spec._replace(after=tuple(dict.fromkeys(alias.get(d, d) for d in spec.after)))
        # Every spec's dependencies are checked, written or not: a bad one is an error.
        deps = [_dependency(tx, sql, spec.id, dep) for dep in spec.after]
        key = spec.unique_key
        holder = held.get(key) if key is not None else None
        if holder is None and key is not None:
            row = tx.execute(sql.SELECT_KEY_HOLDER, {"key": key}).fetchone()
            holder = None if row is None else row[0]
        if holder is not None:
            held[key] = alias[spec.id] = holder
            ids.append(holder)
            continue
        if tx.execute(sql.SELECT_STATE, {"job": spec.id}).fetchone() is not None:
            raise DuplicateJob(spec.id)
        row = new_job_row(spec, now)
        if key is None:
            seq = tx.execute(sql.INSERT_ONE_JOB, row).fetchone()[0]
        else:
            inserted = tx.execute(sql.INSERT_UNIQUE_JOB, row).fetchone()
            if inserted is None:
                # PostgreSQL: another enqueuer's job took the key after the look-up above
                # (the insert waited for it to commit). Its id, as for a key held before.
                holder = tx.execute(sql.SELECT_KEY_HOLDER, {"key": key}).fetchone()
                if holder is None:
                    raise DuplicateJob(spec.id)  # and it finished already: the caller retries
                held[key] = alias[spec.id] = holder[0]
                ids.append(holder[0])
                continue
            seq = inserted[0]
            held[key] = spec.id
        if deps:
            _link(tx, sql, seq, deps)
        ids.append(spec.id)
    return ids


def _dependency(tx: Any, sql: Any, job_id: str, dep: str) -> tuple:
    """The seq and state of a job `job_id` is to run after; DependencyError if it cannot."""
    row = tx.execute(sql.SELECT_DEPENDENCY, {"job": dep}).fetchone()
    if row is None:
        raise DependencyError(f"job {job_id!r} runs after {dep!r}, and there is no such job")
    state = JobState(row[1])
    if state in ENDED_BADLY:
        raise DependencyError(
            f"job {job_id!r} runs after {dep!r}, which already ended {state}: it would never run"
        )
    return row[0], state


def _link(tx: Any, sql: Any, seq: int, deps: Sequence[tuple]) -> None:
    """Record a new job's dependencies; it stays `waiting` until those not completed yet are."""
    for dep_seq, _state in deps:
        tx.execute(sql.INSERT_DEPENDENCY, {"dep_seq": dep_seq, "job_seq": seq})
    left = sum(state is not JobState.COMPLETED for _seq, state in deps)
    tx.execute(sql.SET_DEPS_LEFT, {"seq": seq, "left": left})


def settle_dependents(tx: Any, sql: Any, job_id: str, state: JobState) -> None:
    """`job_id` has just ended in `state`: a completion releases the jobs waiting on it (those
    with no other dependency left become `pending`); dead or canceled cancels them, and the
    jobs waiting on those, naming the dependency that ended."""
    if state is JobState.COMPLETED:
        released = tx.execute(sql.RELEASE_DEPENDENTS, {"job": job_id, "now": tx.now})
        if released.rowcount:
            tx.wake("release")
    elif state in ENDED_BADLY:
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
