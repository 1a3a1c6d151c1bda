"""The store's operations, written once for every backend: what each checks, which named
statements it runs in which order, the errors and messages it gives.

A backend (sqlite.py, postgres.py) is a subclass that supplies three things:
- `sql`: its dialect's module of named statements (sqlite_sql, postgres_sql). Every
  statement takes named parameters with the same names in both dialects, so the calls here
  read the same whatever the backend; a statement ignores parameters it does not use.
- `_transaction(body, ...)`: runs body(tx) as one transaction and returns what it returns.
  `tx.execute(statement, params)` gives a DB-API cursor; `tx.now` is the time to stamp (the
  injected clock's on SQLite; None on PostgreSQL, whose statements read the server's clock, so
  that hosts with skewed clocks agree); `tx.wake(reason)` wakes idle workers once the
  transaction commits.
- the operations whose SQL shape differs too much to share a body: `add`'s insert (COPY on
  PostgreSQL), `claim` and `finish` (one round trip per job on PostgreSQL), waiting for work.

`_transaction` options: `reads` (SQLite: no write lock), `single` (PostgreSQL: one autocommit
statement), `budget` (PostgreSQL: give up retrying a lost connection after that many seconds),
`probe` (PostgreSQL: after a COMMIT whose answer was lost, probe(tx) says whether it landed,
returning the result, or RETRY to run the body again; see postgres.py). Probes only ever run
where a COMMIT's answer can be lost, so the statements only they use are PostgreSQL's only.
"""

# No `from __future__ import annotations` (see store/__init__.py): imported by `enqueue`.

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidTransition, JobNotFound, StoreReadOnly
from ..models import (
    CANCELABLE_STATES,
    INT64_MAX,
    STATES,
    Claim,
    Job,
    JobSpec,
    JobState,
    Run,
    RunResult,
    failed_state,
)
from . import (
    ClaimRequest,
    Finished,
    Heartbeat,
    RetryPolicy,
    WorkerInfo,
    worker_row_kept,
)
from .rows import (
    claim_fence,
    distinct_ids,
    lost_error,
    outcome_params,
    run_from_row,
)

if TYPE_CHECKING:  # schedules are not on `enqueue`'s path
    from collections.abc import Mapping

    from ..schedules import Firing, Schedule

# What a probe returns when the change did not land: run the transaction again.
RETRY = object()


class Transaction(Protocol):
    """What an operation's body gets from `_transaction`."""

    now: float | None

    def time(self) -> float:
        """The transaction's time as a number (`now`, or the server's clock, asked once)."""

    def execute(self, statement: str, params: dict) -> Any:
        """Run one named statement; a DB-API cursor (fetchone, fetchall, rowcount)."""

    def wake(self, reason: str) -> None:
        """Wake idle workers once this transaction has committed."""


