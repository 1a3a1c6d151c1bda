"""The PostgreSQL backend: one database shared by workers on many hosts (psycopg 3).

- Time is the server's (`now()` inside every statement), so hosts with skewed clocks neither
  steal live jobs nor start scheduled ones early. Times are epoch seconds, as on SQLite.
- A claim is one statement: `FOR UPDATE SKIP LOCKED` takes the best ready job without waiting
  on other claimers, and the same round trip counts the attempt and opens the run.
- Idle workers LISTEN on a channel that add, retry_dead, scheduled retries, rescues, cancel and
  `worker stop` NOTIFY in their own transaction; the wait's timeout is the polling fallback.
- Migrations run under a transaction-scoped advisory lock, so they apply exactly once.

Connection loss (server restart, network drop) can hit at three points. While connecting, or
before the COMMIT went out, the server rolled everything back: the operation simply runs again
on a new connection. After the COMMIT (or a lone autocommit statement) went out and before its
answer came back, it may or may not have landed. Idempotent operations (heartbeat, set_run_pid,
rescue, config_set, register/unregister, request_stop, reads) just run again; the others first
ask the store whether it landed, so no effect is ever applied twice:
- claim: each claim carries a random token, kept in its run row. A run with our token means the
  claim landed and is returned as if the answer had arrived; else nothing was taken and the
  claim runs again. (Without this the job would sit `processing` until its lease expired and be
  rescued as a `lost` run: never run twice, but an attempt wasted.)
- add: ids are chosen before the call; if every id now exists with our command, the insert
  landed; otherwise it runs again (DuplicateJob if someone else took an id meanwhile).
- finish: if the run already carries our outcome, it landed (True); otherwise the
  fenced statement runs again, and it can only land once. With the next claim in the same
  statement, a run row with the claim's token also means it landed (both did: one statement).
- cancel / retry_dead / config_unset: if the change is visible it landed; else it runs again.
Retries back off and give up after about `busy_timeout` (a heartbeat sooner, so the worker's
monitor keeps enforcing timeouts) with StoreError, which workers retry in their own loop and
the CLI reports in one line. Opening the store does not retry: a server that is down or a bad
URL is reported at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # the `postgres` extra is not installed
    psycopg = None

from ..errors import DuplicateJob, InvalidTransition, JobNotFound, StoreBusy, StoreError
from ..models import FINISHED_STATES, STATES, Claim, Job, JobSpec, JobState, RunResult
from . import (
    ClaimRequest,
    Finished,
    Heartbeat,
    RetryPolicy,
    WorkerInfo,
    claim_fence,
    finished_state,
)
from . import postgres_sql as sql

INSTALL_HINT = (
    "PostgreSQL support needs psycopg 3: from the queuectl checkout run pip install '.[postgres]'"
)
# Rows per INSERT statement in a bulk add (all in one transaction).
# A bulk add at least this big refreshes the planner's statistics at once: without them, right
# after a big load, PostgreSQL sorts every waiting job per claim instead of walking the index.
ANALYZE_AFTER = 1000
# Connection settings we add unless the URL sets them: dead peers are noticed in ~30 s.
CONNECTION_DEFAULTS = (
    "application_name=queuectl keepalives=1 keepalives_idle=10 keepalives_interval=5 "
    "keepalives_count=3"
)
_RETRY = object()  # a probe's answer: the lost transaction did not land; run it again


def mask_password(url: str) -> str:
    """The URL with any password replaced by ***, for messages and `status`."""
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"^([^:/]+://[^:@/]*):[^@/]*@", r"\1:***@", url)
    user, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:***@{hosts}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _message(exc: BaseException) -> str:
    """The driver's message on one line (they often span several)."""
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(exc) or type(exc).__name__
    return " ".join(text.split())


