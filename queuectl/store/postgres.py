"""The PostgreSQL backend: one database shared by workers on many hosts (psycopg 3).

- Time is the server's (`now()` inside every statement), so hosts with skewed clocks neither
  steal live jobs nor start scheduled ones early. Times are epoch seconds, as on SQLite.
- A claim is one statement: `FOR UPDATE SKIP LOCKED` takes the best ready job without waiting
  on other claimers, and the same round trip counts the attempt and opens the run.
- Idle workers LISTEN on a channel that add, retry_dead, scheduled retries, rescues, cancel and
  `worker stop` NOTIFY in their own transaction; the wait's timeout is the polling fallback.
- Migrations run under a transaction-scoped advisory lock, so they apply exactly once.

Connection loss is handled in postgres_conn.py (`_run`). When a COMMIT went out and its answer
never came back, each operation that is not idempotent first asks the store whether it landed,
so no effect is ever applied twice:
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

The operations' rules are store/operations.py's; this module gives them PostgreSQL's
transactions and holds what PostgreSQL does its own way: the bulk insert (COPY), the claim and
the outcome in one round trip each, LISTEN/NOTIFY. The connection is PostgresStoreBase's, in
postgres_conn.py; the SQL is postgres_sql.py's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # the `postgres` extra is not installed (PostgresStore says so)
    psycopg = None

from ..errors import DuplicateJob, StoreError
from ..models import Claim, JobSpec, JobState
from . import ClaimRequest, Finished
from . import postgres_claim_sql as claim_sql
from . import postgres_sql as sql
from .operations import RETRY, Operations
from .postgres_conn import PostgresStoreBase, close_quietly
from .rows import new_job_row

# A bulk add at least this big refreshes the planner's statistics at once: without them, right
# after a big load, PostgreSQL sorts every waiting job per claim instead of walking the index.
ANALYZE_AFTER = 1000


class _Transaction:
    """An operation's view of one PostgreSQL transaction (see operations.Transaction)."""

    __slots__ = ("_cur", "_time")
    now = None  # every statement reads the server's clock (postgres_sql.NOW)

    def __init__(self, cur: Any) -> None:
        self._cur = cur
        self._time: float | None = None

    def time(self) -> float:
        if self._time is None:
            self._time = self._cur.execute(sql.TRANSACTION_TIME).fetchone()[0]
        return self._time

    def execute(self, statement: str, params: dict) -> Any:
        return self._cur.execute(statement, params)

    def wake(self, reason: str) -> None:
        # Delivered by the server when the transaction commits, and only then.
        self._cur.execute(sql.NOTIFY, (reason,))