class Operations:
    """Every store operation whose rules do not depend on the backend (see the module doc)."""

    sql: Any  # the backend's module of named statements
    admin_sql_module: str  # its module of operators' statements (SPEC §8), imported on use
    log_dir: os.PathLike
    # Per registered worker: id, host, pid and its first start time (None until registered),
    # so that a worker whose row was pruned during a long stall comes back as it was.
    _worker_identity: dict[str, dict]

    def _transaction(
        self,
        body: Callable[[Transaction], Any],
        *,
        reads: bool = False,
        single: bool = False,
        budget: float | None = None,
        probe: Callable[[Transaction], Any] | None = None,
    ) -> Any:
        raise NotImplementedError

    @property
    def admin_sql(self) -> Any:
        """The backend's statements for queues, run counts, prune and schedules: a module
        of their own, off `enqueue`'s import path."""
        import importlib

        return importlib.import_module(self.admin_sql_module)

    def _listen_for_work(self) -> None:
        """Start listening for new work (before a worker's first claim); a backend hook."""

    def _after_bulk_write(self) -> None:
        """After a transaction that wrote many pages (a batch of prune); a backend hook."""

    def _insert_plain(self, specs: Sequence[JobSpec], ids: list[str]) -> None:
        """Insert jobs without dependencies or unique keys, all in one transaction, the
        backend's fastest way (executemany, COPY); DuplicateJob (nothing written) if an id
        exists. Wakes idle workers."""
        raise NotImplementedError

    # -- jobs ------------------------------------------------------------------------------

    def add(self, specs: Sequence[JobSpec]) -> list[str]:
        """Insert jobs in one transaction, all or nothing (DuplicateJob, DependencyError).
        One id per spec: its own, or the id of the unfinished job holding its unique key."""
        ids = distinct_ids(specs)
        if not specs:
            return []
        if not any(spec.after or spec.unique_key is not None for spec in specs):
            self._insert_plain(specs, ids)
            return ids
        from .chaining import add_linked, check_batch  # not on a plain enqueue's path

        check_batch(specs)
        sql = self.sql

        def insert(tx: Transaction) -> list[str]:
            added = add_linked(tx, sql, specs, tx.time())
            tx.wake("add")
            return added

        def landed(tx: Transaction) -> Any:
            found = []
            for spec in specs:
                row = tx.execute(sql.SELECT_COMMAND, {"job": spec.id}).fetchone()
                if row is not None and row[0] == spec.command:
                    found.append(spec.id)
                    continue
                key = spec.unique_key
                holder = key and tx.execute(sql.SELECT_KEY_HOLDER, {"key": key}).fetchone()
                if not holder:
                    return RETRY
                found.append(holder[0])
            return found

        return self._transaction(insert, probe=landed)

    def get(self, job_id: str, with_runs: bool = False) -> Job:
        sql = self.sql

        def read(tx: Transaction) -> Job:
            row = tx.execute(sql.SELECT_JOB, {"job": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if not with_runs:
                return Job.from_row(row[1:])
            log_dir = str(self.log_dir)  # a Path made per call on SQLite: once per job
            runs = tx.execute(sql.SELECT_RUNS, {"seq": row[0]}).fetchall()
            return Job.from_row(row[1:], [run_from_row(run, job_id, log_dir) for run in runs])

        return self._transaction(read, reads=True)

    def runs(self, job_id: str) -> list[Run]:
        return list(self.get(job_id, with_runs=True).runs)

    def list_jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Job]:
        if offset and limit is None:
            limit = INT64_MAX  # SQLite takes an OFFSET only after a LIMIT
        params = {"state": state, "queue": queue, "limit": limit, "offset": offset}
        filters = [
            self.sql.JOB_FILTERS[name] for name in ("state", "queue") if params[name] is not None
        ]
        statement = self.sql.LIST_JOBS.format(
            where=" AND ".join(filters) or "true",
            limit=(self.sql.LIMIT if limit is not None else "")
            + (f" {self.sql.OFFSET}" if offset else ""),
        )
        return self._transaction(
            lambda tx: [Job.from_row(row) for row in tx.execute(statement, params)],
            reads=True,
            single=True,
        )

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state present, from the counts the store keeps."""

        def count(tx: Transaction) -> dict[str, int]:
            counted = dict(tx.execute(self.sql.COUNT_BY_STATE, {}).fetchall())
            return {state: int(counted.get(state) or 0) for state in STATES}

        self.fold_job_counts()
        return self._transaction(count, reads=True, single=True)

    # -- running ---------------------------------------------------------------------------

    def set_run_pid(self, claim: Claim, pid: int) -> None:
        self._transaction(
            lambda tx: tx.execute(self.sql.SET_RUN_PID, {"pid": pid, "run_id": claim.run_id}),
            single=True,
        )

    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        sql = self.sql

        def beat(tx: Transaction) -> Heartbeat:
            row = tx.execute(sql.WORKER_HEARTBEAT, {"worker": worker_id, "now": tx.now}).fetchone()
            identity = self._worker_identity.get(worker_id)
            if row is None and identity is not None:
                # Pruned while we were silent (a long stall); come back rather than vanish.
                # Its original start time stays: `status` shows when it started, and a stop
                # asked for since then applies to it.
                started = tx.execute(sql.REGISTER_WORKER, {**identity, "now": tx.now}).fetchone()
                row = tx.execute(sql.STOP_REQUESTED_SINCE, {"started": started[0]}).fetchone()
            held = True
            if claim is not None:
                fence = claim_fence(claim, now=tx.now, lease=lease_seconds)
                held = tx.execute(sql.EXTEND_LEASE, fence).rowcount == 1
            return Heartbeat(held=held, stop_requested=bool(row and row[0]))

        # Give up well inside the lease: the caller's monitor also enforces the job's timeout.
        return self._transaction(beat, budget=max(1.0, lease_seconds / 3))

    def finish(
        self,
        claim: Claim,
        result: RunResult,
        retry_delay: float | None,
        then_claim: ClaimRequest | None = None,
    ) -> Finished:
        """Record how a run ended (see Store.finish): the rule is next_state's, the statements
        the backend's, which may also claim the next job in the same round trip."""
        return self._record_outcome(claim, outcome_params(claim, result, retry_delay), then_claim)

    def _record_outcome(
        self, claim: Claim, params: dict, then_claim: ClaimRequest | None
    ) -> Finished:
        """Run FINISH_JOB and CLOSE_RUN with `params` (outcome_params), then the claim."""
        raise NotImplementedError

    def rescue_expired(self, policy: RetryPolicy, lease_seconds: float) -> list[str]:
        """Requeue (or bury) jobs whose lease expired, as failed runs, and forget workers
        silent for longer than worker_row_kept(lease_seconds). The ids of the jobs rescued."""
        from .chaining import settle_dependents, settle_stranded

        sql = self.sql

        def rescue(tx: Transaction) -> list[str]:
            rescued = []
            expired = tx.execute(sql.SELECT_EXPIRED, {"now": tx.now}).fetchall()
            for seq, job_id, attempts, max_retries, worker_id in expired:
                delay = policy(attempts, max_retries)
                values = {"seq": seq, "attempt": attempts, "error": lost_error(worker_id)}
                values["now"] = tx.now
                state = failed_state(delay)
                tx.execute(sql.RESCUE_JOB, {**values, "state": state.value, "delay": delay or 0.0})
                tx.execute(sql.CLOSE_LOST_RUN, values)
                settle_dependents(tx, sql, job_id, state)
                rescued.append(job_id)
            settle_stranded(tx, sql)
            kept = worker_row_kept(lease_seconds)
            tx.execute(sql.PRUNE_WORKERS, {"now": tx.now, "kept": kept})
            if rescued:
                tx.wake("rescue")
            return rescued

        return self._transaction(rescue)

    # -- user operations -------------------------------------------------------------------

    def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        """dead -> pending with attempts 0, due now; all dead jobs when `job_ids` is None.
        JobNotFound / InvalidTransition (nothing changed) if any listed job is not dead."""
        from .chaining import key_held_elsewhere

        sql = self.sql
        chosen: list[str] = []

        def retry(tx: Transaction) -> list[str]:
            ids = job_ids
            if ids is None:
                ids = [row[0] for row in tx.execute(sql.SELECT_DEAD_IDS, {}).fetchall()]
            chosen[:] = dict.fromkeys(ids)  # the same id twice is one retry
            for job_id in chosen:
                holder = key_held_elsewhere(tx, sql, job_id)
                if holder is not None:
                    raise InvalidTransition(
                        f"job {job_id!r} is not retried: its unique_key is held by unfinished "
                        f"job {holder!r}"
                    )
                if tx.execute(sql.RETRY_DEAD, {"job": job_id, "now": tx.now}).rowcount == 1:
                    continue
                row = tx.execute(sql.SELECT_STATE, {"job": job_id}).fetchone()
                if row is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(f"job {job_id!r} is {row[0]}, not dead")
            if chosen:
                tx.wake("retry")
            return list(chosen)

        def landed(tx: Transaction) -> Any:
            still_dead = tx.execute(sql.COUNT_DEAD, {"ids": chosen}).fetchone()[0]
            return list(chosen) if still_dead == 0 else RETRY

        return self._transaction(retry, probe=landed)

    def cancel(self, job_id: str) -> JobState:
        """Cancel a pending, failed or processing job; the state it was in. JobNotFound, or
        InvalidTransition for a finished job (nothing changed)."""
        from .chaining import settle_dependents

        sql = self.sql
        previous: list[JobState] = []

        def cancel(tx: Transaction) -> JobState:
            row = tx.execute(sql.SELECT_FOR_CANCEL, {"job": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            seq, state, attempts = row[0], JobState(row[1]), row[2]
            if state not in CANCELABLE_STATES:
                raise InvalidTransition(
                    f"job {job_id!r} is already {state}; only waiting, pending, failed or "
                    "processing jobs can be canceled"
                )
            previous[:] = [state]
            tx.execute(sql.CANCEL_JOB, {"job": job_id, "now": tx.now})
            settle_dependents(tx, sql, job_id, JobState.CANCELED)
            if state is JobState.PROCESSING:
                tx.execute(sql.CLOSE_CANCELED_RUN, {"seq": seq, "attempt": attempts, "now": tx.now})
            tx.wake("cancel")
            return state

        def landed(tx: Transaction) -> Any:
            row = tx.execute(sql.SELECT_STATE, {"job": job_id}).fetchone()
            return previous[0] if row is not None and row[0] == "canceled" else RETRY

        return self._transaction(cancel, probe=landed)

    # -- config ----------------------------------------------------------------------------

    def config_items(self) -> dict[str, str]:
        return self._transaction(
            lambda tx: dict(tx.execute(self.sql.SELECT_CONFIG, {}).fetchall()),
            reads=True,
            single=True,
        )

    def config_set(self, key: str, value: str) -> None:
        self._transaction(
            lambda tx: tx.execute(self.sql.UPSERT_CONFIG, {"key": key, "value": value}),
            single=True,
        )

    def config_unset(self, key: str) -> bool:
        def landed(tx: Transaction) -> Any:
            still = tx.execute(self.sql.SELECT_CONFIG_KEY, {"key": key}).fetchone()
            return RETRY if still else True

        return self._transaction(
            lambda tx: tx.execute(self.sql.DELETE_CONFIG, {"key": key}).rowcount == 1,
            single=True,
            probe=landed,
        )

    # -- workers ---------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        # Registering again (after a prune, or a retry whose first try landed) keeps the first
        # start time: `status` shows when a worker started, not when it came back.
        started = self._worker_identity.get(worker_id, {}).get("started")
        identity = {"id": worker_id, "host": host, "pid": pid, "started": started}
        self._worker_identity[worker_id] = identity
        # Listening starts before the first claim, so that nothing committed after it goes
        # unnoticed.
        self._listen_for_work()

        def register(tx: Transaction) -> float:
            return tx.execute(self.sql.REGISTER_WORKER, {**identity, "now": tx.now}).fetchone()[0]

        identity["started"] = self._transaction(register, single=True)

    def unregister_worker(self, worker_id: str) -> None:
        self._worker_identity.pop(worker_id, None)
        self._transaction(
            lambda tx: tx.execute(self.sql.UNREGISTER_WORKER, {"worker": worker_id}), single=True
        )

    def live_workers(self, lease_seconds: float) -> list[WorkerInfo]:
        """Workers that heartbeat within the last `lease_seconds`."""

        def live(tx: Transaction) -> list[WorkerInfo]:
            rows = tx.execute(self.sql.LIVE_WORKERS, {"now": tx.now, "lease": lease_seconds})
            return [WorkerInfo(*row) for row in rows]

        return self._transaction(live, reads=True, single=True)

    def request_stop(self, lease_seconds: float) -> list[str]:
        """Ask every live worker to stop gracefully; their ids. The time of the request is
        kept, so that a worker away longer than its row is kept stops when it is back."""

        def ask(tx: Transaction) -> list[str]:
            tx.execute(self.sql.NOTE_STOP_REQUEST, {"now": tx.now})
            asked = tx.execute(self.sql.REQUEST_STOP, {"now": tx.now, "lease": lease_seconds})
            ids = [row[0] for row in asked.fetchall()]
            tx.wake("stop")
            return ids

        return self._transaction(ask)

    # -- queues (SPEC §8; the rules are queue_settings.py's, imported on first use) ---------

    def pause_queues(self, names: Sequence[str], paused: bool) -> None:
        """Pause queues, or resume them (which wakes idle workers)."""
        from .queue_settings import set_paused

        self._transaction(lambda tx: set_paused(tx, self.admin_sql, names, paused))

    def limit_queue(self, name: str, limit: int) -> None:
        """Set a queue's limit on running jobs; 0 removes it."""
        from .queue_settings import set_limit

        self._transaction(lambda tx: set_limit(tx, self.admin_sql, name, limit))

    def queues(self) -> list:
        """Every queue with jobs or settings (QueueInfo), by name."""
        from .queue_settings import list_queues

        self.fold_job_counts()
        return self._transaction(lambda tx: list_queues(tx, self.admin_sql), reads=True)

    def fold_job_counts(self) -> None:
        """Keep the jobs-by-queue-and-state counts quick to read (queue_settings)."""
        from .queue_settings import fold_job_counts

        if self.admin_sql.FOLD_JOB_COUNTS is not None:
            # A standby, a role that may only read: the readers add the changes up unfolded.
            with contextlib.suppress(StoreReadOnly):
                self._transaction(lambda tx: fold_job_counts(tx, self.admin_sql), single=True)

    def paused_queues(self) -> list[str]:
        """The paused queues' names, sorted."""
        from .queue_settings import paused_queues

        return self._transaction(lambda tx: paused_queues(tx, self.admin_sql), reads=True)

    def run_counts(self) -> list:
        """Runs ended so far by queue and outcome (RunCount); prune never lowers them."""
        from .queue_settings import run_counts

        return self._transaction(lambda tx: run_counts(tx, self.admin_sql), reads=True)

    def run_durations(self) -> list:
        """Run times by queue as histograms (RunDurations); prune never lowers them."""
        from .run_stats import run_durations

        return self._transaction(lambda tx: run_durations(tx, self.admin_sql), reads=True)

    # The dashboard's activity (SPEC §9): store/activity.py.
    def runs_per_minute(self, minutes: int = 60) -> list[int]:
        from .activity import runs_per_minute

        return self._transaction(
            lambda tx: runs_per_minute(tx, self.admin_sql, minutes), reads=True
        )

    # -- waiting ---------------------------------------------------------------------------

    def next_run_at(self, queues: Sequence[str] | None) -> float | None:
        """When the earliest waiting job becomes due, or None if there is none."""
        filters, params = self.sql.queue_filter(queues)
        statement = self.sql.NEXT_RUN_AT.format(**filters)
        return self._transaction(
            lambda tx: tx.execute(statement, params).fetchone()[0], reads=True, single=True
        )

    # -- schedules (SPEC §8; the rules are schedule_ops.py's, imported when used) ------------

    def add_schedule(self, schedule: "Schedule") -> "Schedule":
        from . import schedule_ops

        return schedule_ops.add(self, schedule)

    def list_schedules(self) -> "list[Schedule]":
        from . import schedule_ops

        return schedule_ops.list_all(self)

    def get_schedule(self, name: str) -> "Schedule":
        from . import schedule_ops

        return schedule_ops.get(self, name)

    def pause_schedule(self, name: str) -> "Schedule":
        from . import schedule_ops

        return schedule_ops.pause(self, name)

    def resume_schedule(self, name: str) -> "Schedule":
        from . import schedule_ops

        return schedule_ops.resume(self, name)

    def remove_schedule(self, name: str) -> None:
        from . import schedule_ops

        schedule_ops.remove(self, name)

    def fire_schedules(self, defaults: "Mapping[str, Any]") -> "Firing":
        from . import schedule_ops

        return schedule_ops.fire_due(self, defaults)

    # -- prune (SPEC §8): the rules are store/pruning.py's ----------------------------------

    def prune_finished(
        self,
        older_than: float,
        states: Sequence[JobState],
        limit: int | None = None,
        dry_run: bool = False,
        on_batch: Callable[[Sequence[str]], object] | None = None,
    ) -> int:
        from .pruning import prune_finished

        return prune_finished(self, older_than, states, limit, dry_run, on_batch)

    def claim_chore(self, name: str, every: float) -> bool:
        from .pruning import claim_chore

        return claim_chore(self, name, every)
