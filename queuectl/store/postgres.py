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

This module holds the operations; postgres_conn.py the connection they run on.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # the `postgres` extra is not installed (PostgresStore says so)
    psycopg = None

from ..errors import DuplicateJob, InvalidTransition, JobNotFound, StoreError
from ..models import FINISHED_STATES, Claim, Job, JobSpec, JobState, RunResult
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
from . import postgres_sql as sql
from .postgres_conn import RETRY, PostgresStoreBase, close_quietly

# A bulk add at least this big refreshes the planner's statistics at once: without them, right
# after a big load, PostgreSQL sorts every waiting job per claim instead of walking the index.
ANALYZE_AFTER = 1000


class PostgresStore(PostgresStoreBase):
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
            return ids if ours else RETRY

        added = self._run(insert, probe=landed, cut=cut)
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
        total, *counted = self._rows(sql.COUNT_BY_STATE)[0]
        return counts_by_state(total, counted)

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
            return RETRY if claim is None else claim

        return self._run(take, probe=landed, single=True)

    def set_run_pid(self, claim: Claim, pid: int) -> None:
        self._write(sql.SET_RUN_PID, (pid, claim.run_id))

    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        def beat(cur) -> Heartbeat:
            row = cur.execute(sql.WORKER_HEARTBEAT, (worker_id,)).fetchone()
            if row is None and worker_id in self._worker_identity:
                # Pruned while we were silent (a long stall); come back rather than vanish,
                # with the first start time, and obey a stop asked for since then.
                started = cur.execute(
                    sql.REGISTER_WORKER, self._worker_identity[worker_id]
                ).fetchone()[0]
                row = cur.execute(sql.STOP_REQUESTED_SINCE, (started,)).fetchone()
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
            error=sql.without_nul(result.error),
            outcome=outcome,
            tail=sql.without_nul(result.output_tail),
            seconds=result.seconds,
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
                probe=lambda cur: True if ours(cur) else RETRY,
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
            return Finished(True, None) if ours(cur) else RETRY

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
            cur.execute(sql.PRUNE_WORKERS, (worker_row_kept(lease_seconds),))
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
            return list(chosen) if still_dead == 0 else RETRY

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
            return previous[0] if row is not None and row[0] == "canceled" else RETRY

        return self._run(cancel, probe=landed)

    # -- config ----------------------------------------------------------------------------

    def config_items(self) -> dict[str, str]:
        return dict(self._rows(sql.SELECT_CONFIG))

    def config_set(self, key: str, value: str) -> None:
        self._write(sql.UPSERT_CONFIG, (key, value))

    def config_unset(self, key: str) -> bool:
        def landed(cur):
            return RETRY if cur.execute(sql.SELECT_CONFIG_KEY, (key,)).fetchone() else True

        return self._run(
            lambda cur: cur.execute(sql.DELETE_CONFIG, (key,)).rowcount == 1,
            probe=landed,
            single=True,
        )

    # -- workers ---------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        started = self._worker_identity.get(worker_id, {}).get("started")
        identity = {"id": worker_id, "host": host, "pid": pid, "started": started}
        self._worker_identity[worker_id] = identity
        # LISTEN before the first claim, so that nothing committed after it goes unheard.
        self._listen(check_missed=False)
        # Remembered, so that coming back after a prune keeps the original start time.
        identity["started"] = self._value(sql.REGISTER_WORKER, identity)

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