class PostgresStore(PostgresStoreBase, Operations):
    sql = sql
    admin_sql_module = "queuectl.store.postgres_admin_sql"

    def _transaction(
        self,
        body: Callable[[Any], Any],
        *,
        reads: bool = False,  # SQLite's concern: a PostgreSQL transaction takes no lock to start
        single: bool = False,
        budget: float | None = None,
        probe: Callable[[Any], Any] | None = None,
    ) -> Any:
        return self._run(
            lambda cur: body(_Transaction(cur)),
            probe=None if probe is None else (lambda cur: probe(_Transaction(cur))),
            single=single,
            budget=None if budget is None else min(self._busy_timeout, budget),
        )

    # -- jobs ------------------------------------------------------------------------------

    def _insert_plain(self, specs: Sequence[JobSpec], ids: list[str]) -> None:
        # A big COPY may take longer than the statement_timeout meant for queue statements: it
        # lifts it for its own transaction, and its cut-off gets a millisecond per row on top
        # (ten times what a slow link needs). A caller that chose call_timeout keeps its bound.
        bulk = len(specs) > 1 and self._call_timeout is None
        time_statement = sql.BULK_TRANSACTION_TIME if bulk else sql.TRANSACTION_TIME
        cut = self._limits.call + len(specs) / 1000 if bulk else None

        def insert(cur) -> list[str]:
            now = cur.execute(time_statement).fetchone()[0]
            try:
                # A savepoint: after a unique violation the transaction can still look up
                # which id was taken (and is then rolled back as a whole).
                with cur.connection.transaction(), cur.copy(sql.COPY_JOBS) as copy:
                    for spec in specs:
                        row = new_job_row(spec, now)
                        copy.write_row([row[key] for key in sql.COPY_KEYS])
            except pg_errors.UniqueViolation:
                taken = {row[0] for row in cur.execute(sql.SELECT_IDS_COMMANDS, (ids,))}
                raise DuplicateJob(next((i for i in ids if i in taken), ids[0])) from None
            cur.execute(sql.NOTIFY, ("add",))
            return ids

        def landed(cur):
            cur.execute(sql.SELECT_IDS_COMMANDS, (ids,))
            found = dict(cur.fetchall())
            ours = all(found.get(spec.id) == spec.command for spec in specs)
            return ids if ours else RETRY

        self._run(insert, probe=landed, cut=cut)
        if len(specs) >= ANALYZE_AFTER:
            with contextlib.suppress(StoreError):  # only an optimization (and needs ownership)
                self._write(sql.ANALYZE_JOBS)

    # -- running ---------------------------------------------------------------------------

    def claim(self, request: ClaimRequest) -> Claim | None:
        return self._claim(request, ())

    def _claim(self, request: ClaimRequest, passed: tuple[str, ...]) -> Claim | None:
        """The best claim, leaving out the limited queues in `passed` (found full)."""
        limited, claim = self._pick(request, passed)
        return claim if limited is None else self._claim_from_limited(request, passed, limited)

    def _claim_from_limited(
        self, request: ClaimRequest, passed: tuple[str, ...], limited: str
    ) -> Claim | None:
        """The best job was in a limited queue: claimed under its lock (postgres_claim_sql.py),
        or, if it is full now, the best job elsewhere."""
        return self._claim_limited(request, limited) or self._claim(request, (*passed, limited))

    def _pick(self, request: ClaimRequest, passed: tuple[str, ...]) -> tuple[str | None, Any]:
        statement, params = _claim_statement(claim_sql.CLAIM_JOB, request, passed)

        def take(cur) -> tuple[str | None, Claim | None]:
            row = cur.execute(statement, params).fetchone()
            return row[0], _claim_in(row[1:], request)

        def landed(cur):
            claim = _find_claim(cur, request, params["token"])
            return RETRY if claim is None else (None, claim)

        return self._run(take, probe=landed, single=True)

    def _claim_limited(self, request: ClaimRequest, queue: str) -> Claim | None:
        _, params = _claim_statement("", request, ())
        params["limited"] = queue

        def take(cur) -> Claim | None:
            cur.execute(claim_sql.LOCK_LIMITED_QUEUE, params)
            row = cur.execute(claim_sql.CLAIM_LIMITED, params).fetchone()
            return sql.to_claim(row, request.worker_id)

        def landed(cur):
            claim = _find_claim(cur, request, params["token"])
            return RETRY if claim is None else claim

        return self._run(take, probe=landed)

    def _record_outcome(
        self, claim: Claim, params: dict, then_claim: ClaimRequest | None
    ) -> Finished:
        outcome = params["outcome"]
        params = {
            **params,
            "error": sql.without_nul(params["error"]),
            "tail": sql.without_nul(params["tail"]),
        }

        def ours(cur) -> bool:
            row = cur.execute(sql.SELECT_RUN_OUTCOME, params).fetchone()
            return row is not None and row[0] == outcome

        if params["state"] == JobState.DEAD.value:
            from .chaining import settle_dependents  # not on enqueue's path

            # Its dependents are canceled in the same transaction: a recursive statement of
            # its own, after the outcome (rare enough for a second round trip).
            def bury(cur) -> bool:
                held = cur.execute(sql.FINISH_JOB, params).fetchone()[0] == 1
                if held:
                    settle_dependents(_Transaction(cur), sql, claim.job.id, JobState.DEAD)
                return held

            held = self._run(bury, probe=lambda cur: True if ours(cur) else RETRY)
            return Finished(held, None if then_claim is None else self.claim(then_claim))
        retry_now = params["state"] == JobState.FAILED.value and params["delay"] <= 0
        if then_claim is not None and retry_now:
            # A retry due at once may be the best job to claim next, and one statement's
            # snapshot would not show it as ready yet: record the outcome, then claim.
            return Finished(self._record_outcome(claim, params, None).held, self.claim(then_claim))
        if then_claim is None:
            held = self._run(
                lambda cur: cur.execute(sql.FINISH_JOB, params).fetchone()[0] == 1,
                probe=lambda cur: True if ours(cur) else RETRY,
                single=True,
            )
            return Finished(held, None)
        statement, claim_params = _claim_statement(claim_sql.FINISH_AND_CLAIM, then_claim, ())
        params.update(claim_params)

        def both(cur) -> tuple[Finished, Any]:  # the limited queue's name, AFRESH or None
            row = cur.execute(statement, params).fetchone()
            finished = Finished(row[0] == 1, _claim_in(row[4:], then_claim))
            return finished, AFRESH if row[2] else row[3]

        def landed(cur):
            # One statement: its claim and its outcome landed together or not at all.
            next_claim = _find_claim(cur, then_claim, params["token"])
            if next_claim is not None:
                return Finished(ours(cur), next_claim), None
            return (Finished(True, None), None) if ours(cur) else RETRY

        finished, limited = self._run(both, probe=landed, single=True)
        if limited is None:
            return finished
        if limited is AFRESH:  # the statement left the claim to one with a fresh snapshot
            return finished._replace(next_claim=self.claim(then_claim))
        return finished._replace(next_claim=self._claim_from_limited(then_claim, (), limited))

    # -- waiting ---------------------------------------------------------------------------

    def _listen_for_work(self) -> None:
        # LISTEN before a worker's first claim, so that nothing committed after it goes unheard.
        self._listen(check_missed=False)

    def _listen(self, check_missed: bool) -> bool:
        """Open the LISTEN connection if it is not open; True if work may have been missed
        meanwhile (or it cannot listen now)."""
        if self._listener is not None and not self._listener.closed:
            return False
        listener = self._listener = None
        try:
            cut_at = self._cut_at(time.monotonic())
            listener = self._connect(cut_at)  # with the same limits as every connection
            with self._watchdog.watch(listener, cut_at):
                listener.execute(sql.LISTEN)
                # Anything committed before LISTEN went unheard: if it is ready, look now.
                missed = check_missed and listener.execute(sql.ANY_READY).fetchone()[0]
        except psycopg.Error:
            close_quietly(listener)
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
        except psycopg.Error:
            self._listener = None
            close_quietly(listener)