class PostgresStore:
    def __init__(self, url: str, busy_timeout: float = 30.0) -> None:
        if psycopg is None:
            raise StoreError(INSTALL_HINT)
        self.target = url  # what a worker process passes to open_store
        self.description = mask_password(url)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._listener: psycopg.Connection | None = None
        self._worker_identity: dict[str, tuple[str, int]] = {}
        self._log_dir = None
        self._conninfo = self._build_conninfo(url)
        try:
            self._conn = self._connect()
            self._store_id = self._migrate(self._conn)
        except psycopg.Error as exc:
            if self._conn is None and isinstance(exc, psycopg.OperationalError):
                error = StoreError(
                    f"cannot connect to PostgreSQL at {self.description}: {_message(exc)}"
                )
            else:
                error = self._error(exc)
            self.close()
            raise error from None

    # -- opening ---------------------------------------------------------------------------

    def _build_conninfo(self, url: str) -> str:
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(f"bad PostgreSQL URL {self.description}: {_message(exc)}") from None
        extra = {k: v for k, v in conninfo_to_dict(CONNECTION_DEFAULTS).items() if k not in given}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = str(max(2, int(min(self._busy_timeout, 10))))
        return make_conninfo(url, **extra)

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        # A row lock held too long becomes StoreBusy instead of a hang (SPEC §5).
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)",
            (f"{max(1, int(self._busy_timeout * 1000))}ms",),
        )
        return conn

    def _migrate(self, conn: psycopg.Connection) -> str:
        """Apply pending migrations (once, whoever comes first); returns the store's id."""
        if conn.execute(sql.SCHEMA_TABLE_EXISTS).fetchone()[0]:
            row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            if row is not None and row[0] >= len(sql.MIGRATIONS):
                return row[1]
        with conn.transaction():
            conn.execute(sql.LOCK_MIGRATIONS)
            conn.execute(sql.CREATE_SCHEMA_TABLE)
            row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            if row is None:
                conn.execute(sql.INSERT_SCHEMA, (os.urandom(8).hex(),))
                row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            version, store_id = row
            for number in range(version, len(sql.MIGRATIONS)):
                conn.execute(sql.MIGRATIONS[number])
            if version < len(sql.MIGRATIONS):
                conn.execute(sql.SET_SCHEMA_VERSION, (len(sql.MIGRATIONS),))
        return store_id

    @property
    def log_dir(self):  # -> pathlib.Path
        """Run logs stay on the worker's host, one folder per store (run ids are per store)."""
        if self._log_dir is None:
            # Imported only when asked for: `enqueue` needs neither (start-up time).
            from pathlib import Path

            import click

            self._log_dir = Path(click.get_app_dir("queuectl"), "logs", f"pg-{self._store_id}")
        return self._log_dir

    def close(self) -> None:
        _close_quietly(self._conn)
        _close_quietly(self._listener)
        self._conn = self._listener = None

    # -- transactions and errors -----------------------------------------------------------

    def _run(self, body: Callable, probe=None, single: bool = False, budget=None):
        """Run body(cursor) as one transaction (`single`: one autocommit statement), reconnecting
        after a lost connection; see the module docstring for when `probe` is asked first."""
        deadline = time.monotonic() + (self._busy_timeout if budget is None else budget)
        delay = 0.05
        unsure = False  # a COMMIT went out and its answer never came back
        while True:
            sent = False
            try:
                with self._lock:
                    conn = self._connection()
                    with conn.cursor() as cur:
                        if unsure and probe is not None:
                            with conn.transaction():
                                answer = probe(cur)
                            if answer is not _RETRY:
                                return answer
                        unsure = False
                        if single:
                            sent = True
                            return body(cur)
                        with conn.transaction():
                            result = body(cur)
                            sent = True
                        return result
            except UnicodeEncodeError as exc:
                raise StoreError(f"text that cannot be stored (not valid Unicode): {exc}") from None
            except psycopg.Error as exc:
                if not self._lost(exc):
                    raise self._error(exc) from None
                self._drop_connection()
                unsure = unsure or sent
                if time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"lost the connection to PostgreSQL at {self.description} and could "
                        f"not get it back: {_message(exc)}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _lost(self, exc: psycopg.Error) -> bool:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return True
        return isinstance(exc, (pg_errors.AdminShutdown, pg_errors.CannotConnectNow))

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def _rows(self, statement: str, params: Sequence | dict = ()) -> list[tuple]:
        """One autocommit statement's rows."""
        return self._run(lambda cur: cur.execute(statement, params).fetchall(), single=True)

    def _value(self, statement: str, params: Sequence | dict = ()):
        """The first column of one autocommit statement's only row."""
        return self._run(lambda cur: cur.execute(statement, params).fetchone()[0], single=True)

    def _write(self, statement: str, params: Sequence | dict = ()) -> int:
        """One autocommit (idempotent) statement; the number of rows it changed."""
        return self._run(lambda cur: cur.execute(statement, params).rowcount, single=True)

    def _error(self, exc: BaseException) -> StoreError:
        where = f"PostgreSQL store {self.description}"
        text = _message(exc)
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreBusy(
                f"{where} is locked by another session; gave up after {self._busy_timeout:g}s"
            )
        if isinstance(exc, pg_errors.QueryCanceled):  # the server's statement_timeout, or admin
            return StoreBusy(f"{where}: a statement was canceled ({text}); is the server busy?")
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreError(f"{where} is read-only (a standby server?): {text}")
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreError(f"{where}: permission denied: {text}")
        if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.UndefinedColumn)):
            return StoreError(f"{where} is not a queuectl store or its tables were changed: {text}")
        if isinstance(exc, pg_errors.DiskFull):
            return StoreError(f"{where}: the server's disk is full; nothing was written")
        return StoreError(f"{where}: {text}")

    def now(self) -> float:
        return self._value(sql.SERVER_TIME)

    # -- jobs ------------------------------------------------------------------------------

    def add(self, specs: Sequence[JobSpec]) -> list[str]:
        ids = [spec.id for spec in specs]
        seen: set[str] = set()
        for job_id in ids:
            if job_id in seen:
                raise DuplicateJob(job_id)
            seen.add(job_id)
        if not specs:
            return []

        def insert(cur) -> list[str]:
            now = cur.execute(sql.TRANSACTION_TIME).fetchone()[0]
            try:
                # A savepoint: after a unique violation the transaction can still look up
                # which id was taken (and is then rolled back as a whole).
                with cur.connection.transaction(), cur.copy(sql.COPY_JOBS) as copy:
                    for spec in specs:
                        copy.write_row(sql.job_row(spec, now))
            except pg_errors.UniqueViolation:
                taken = {row[0] for row in cur.execute(sql.SELECT_IDS_COMMANDS, (ids,))}
                raise DuplicateJob(next((i for i in ids if i in taken), ids[0])) from None
            cur.execute(sql.NOTIFY, ("add",))
            return ids

        def landed(cur):
            cur.execute(sql.SELECT_IDS_COMMANDS, (ids,))
            found = dict(cur.fetchall())
            ours = all(found.get(spec.id) == spec.command for spec in specs)
            return ids if ours else _RETRY

        added = self._run(insert, probe=landed)
        if len(specs) >= ANALYZE_AFTER:
            with contextlib.suppress(StoreError):  # only an optimization (and needs ownership)
                self._write(sql.ANALYZE_JOBS)
        return added

    def get(self, job_id: str, with_runs: bool = False) -> Job:
        def read(cur) -> Job:
            row = cur.execute(sql.SELECT_JOB, (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            runs = cur.execute(sql.SELECT_RUNS, (row[0],)).fetchall() if with_runs else ()
            return Job.from_row(row[1:], [sql.to_run(run, job_id, self.log_dir) for run in runs])

        return self._run(read)

    def runs(self, job_id: str) -> list:
        return list(self.get(job_id, with_runs=True).runs)

    def list_jobs(
        self, state: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Job]:
        clauses, params = [], []
        if state is not None:
            clauses.append("state = %s")
            params.append(state)
        if queue is not None:
            clauses.append("queue = %s")
            params.append(queue)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {sql.JOB_COLUMNS} FROM queuectl_jobs {where} ORDER BY seq"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        return [Job.from_row(row) for row in self._rows(query, params)]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._rows(sql.COUNT_BY_STATE))
        return counts

    # -- running ---------------------------------------------------------------------------

    def claim(
        self, worker_id: str, host: str, queues: Sequence[str] | None, lease_seconds: float
    ) -> Claim | None:
        request = ClaimRequest(worker_id, host, queues, lease_seconds)
        statement, params = _claim_statement(sql.CLAIM_JOB, request)

        def take(cur) -> Claim | None:
            return sql.to_claim(cur.execute(statement, params).fetchone(), worker_id)

        def landed(cur):
            claim = _find_claim(cur, request, params["token"])
            return _RETRY if claim is None else claim

        return self._run(take, probe=landed, single=True)

    def set_run_pid(self, claim: Claim, pid: int) -> None:
        self._write(sql.SET_RUN_PID, (pid, claim.run_id))

    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        def beat(cur) -> Heartbeat:
            row = cur.execute(sql.WORKER_HEARTBEAT, (worker_id,)).fetchone()
            if row is None and worker_id in self._worker_identity:
                # Pruned while we were silent (a long stall); come back rather than vanish.
                host, pid = self._worker_identity[worker_id]
                cur.execute(sql.REGISTER_WORKER, (worker_id, host, pid))
            held = True
            if claim is not None:
                cur.execute(sql.EXTEND_LEASE, claim_fence(claim, lease=lease_seconds))
                held = cur.rowcount == 1
            return Heartbeat(held=held, stop_requested=bool(row and row[0]))

        # Give up well inside the lease: the caller's monitor also enforces the job's timeout.
        return self._run(beat, budget=min(self._busy_timeout, max(1.0, lease_seconds / 3)))

    def finish(
        self,
        claim: Claim,
        result: RunResult,
        retry_delay: float | None,
        then_claim: ClaimRequest | None = None,
    ) -> Finished:
        state, delay = finished_state(result, retry_delay)
        outcome = result.outcome.value
        params = claim_fence(
            claim,
            state=state.value,
            delay=delay if state is JobState.FAILED else None,
            exit_code=result.exit_code,
            error=sql.clean(result.error),
            outcome=outcome,
            tail=sql.clean(result.output_tail),
        )

        def ours(cur) -> bool:
            row = cur.execute(sql.SELECT_RUN_OUTCOME, (claim.run_id,)).fetchone()
            return row is not None and row[0] == outcome

        if then_claim is not None and state is JobState.FAILED and delay <= 0:
            # A retry due at once may be the best job to claim next, and one statement's
            # snapshot would not show it as ready yet: record the outcome, then claim.
            return Finished(self.finish(claim, result, retry_delay).held, self.claim(*then_claim))
        if then_claim is None:
            held = self._run(
                lambda cur: cur.execute(sql.FINISH_JOB, params).fetchone()[0] == 1,
                probe=lambda cur: True if ours(cur) else _RETRY,
                single=True,
            )
            return Finished(held, None)
        statement, claim_params = _claim_statement(sql.FINISH_AND_CLAIM, then_claim)
        params.update(claim_params)

        def both(cur) -> Finished:
            row = cur.execute(statement, params).fetchone()
            next_claim = None if row[2] is None else sql.to_claim(row[2:], then_claim.worker_id)
            return Finished(row[0] == 1, next_claim)

        def landed(cur):
            # One statement: its claim and its outcome landed together or not at all.
            next_claim = _find_claim(cur, then_claim, params["token"])
            if next_claim is not None:
                return Finished(ours(cur), next_claim)
            return Finished(True, None) if ours(cur) else _RETRY

        return self._run(both, probe=landed, single=True)

    def rescue_expired(self, policy: RetryPolicy, lease_seconds: float) -> list[str]:
        def rescue(cur) -> list[str]:
            rescued = []
            for seq, job_id, attempts, max_retries, worker_id in cur.execute(
                sql.SELECT_EXPIRED
            ).fetchall():
                delay = policy(attempts, max_retries)
                error = f"lost: worker {worker_id} stopped heartbeating and its lease expired"
                state = JobState.DEAD if delay is None else JobState.FAILED
                values = {"seq": seq, "attempt": attempts, "error": error}
                cur.execute(sql.RESCUE_JOB, {**values, "state": state.value, "delay": delay or 0.0})
                cur.execute(sql.CLOSE_LOST_RUN, values)
                rescued.append(job_id)
            cur.execute(sql.PRUNE_WORKERS, (lease_seconds,))
            if rescued:
                cur.execute(sql.NOTIFY, ("rescue",))
            return rescued

        return self._run(rescue)

    # -- user operations -------------------------------------------------------------------

    def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        chosen: list[str] = []

        def retry(cur) -> list[str]:
            ids = job_ids
            if ids is None:
                ids = [row[0] for row in cur.execute(sql.SELECT_DEAD_IDS).fetchall()]
            ids = list(dict.fromkeys(ids))  # the same id twice is one retry
            chosen[:] = ids
            for job_id in ids:
                if cur.execute(sql.RETRY_DEAD, (job_id,)).rowcount == 1:
                    continue
                row = cur.execute(sql.SELECT_STATE, (job_id,)).fetchone()
                if row is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(f"job {job_id!r} is {row[0]}, not dead")
            if ids:
                cur.execute(sql.NOTIFY, ("retry",))
            return list(ids)

        def landed(cur):
            still_dead = cur.execute(sql.COUNT_DEAD, (chosen,)).fetchone()[0]
            return list(chosen) if still_dead == 0 else _RETRY

        return self._run(retry, probe=landed)

    def cancel(self, job_id: str) -> JobState:
        previous: list[JobState] = []

        def cancel(cur) -> JobState:
            row = cur.execute(sql.SELECT_FOR_CANCEL, (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            seq, state, attempts = row[0], JobState(row[1]), row[2]
            if state in FINISHED_STATES:
                raise InvalidTransition(
                    f"job {job_id!r} is already {state}; only pending, failed or processing "
                    "jobs can be canceled"
                )
            previous[:] = [state]
            cur.execute(sql.CANCEL_JOB, {"job": job_id})
            if state is JobState.PROCESSING:
                cur.execute(sql.CLOSE_CANCELED_RUN, {"seq": seq, "attempt": attempts})
            cur.execute(sql.NOTIFY, ("cancel",))
            return state

        def landed(cur):
            row = cur.execute(sql.SELECT_STATE, (job_id,)).fetchone()
            return previous[0] if row is not None and row[0] == "canceled" else _RETRY

        return self._run(cancel, probe=landed)

    # -- config ----------------------------------------------------------------------------

    def config_items(self) -> dict[str, str]:
        return dict(self._rows(sql.SELECT_CONFIG))

    def config_set(self, key: str, value: str) -> None:
        self._write(sql.UPSERT_CONFIG, (key, value))

    def config_unset(self, key: str) -> bool:
        def landed(cur):
            return _RETRY if cur.execute(sql.SELECT_CONFIG_KEY, (key,)).fetchone() else True

        return self._run(
            lambda cur: cur.execute(sql.DELETE_CONFIG, (key,)).rowcount == 1,
            probe=landed,
            single=True,
        )

    # -- workers ---------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        self._worker_identity[worker_id] = (host, pid)
        # LISTEN before the first claim, so that nothing committed after it goes unheard.
        self._listen(check_missed=False)
        self._write(sql.REGISTER_WORKER, (worker_id, host, pid))

    def unregister_worker(self, worker_id: str) -> None:
        self._worker_identity.pop(worker_id, None)
        self._write(sql.UNREGISTER_WORKER, (worker_id,))

    def live_workers(self, lease_seconds: float) -> list[WorkerInfo]:
        return [WorkerInfo(*row) for row in self._rows(sql.LIVE_WORKERS, (lease_seconds,))]

    def request_stop(self, lease_seconds: float) -> list[str]:
        return [row[0] for row in self._rows(sql.REQUEST_STOP, (lease_seconds,))]

    # -- waiting ---------------------------------------------------------------------------

    def next_run_at(self, queues: Sequence[str] | None) -> float | None:
        queue_filter, params = sql.queue_filter(queues)
        return self._value(sql.NEXT_RUN_AT.format(queue_filter=queue_filter), params)

    def _listen(self, check_missed: bool) -> bool:
        """Open the LISTEN connection if it is not open; True if work may have been missed
        meanwhile (or it cannot listen now)."""
        if self._listener is not None and not self._listener.closed:
            return False
        listener = self._listener = None
        try:
            listener = psycopg.connect(self._conninfo, autocommit=True)
            listener.execute(sql.LISTEN)
            # Anything committed before LISTEN went unheard: if it is ready, look now.
            missed = check_missed and listener.execute(sql.ANY_READY).fetchone()[0]
        except psycopg.Error:
            _close_quietly(listener)
            return True
        self._listener = listener
        return bool(missed)

    def wait_for_work(self, timeout: float) -> None:
        """Wait for a NOTIFY on a connection of its own; sleep when it cannot listen."""
        if timeout <= 0:
            return
        listener = self._listener
        if listener is None or listener.closed:
            if self._listen(check_missed=True):
                if self._listener is None:  # the server is unreachable: poll
                    time.sleep(timeout)
                return
            listener = self._listener
        try:
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                pass
            # Several notifications may be queued (one per commit): one wake-up covers them.
            for _ in listener.notifies(timeout=0):
                pass
        except TypeError:  # psycopg older than 3.2: no timeout on notifies(); poll instead
            time.sleep(timeout)
        except psycopg.Error:
            self._listener = None
            _close_quietly(listener)


def _claim_statement(template: str, request: ClaimRequest) -> tuple[str, dict]:
    """A statement holding the claim CTEs, for this request, and its claim parameters. The
    random token names the claim in its run row, for `_find_claim` after a lost COMMIT."""
    queue_filter, params = sql.queue_filter(request.queues)
    params.update(
        claimer=request.worker_id,
        host=request.host,
        lease=request.lease_seconds,
        token=os.urandom(12).hex(),
    )
    return template.format(queue_filter=queue_filter), params


def _find_claim(cur, request: ClaimRequest, token: str) -> Claim | None:
    """The claim a statement made with this token, if its COMMIT landed."""
    row = cur.execute(sql.FIND_CLAIM, {"worker": request.worker_id, "token": token}).fetchone()
    return sql.to_claim(row, request.worker_id)


def _close_quietly(conn: psycopg.Connection | None) -> None:
    # Closing a broken connection can fail; it is gone either way.
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
