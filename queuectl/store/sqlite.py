"""The embedded SQLite backend: one file, WAL mode, explicit BEGIN IMMEDIATE for every write.

Why these choices: WAL lets readers (status, list) run while a worker writes; BEGIN IMMEDIATE
takes the write lock up front, so two writers queue on the busy timeout instead of failing
with "database is locked" halfway through a transaction; `UPDATE … RETURNING` claims a job in
one statement, so no two workers can ever take the same one.

The operations' rules are store/operations.py's; this module gives them SQLite's transactions
and holds what SQLite does its own way: the batch insert, the claim, recording an outcome,
claims made in a store file that was since deleted, and waking idle workers through named
pipes. The connection is SQLiteStoreBase's, in sqlite_conn.py; the SQL is sqlite_sql.py's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DuplicateJob, StoreError
from ..faults import crash_point
from ..models import Claim, Job, JobSpec, JobState
from . import ClaimRequest, Finished, Heartbeat
from . import sqlite_sql as sql
from .operations import Operations
from .rows import new_job_row
from .sqlite_conn import SQLiteStoreBase, translate
from .wakeup import FifoWakeup, notify_all

# Without named pipes, how often an idle worker looks at PRAGMA data_version; a change means
# another connection committed, so there may be work. The check reads shared memory.
WAKE_CHECK_SECONDS = 0.005


class _Transaction:
    """An operation's view of one SQLite transaction (see operations.Transaction)."""

    __slots__ = ("_conn", "now", "woken")

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self._conn = conn
        self.now = now  # taken once the transaction holds its lock
        self.woken = False

    def execute(self, statement: str, params: dict) -> sqlite3.Cursor:
        return self._conn.execute(statement, params)

    def time(self) -> float:
        return self.now

    def wake(self, reason: str) -> None:
        self.woken = True  # done after COMMIT: a woken worker must see the change


