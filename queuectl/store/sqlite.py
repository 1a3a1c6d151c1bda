"""The embedded SQLite backend: one file, WAL mode, explicit BEGIN IMMEDIATE for every write.

Why these choices: WAL lets readers (status, list) run while a worker writes; BEGIN IMMEDIATE
takes the write lock up front, so two writers queue on the busy timeout instead of failing
with "database is locked" halfway through a transaction; `UPDATE … RETURNING` claims a job in
one statement, so no two workers can ever take the same one.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..errors import DuplicateJob, InvalidTransition, JobNotFound, StoreBusy, StoreError
from ..faults import crash_point
from ..models import (
    FINISHED_STATES,
    STATES,
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
    finished_state,
)
from . import sqlite_sql as sql
from .sqlite_files import create_owner_only, file_identity, io_error_cause
from .wakeup import FifoWakeup, notify_all, wake_dir_for

# Without named pipes, how often an idle worker looks at PRAGMA data_version; a change means
# another connection committed, so there may be work. The check reads shared memory.
WAKE_CHECK_SECONDS = 0.005
# SQLite limits host parameters per statement; stay well under it when looking up ids.
ID_CHUNK = 500
MIN_SQLITE = (3, 35, 0)
# Waiting for a lock: SQLite's own busy handler sleeps at least a millisecond per try, while a
# claim holds the write lock for tens of microseconds; we retry ourselves, starting far shorter.
FIRST_BUSY_PAUSE = 20e-6
LAST_BUSY_PAUSE = 0.002


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _translate(method: Callable) -> Callable:
    """Retry while the store is locked (up to the busy timeout), then turn driver errors into
    StoreError with a message a user can act on.

    Retrying a whole method is safe: every method is one transaction, rolled back on error."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStore, *args, **kwargs):
        deadline = None
        pause = FIRST_BUSY_PAUSE
        while True:
            try:
                if self._conn is None:
                    self._reopen()  # the file was deleted or replaced under us (see heartbeat)
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise self._store_error(exc) from None
                now = time.monotonic()
                deadline = deadline or now + self._busy_timeout
                if now >= deadline:
                    raise self._store_error(exc) from None
            time.sleep(pause)
            pause = min(pause * 2, LAST_BUSY_PAUSE)

    return wrapper