# What FINISH_AND_CLAIM's caller does next when the job it finished held a place in a limited
# queue or released jobs, so that the statement claimed nothing (postgres_claim_sql.py): claim
# with a fresh snapshot.
AFRESH = object()


def _claim_statement(
    template: str, request: ClaimRequest, passed: tuple[str, ...]
) -> tuple[str, dict]:
    """A statement holding the claim CTEs, for this request, and its claim parameters. The
    random token names the claim in its run row, for `_find_claim` after a lost COMMIT."""
    filters, params = sql.queue_filter(request.queues)
    params.update(
        claimer=request.worker_id,
        host=request.host,
        lease=request.lease_seconds,
        token=os.urandom(12).hex(),
        passed=list(passed),
    )
    return template.format(**filters), params


def _claim_in(columns: Sequence, request: ClaimRequest) -> Claim | None:
    """The claim in a statement's claim columns (NULLs when it claimed nothing)."""
    return None if columns[0] is None else sql.to_claim(columns, request.worker_id)


def _find_claim(cur, request: ClaimRequest, token: str) -> Claim | None:
    """The claim a statement made with this token, if its COMMIT landed."""
    row = cur.execute(sql.FIND_CLAIM, {"worker": request.worker_id, "token": token}).fetchone()
    return sql.to_claim(row, request.worker_id)