class SQLiteStore(SQLiteStoreBase, Operations):
    sql = sql
    admin_sql_module = "queuectl.store.sqlite_admin_sql"

    @translate
    def _transaction(
        self,
        body: Callable[[Any], Any],
        *,
        reads: bool = False,
        single: bool = False,  # PostgreSQL's concern: SQLite has no round trips to save
        budget: float | None = None,  # a lock wait is bounded by the busy timeout instead
        probe: Callable[[Any], Any] | None = None,  # a local COMMIT's answer is never lost
    ) -> Any:
        with self._read() if reads else self._write() as conn:
            tx = _Transaction(conn, self.now())
            result = body(tx)
        if tx.woken:
            notify_all(self._wake_dir)
        return result

    # -- jobs ------------------------------------------------------------------------------

    def _insert_plain(self, specs: Sequence[JobSpec], ids: list[str]) -> None:
        self._insert(specs)
        notify_all(self._wake_dir)

    @translate
    def _insert(self, specs: Sequence[JobSpec]) -> None:
        now = self.now()
        rows = [new_job_row(spec, now) for spec in specs]
        try:
            with self._write() as conn:
                for start in range(0, len(rows), sql.INSERT_ROWS):
                    chunk = rows[start : start + sql.INSERT_ROWS]
                    values = [row[key] for row in chunk for key in sql.INSERT_KEYS]
                    conn.execute(sql.insert_jobs(len(chunk)), values)
        except sqlite3.IntegrityError:
            raise DuplicateJob(self._first_existing([spec.id for spec in specs])) from None

    def _first_existing(self, ids: list[str]) -> str:
        for start in range(0, len(ids), sql.ID_CHUNK):
            chunk = ids[start : start + sql.ID_CHUNK]
            statement = sql.SELECT_EXISTING_IDS.format(marks=",".join("?" * len(chunk)))
            existing = {row[0] for row in self._conn.execute(statement, chunk)}
            for job_id in chunk:
                if job_id in existing:
                    return job_id
        return ids[0]

    # -- running ---------------------------------------------------------------------------

    @translate
    def claim(self, request: ClaimRequest) -> Claim | None:
        with self._write() as conn:
            claim = self._take(conn, request)
            crash_point("claim-before-commit")
        if claim is not None:
            self._open_claims.add(_claim_key(claim))
        return claim

    def _take(self, conn: sqlite3.Connection, request: ClaimRequest) -> Claim | None:
        """Claim the best ready job inside the caller's write transaction."""
        filters, params = sql.queue_filter(request.queues)
        now = self.now()
        params.update(worker=request.worker_id, host=request.host, now=now)
        params["lease"] = request.lease_seconds
        row = conn.execute(sql.CLAIM_JOB.format(**filters), params).fetchone()
        if row is None:
            return None
        job = Job.from_row(row[1:])
        cursor = conn.execute(sql.INSERT_RUN, {**params, "seq": row[0], "attempt": job.attempts})
        return Claim(job, request.worker_id, job.attempts, cursor.lastrowid)

    def set_run_pid(self, claim: Claim, pid: int) -> None:
        if _claim_key(claim) not in self._stale_claims:
            super().set_run_pid(claim, pid)

    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        if claim is None or _claim_key(claim) not in self._stale_claims:
            return self._checked_heartbeat(worker_id, lease_seconds, claim)
        # Made in a store file that is gone (the heartbeat that found out raised, saying so):
        # held nowhere, so the worker stops its command now, even while no store can be opened,
        # rather than let it run unowned.
        try:
            return self._checked_heartbeat(worker_id, lease_seconds, None)._replace(held=False)
        except StoreError:
            if self._conn is not None:
                raise  # a new store there was just opened: the worker says so, then stops it
            return Heartbeat(held=False, stop_requested=False)

    @translate
    def _checked_heartbeat(
        self, worker_id: str, lease_seconds: float, claim: Claim | None
    ) -> Heartbeat:
        self._check_file()  # workers heartbeat often, whether busy or idle
        return super().heartbeat(worker_id, lease_seconds, claim)

    def _record_outcome(
        self, claim: Claim, params: dict, then_claim: ClaimRequest | None
    ) -> Finished:
        key = _claim_key(claim)
        if key in self._stale_claims:
            # Its store file is gone: the outcome has nowhere to go, and needs no store to say so.
            self._stale_claims.discard(key)
            return Finished(False, None)
        return self._finish(claim, params, then_claim)

    @translate
    def _finish(self, claim: Claim, params: dict, then_claim: ClaimRequest | None) -> Finished:
        from .chaining import settle_dependents  # not on enqueue's path

        with self._write() as conn:
            tx = _Transaction(conn, self.now())
            params = {**params, "now": tx.now}
            finished = conn.execute(sql.FINISH_JOB, params)
            conn.execute(sql.CLOSE_RUN, params)
            if finished.rowcount == 1:
                settle_dependents(tx, sql, claim.job.id, JobState(params["state"]))
                if conn.execute(sql.QUEUE_LIMITED, {"queue": claim.job.queue}).fetchone():
                    tx.wake("freed")  # a place in a limited queue: idle workers may take it
            next_claim = self._take(conn, then_claim) if then_claim is not None else None
            crash_point("finish-before-commit")
        if tx.woken:
            notify_all(self._wake_dir)
        self._open_claims.discard(_claim_key(claim))
        if next_claim is not None:
            self._open_claims.add(_claim_key(next_claim))
        return Finished(finished.rowcount == 1, next_claim)

    def _after_bulk_write(self) -> None:
        # Copy the WAL into the store file now, waiting for no one (PASSIVE): left there, the
        # pages of a prune's batches would make the next claim's commit pass the autocheckpoint
        # threshold and copy them itself, a claim held up by tens of milliseconds.
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # busy (another checkpoint): no matter
                conn.execute(sql.CHECKPOINT_PASSIVE)

    # -- waiting ---------------------------------------------------------------------------

    def _listen_for_work(self) -> None:
        # Done when a worker registers, before its first claim, so that nothing committed
        # after that claim can go unnoticed.
        if not self._wakeup_tried:
            self._wakeup_tried = True
            self._wakeup = FifoWakeup.create(self._wake_dir)

    def wait_for_work(self, timeout: float) -> None:
        self._listen_for_work()
        if self._wakeup is not None:
            self._wakeup.wait(timeout)
            return
        self._watch_data_version(timeout)

    @translate
    def _watch_data_version(self, timeout: float) -> None:
        """Fallback without named pipes: wake when another connection commits anything."""
        deadline = time.monotonic() + timeout
        seen = self._data_version()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(WAKE_CHECK_SECONDS, remaining))
            if self._data_version() != seen:
                return

    def _data_version(self) -> int:
        return self._conn.execute(sql.DATA_VERSION).fetchone()[0]


def _claim_key(claim: Claim) -> tuple:
    return (claim.job.id, claim.attempt, claim.run_id)
