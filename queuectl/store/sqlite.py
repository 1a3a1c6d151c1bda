"""The embedded SQLite backend: one file, WAL mode, explicit BEGIN IMMEDIATE for every write.

Why these choices: WAL lets readers (status, list) run while a worker writes; BEGIN IMMEDIATE
takes the write lock up front, so two writers queue on the busy timeout instead of failing
with "database is locked" halfway through a transaction; `UPDATE … RETURNING` claims a job in
one statement, so no two workers can ever take the same one.

This module holds the queue's operations, each one transaction of named statements
(sqlite_sql.py); the connection they run on is SQLiteStoreBase, in sqlite_conn.py.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence

from ..errors import DuplicateJob, InvalidTransition, JobNotFound, StoreError
from ..faults import crash_point
from ..models import (
    FINISHED_STATES,
    Claim,
    Job,
    JobSpec,
    JobState,
    Run,
    RunResult,
    log_file_name,
)
from . import (
    ClaimRequest,
    Finished,
    Heartbeat,
    RetryPolicy,
    WorkerInfo,
    claim_fence,
    counts_by_state,
    finished_state,
    worker_row_kept,
)
from . import sqlite_sql as sql
from .sqlite_conn import SQLiteStoreBase, translate
from .wakeup import FifoWakeup, notify_all

# Without named pipes, how often an idle worker looks at PRAGMA data_version; a change means
# another connection committed, so there may be work. The check reads shared memory.
WAKE_CHECK_SECONDS = 0.005
# SQLite limits host parameters per statement; stay well under it when looking up ids.
ID_CHUNK = 500


class SQLiteStore(SQLiteStoreBase):
    # -- jobs ------------------------------------------------------------------------------

    @translate
    def add(self, specs: Sequence[JobSpec]) -> list[str]:
        now = self.now()
        rows = [
            (
                spec.id,
                spec.command,
                spec.max_retries,
                spec.priority,
                spec.queue,
                spec.run_at if spec.run_at is not None else now + spec.delay,
                spec.timeout,
                now,
                now,
            )
            for spec in specs
        ]
        seen: set[str] = set()
        for spec in specs:
            if spec.id in seen:
                raise DuplicateJob(spec.id)
            seen.add(spec.id)
        try:
            with self._write() as conn:
                conn.executemany(sql.INSERT_JOB, rows)
        except sqlite3.IntegrityError:
            raise DuplicateJob(self._first_existing([spec.id for spec in specs])) from None
        notify_all(self._wake_dir)
        return [spec.id for spec in specs]

    def _first_existing(self, ids: list[str]) -> str:
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            found = self._conn.execute(f"SELECT id FROM jobs WHERE id IN ({marks})", chunk)
            existing = {row[0] for row in found}
            for job_id in chunk:
                if job_id in existing:
                    return job_id
        return ids[0]

    @translate
    def get(self, job_id: str, with_runs: bool = False) -> Job:
        with self._read() as conn:
            row = conn.execute(sql.SELECT_JOB, (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            runs = self._runs(conn, row[0], job_id) if with_runs else ()
            job = Job.from_row(row[1:], runs)
        return job

    @translate
    def runs(self, job_id: str) -> list[Run]:
        return list(self.get(job_id, with_runs=True).runs)

    def _runs(self, conn: sqlite3.Connection, seq: int, job_id: str) -> list[Run]:
        log_dir = str(self.log_dir)
        return [
            Run(*row, log_path=os.path.join(log_dir, log_file_name(job_id, row[0], row[2])))
            for row in conn.execute(sql.SELECT_RUNS, (seq,))
        ]

    @translate
    def list_jobs(
        self, state: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Job]:
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {sql.JOB_COLUMNS} FROM jobs {where} ORDER BY seq"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return [Job.from_row(row) for row in self._conn.execute(query, params)]

    @translate
    def counts(self) -> dict[str, int]:
        total, *counted = self._conn.execute(sql.COUNT_BY_STATE).fetchone()
        return counts_by_state(total, counted)

    # -- running ---------------------------------------------------------------------------

    @translate
    def claim(
        self, worker_id: str, host: str, queues: Sequence[str] | None, lease_seconds: float
    ) -> Claim | None:
        with self._write() as conn:
            claim = self._take(conn, ClaimRequest(worker_id, host, queues, lease_seconds))
            crash_point("claim-before-commit")
        if claim is not None:
            self._open_claims.add(_claim_key(claim))
        return claim

    def _take(self, conn: sqlite3.Connection, request: ClaimRequest) -> Claim | None:
        """Claim the best ready job inside the caller's write transaction."""
        queue_filter, params = _queue_filter(request.queues)
        statement = sql.CLAIM_JOB.format(queue_filter=queue_filter, columns=sql.JOB_COLUMNS)
        now = self.now()
        params.update(worker=request.worker_id, now=now, lease=request.lease_seconds)
        row = conn.execute(statement, params).fetchone()
        if row is None:
            return None
        job = Job.from_row(row[1:])
        cursor = conn.execute(
            sql.INSERT_RUN, (row[0], job.attempts, request.worker_id, request.host, now)
        )
        return Claim(job, request.worker_id, job.attempts, cursor.lastrowid)

    @translate
    def set_run_pid(self, claim: Claim, pid: int) -> None:
        if _claim_key(claim) in self._stale_claims:
            return
        with self._write() as conn:
            conn.execute(sql.SET_RUN_PID, (pid, claim.run_id))

    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        if claim is None or _claim_key(claim) not in self._stale_claims:
            return self._heartbeat(worker_id, lease_seconds, claim)
        # Made in a store file that is gone (the heartbeat that found out raised, saying so):
        # held nowhere, so the worker stops its command now, even while no store can be opened,
        # rather than let it run unowned.
        try:
            return self._heartbeat(worker_id, lease_seconds, None)._replace(held=False)
        except StoreError:
            if self._conn is not None:
                raise  # a new store there was just opened: the worker says so, then stops it
            return Heartbeat(held=False, stop_requested=False)

    @translate
    def _heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        self._check_file()  # workers heartbeat often, whether busy or idle
        held = True
        with self._write() as conn:
            now = self.now()
            row = conn.execute(sql.WORKER_HEARTBEAT, (now, worker_id)).fetchone()
            if row is None and worker_id in self._worker_identity:
                # Pruned while we were silent (a long stall); come back rather than vanish.
                # Its original start time stays: `status` shows when it started, and a stop
                # asked for since then applies to it.
                host, pid, started = self._worker_identity[worker_id]
                conn.execute(sql.REGISTER_WORKER, (worker_id, host, pid, started, now))
                row = conn.execute(sql.STOP_REQUESTED_SINCE, (started,)).fetchone()
            if claim is not None:
                held = (
                    conn.execute(
                        sql.EXTEND_LEASE, claim_fence(claim, now=now, lease=lease_seconds)
                    ).rowcount
                    == 1
                )
        return Heartbeat(held=held, stop_requested=bool(row and row[0]))

    def finish(
        self,
        claim: Claim,
        result: RunResult,
        retry_delay: float | None,
        then_claim: ClaimRequest | None = None,
    ) -> Finished:
        key = _claim_key(claim)
        if key in self._stale_claims:
            # Its store file is gone: the outcome has nowhere to go, and needs no store to say so.
            self._stale_claims.discard(key)
            return Finished(False, None)
        return self._finish(claim, result, retry_delay, then_claim)

    @translate
    def _finish(
        self,
        claim: Claim,
        result: RunResult,
        retry_delay: float | None,
        then_claim: ClaimRequest | None,
    ) -> Finished:
        state, delay = finished_state(result, retry_delay)
        key = _claim_key(claim)
        with self._write() as conn:
            now = self.now()
            finished = conn.execute(
                sql.FINISH_JOB,
                claim_fence(
                    claim,
                    state=state.value,
                    run_at=now + delay if state is JobState.FAILED else claim.job.run_at,
                    exit_code=result.exit_code,
                    error=result.error,
                    now=now,
                ),
            )
            conn.execute(
                sql.CLOSE_RUN,
                {
                    "now": now,
                    "outcome": result.outcome.value,
                    "exit_code": result.exit_code,
                    "error": result.error,
                    "tail": result.output_tail,
                    "seconds": result.seconds,
                    "run_id": claim.run_id,
                },
            )
            next_claim = self._take(conn, then_claim) if then_claim is not None else None
            crash_point("finish-before-commit")
        self._open_claims.discard(key)
        if next_claim is not None:
            self._open_claims.add(_claim_key(next_claim))
        return Finished(finished.rowcount == 1, next_claim)

    @translate
    def rescue_expired(self, policy: RetryPolicy, lease_seconds: float) -> list[str]:
        rescued = []
        with self._write() as conn:
            now = self.now()
            for seq, job_id, attempts, max_retries, worker_id in conn.execute(
                sql.SELECT_EXPIRED, (now,)
            ).fetchall():
                delay = policy(attempts, max_retries)
                error = f"lost: worker {worker_id} stopped heartbeating and its lease expired"
                conn.execute(
                    sql.RESCUE_JOB,
                    {
                        "state": JobState.DEAD.value if delay is None else JobState.FAILED.value,
                        "run_at": now + (delay or 0.0),
                        "error": error,
                        "now": now,
                        "seq": seq,
                        "attempt": attempts,
                    },
                )
                conn.execute(
                    sql.CLOSE_LOST_RUN,
                    {"now": now, "error": error, "seq": seq, "attempt": attempts},
                )
                rescued.append(job_id)
            conn.execute(sql.PRUNE_WORKERS, (now - worker_row_kept(lease_seconds),))
        return rescued

    # -- user operations -------------------------------------------------------------------

    @translate
    def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        with self._write() as conn:
            now = self.now()
            if job_ids is None:
                job_ids = [row[0] for row in conn.execute(sql.SELECT_DEAD_IDS)]
            job_ids = list(dict.fromkeys(job_ids))  # the same id twice is one retry
            for job_id in job_ids:
                if conn.execute(sql.RETRY_DEAD, {"now": now, "job": job_id}).rowcount == 1:
                    continue
                row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(f"job {job_id!r} is {row[0]}, not dead")
        notify_all(self._wake_dir)
        return list(job_ids)

    @translate
    def cancel(self, job_id: str) -> JobState:
        with self._write() as conn:
            row = conn.execute(
                "SELECT seq, state, attempts FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            seq, state, attempts = row[0], JobState(row[1]), row[2]
            if state in FINISHED_STATES:
                raise InvalidTransition(
                    f"job {job_id!r} is already {state}; only pending, failed or processing "
                    "jobs can be canceled"
                )
            now = self.now()
            conn.execute(sql.CANCEL_JOB, {"now": now, "job": job_id})
            if state is JobState.PROCESSING:
                conn.execute(sql.CLOSE_CANCELED_RUN, {"now": now, "seq": seq, "attempt": attempts})
        return state

    # -- config ----------------------------------------------------------------------------

    @translate
    def config_items(self) -> dict[str, str]:
        return dict(self._conn.execute(sql.SELECT_CONFIG).fetchall())

    @translate
    def config_set(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(sql.UPSERT_CONFIG, (key, value))

    @translate
    def config_unset(self, key: str) -> bool:
        with self._write() as conn:
            return conn.execute(sql.DELETE_CONFIG, (key,)).rowcount == 1

    # -- workers ---------------------------------------------------------------------------

    @translate
    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        self._listen()
        with self._write() as conn:
            now = self.now()
            # Registering again (after a prune) keeps the first start time, as heartbeat does.
            started = self._worker_identity.get(worker_id, (host, pid, now))[2]
            conn.execute(sql.REGISTER_WORKER, (worker_id, host, pid, started, now))
            self._worker_identity[worker_id] = (host, pid, started)

    @translate
    def unregister_worker(self, worker_id: str) -> None:
        self._worker_identity.pop(worker_id, None)
        with self._write() as conn:
            conn.execute(sql.UNREGISTER_WORKER, (worker_id,))

    @translate
    def live_workers(self, lease_seconds: float) -> list[WorkerInfo]:
        rows = self._conn.execute(sql.LIVE_WORKERS, (self.now() - lease_seconds,))
        return [WorkerInfo(*row) for row in rows]

    @translate
    def request_stop(self, lease_seconds: float) -> list[str]:
        with self._write() as conn:
            now = self.now()
            conn.execute(sql.NOTE_STOP_REQUEST, (now,))
            rows = conn.execute(sql.REQUEST_STOP, (now - lease_seconds,)).fetchall()
        notify_all(self._wake_dir)
        return [row[0] for row in rows]

    # -- waiting ---------------------------------------------------------------------------

    @translate
    def next_run_at(self, queues: Sequence[str] | None) -> float | None:
        queue_filter, params = _queue_filter(queues)
        row = self._conn.execute(sql.NEXT_RUN_AT.format(queue_filter=queue_filter), params)
        return row.fetchone()[0]

    def _listen(self) -> None:
        # Done when a worker registers, before its first claim, so that nothing committed
        # after that claim can go unnoticed.
        if not self._wakeup_tried:
            self._wakeup_tried = True
            self._wakeup = FifoWakeup.create(self._wake_dir)

    def wait_for_work(self, timeout: float) -> None:
        self._listen()
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
        return self._conn.execute("PRAGMA data_version").fetchone()[0]


def _claim_key(claim: Claim) -> tuple:
    return (claim.job.id, claim.attempt, claim.run_id)


def _queue_filter(queues: Sequence[str] | None) -> tuple[str, dict]:
    if not queues:
        return "", {}
    names = {f"q{index}": name for index, name in enumerate(queues)}
    marks = ", ".join(f":{key}" for key in names)
    return f"AND queue IN ({marks})", names