class SQLiteStore:
    def __init__(
        self,
        path: str | os.PathLike,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
        create_parent: bool = False,
        synchronous: str = "NORMAL",
    ) -> None:
        # Plain strings, not pathlib: `enqueue` runs in shell loops and pathlib costs 2 ms to
        # import; log_dir (for workers, show and logs) is a Path, made when asked for.
        self.path = os.path.abspath(path)
        self.description = self.path
        self.target = self.path  # what a worker process passes to open_store
        self._busy_timeout = busy_timeout
        self._clock = clock or time.time
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._conn = self._connect(create_parent, synchronous)
        # Which file we have open, to notice when the path names another one (or none).
        self._identity = file_identity(self.path)
        # Claims made through the current connection; those made through a connection to a
        # file that was since deleted or replaced are stale: they no longer hold anything.
        self._open_claims: set[tuple] = set()
        self._stale_claims: set[tuple] = set()
        self._worker_identity: dict[str, tuple[str, int]] = {}
        self._wake_dir = wake_dir_for(self.path)
        self._wakeup: FifoWakeup | None = None
        self._wakeup_tried = False

    # -- opening ---------------------------------------------------------------------------

    def _connect(self, create_parent: bool, synchronous: str) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: queuectl needs 3.35 or newer "
                "(for UPDATE … RETURNING); use a Python built with a newer SQLite"
            )
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            if not create_parent:
                raise StoreError(f"cannot open store {self.path}: folder {parent} does not exist")
            try:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create folder {parent}: {exc.strerror}") from None
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open store {self.path}: it is a folder")
        self._create_owner_only()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=0,  # lock waits happen in _translate
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._store_error(exc) from None
        self._conn = conn
        self._set_synchronous(synchronous)
        self._migrate()
        return conn

    @_translate
    def _set_synchronous(self, synchronous: str) -> None:
        # This pragma reads the schema, so it can meet a lock (another process recovering the
        # WAL as it opens the store): wait for it like for any lock, do not fail at once.
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")

    def _create_owner_only(self) -> None:
        create_owner_only(self.path)

    @_translate
    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(sql.MIGRATIONS):
            return
        if version == 0:
            # Outside a transaction by necessity; persistent once set.
            self._conn.execute("PRAGMA journal_mode = WAL")
        with self._write() as conn:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, len(sql.MIGRATIONS)):
                for statement in sql.MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(sql.MIGRATIONS)}")

    def _store_error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        where = f"store {self.path}"
        if "locked" in text or "busy" in text:
            return StoreBusy(
                f"{where} is locked by another process; gave up after {self._busy_timeout:g}s"
            )
        if "readonly" in text or "read-only" in text:
            return StoreError(f"{where} is read-only: check the permissions of the file and folder")
        if "not a database" in text or "malformed" in text:
            return StoreError(f"{where} is corrupt or not a queuectl store ({text})")
        if "unable to open" in text:
            return StoreError(f"cannot open {where}: check that it exists and is readable")
        if "full" in text:
            return StoreError(f"{where}: the disk is full ({text}); nothing was written")
        if "disk I/O error" in text:
            # A failed read or write: say which, and what usually causes it.
            name = getattr(exc, "sqlite_errorname", "") or "SQLITE_IOERR"
            return StoreError(f"{where}: disk I/O error ({name}): {io_error_cause(self.path)}")
        return StoreError(f"{where}: {text}")

    @property
    def log_dir(self):  # -> pathlib.Path
        from pathlib import Path

        return Path(os.path.dirname(self.path), "logs")

    def close(self) -> None:
        if self._wakeup is not None:
            self._wakeup.close()
        if self._conn is not None:
            self._conn.close()

    def _check_file(self) -> None:
        """If the path no longer names the file we have open (the store was deleted or replaced
        while we ran), let go of the old file, whose jobs are no longer anyone's, and reopen."""
        if file_identity(self.path) == self._identity:
            return
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None
        self._wakeup_tried = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._stale_claims |= self._open_claims
        self._open_claims.clear()
        self._reopen()

    def _reopen(self) -> None:
        if not os.path.exists(self.path):
            raise StoreError(
                f"store {self.path} was deleted while in use; waiting for a store there again"
            )
        self._conn = self._connect(False, self._synchronous)
        self._identity = file_identity(self.path)
        raise StoreError(
            f"store {self.path} was deleted or replaced while in use: now using the file there"
        )

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def now(self) -> float:
        return self._clock()

    # -- jobs ------------------------------------------------------------------------------

    @_translate
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

    @_translate
    def get(self, job_id: str, with_runs: bool = False) -> Job:
        with self._read() as conn:
            row = conn.execute(sql.SELECT_JOB, (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            runs = self._runs(conn, row[0], job_id) if with_runs else ()
            job = Job.from_row(row[1:], runs)
        return job

    @_translate
    def runs(self, job_id: str) -> list[Run]:
        return list(self.get(job_id, with_runs=True).runs)

    def _runs(self, conn: sqlite3.Connection, seq: int, job_id: str) -> list[Run]:
        log_dir = self.log_dir
        return [
            Run(*row, log_path=str(log_dir / log_file_name(job_id, row[0])))
            for row in conn.execute(sql.SELECT_RUNS, (seq,))
        ]

    @_translate
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

    @_translate
    def counts(self) -> dict[str, int]:
        total, *counted = self._conn.execute(sql.COUNT_BY_STATE).fetchone()
        counts = dict(zip(sql.COUNTED_STATES, counted, strict=True))
        counts["completed"] = total - sum(counted)
        return {state: counts[state] for state in STATES}

    # -- running ---------------------------------------------------------------------------

    @_translate
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

    @_translate
    def set_run_pid(self, claim: Claim, pid: int) -> None:
        if _claim_key(claim) in self._stale_claims:
            return
        with self._write() as conn:
            conn.execute(sql.SET_RUN_PID, (pid, claim.run_id))

    @_translate
    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        self._check_file()  # workers heartbeat often, whether busy or idle
        if claim is not None and _claim_key(claim) in self._stale_claims:
            claim = None  # made in a store file that is gone: not held, nothing to extend
            held = False
        else:
            held = True
        with self._write() as conn:
            now = self.now()
            row = conn.execute(sql.WORKER_HEARTBEAT, (now, worker_id)).fetchone()
            if row is None and worker_id in self._worker_identity:
                # Pruned while we were silent (a long stall); come back rather than vanish.
                host, pid = self._worker_identity[worker_id]
                conn.execute(sql.REGISTER_WORKER, (worker_id, host, pid, now, now))
            if claim is not None:
                held = (
                    conn.execute(
                        sql.EXTEND_LEASE, claim_fence(claim, now=now, lease=lease_seconds)
                    ).rowcount
                    == 1
                )
        return Heartbeat(held=held, stop_requested=bool(row and row[0]))

    @_translate
    def finish(
        self,
        claim: Claim,
        result: RunResult,
        retry_delay: float | None,
        then_claim: ClaimRequest | None = None,
    ) -> Finished:
        state, delay = finished_state(result, retry_delay)
        key = _claim_key(claim)
        if key in self._stale_claims:
            self._stale_claims.discard(key)
            return Finished(False, None)  # its store file is gone: the outcome has nowhere to go
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
                    "run_id": claim.run_id,
                },
            )
            next_claim = self._take(conn, then_claim) if then_claim is not None else None
            crash_point("finish-before-commit")
        self._open_claims.discard(key)
        if next_claim is not None:
            self._open_claims.add(_claim_key(next_claim))
        return Finished(finished.rowcount == 1, next_claim)

    @_translate
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
            conn.execute(sql.PRUNE_WORKERS, (now - lease_seconds,))
        return rescued

    # -- user operations -------------------------------------------------------------------

    @_translate
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

    @_translate
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

    @_translate
    def config_items(self) -> dict[str, str]:
        return dict(self._conn.execute(sql.SELECT_CONFIG).fetchall())

    @_translate
    def config_set(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(sql.UPSERT_CONFIG, (key, value))

    @_translate
    def config_unset(self, key: str) -> bool:
        with self._write() as conn:
            return conn.execute(sql.DELETE_CONFIG, (key,)).rowcount == 1

    # -- workers ---------------------------------------------------------------------------

    @_translate
    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        self._worker_identity[worker_id] = (host, pid)
        self._listen()
        with self._write() as conn:
            now = self.now()
            conn.execute(sql.REGISTER_WORKER, (worker_id, host, pid, now, now))

    @_translate
    def unregister_worker(self, worker_id: str) -> None:
        self._worker_identity.pop(worker_id, None)
        with self._write() as conn:
            conn.execute(sql.UNREGISTER_WORKER, (worker_id,))

    @_translate
    def live_workers(self, lease_seconds: float) -> list[WorkerInfo]:
        rows = self._conn.execute(sql.LIVE_WORKERS, (self.now() - lease_seconds,))
        return [WorkerInfo(*row) for row in rows]

    @_translate
    def request_stop(self, lease_seconds: float) -> list[str]:
        with self._write() as conn:
            rows = conn.execute(sql.REQUEST_STOP, (self.now() - lease_seconds,)).fetchall()
        notify_all(self._wake_dir)
        return [row[0] for row in rows]

    # -- waiting ---------------------------------------------------------------------------

    @_translate
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

    @_translate
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
