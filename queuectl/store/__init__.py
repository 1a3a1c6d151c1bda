"""The store interface and `open_store(target)`.

Every method of a store is one transaction. Backends only supply a connection and SQL;
the queue and worker code never know which one they talk to.
"""

# No `from __future__ import annotations`: typing.NamedTuple compiles string annotations one by
# one, and this module is imported by every `queuectl enqueue` (see models.py).

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..errors import StoreError
from ..models import Claim, Job, JobSpec, JobState, Run, RunResult

if TYPE_CHECKING:  # schedules are not on `enqueue`'s path
    from ..schedules import Firing, Schedule

# A CLI call waits this long for a locked store (SPEC §5); tests may shorten it.
DEFAULT_BUSY_TIMEOUT = 30.0


class WorkerInfo(NamedTuple):
    id: str
    host: str
    pid: int
    started_at: float
    last_heartbeat: float
    current_job: str | None


class Heartbeat(NamedTuple):
    """The store's answer to a heartbeat: do we still hold our run, and should we stop?"""

    held: bool
    stop_requested: bool


class ClaimRequest(NamedTuple):
    """Who asks for the next job and how long it may hold it: the arguments of `claim`."""

    worker_id: str
    host: str
    queues: Sequence[str] | None
    lease_seconds: float


class Finished(NamedTuple):
    """The store's answer to `finish`."""

    held: bool  # False: the claim was no longer held (fenced); the run is still recorded
    next_claim: Claim | None  # the job claimed for `then_claim`, if one was asked for and ready


# Called with (attempts, max_retries); returns the delay before the retry, or None for dead.
RetryPolicy = Callable[[int, int], "float | None"]


class Store(Protocol):
    """What the queue and the workers need from a backend.

    Times are epoch seconds in the store's own clock (`now()`), so that on PostgreSQL every
    host agrees on time. Claims are fenced: `heartbeat` and `finish` only act while the job is
    still `processing` under the same worker and attempt.
    """

    description: str  # what `status` prints as the store in use
    target: str  # what another process passes to open_store to reach the same store
    log_dir: os.PathLike  # (a pathlib.Path) where this host writes run output files

    def close(self) -> None: ...

    def now(self) -> float:
        """The store's current time."""

    def add(self, specs: Sequence[JobSpec]) -> list[str]:
        """Insert jobs in one transaction; DuplicateJob (nothing written) if any id exists."""

    def get(self, job_id: str, with_runs: bool = False) -> Job:
        """One job (with its run history if asked); JobNotFound if there is none."""

    def list_jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs in insertion order, optionally filtered, past the first `offset` of them;
        `limit` None means all."""

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state, every state present."""

    def runs(self, job_id: str) -> list[Run]:
        """The run history of one job, oldest first; JobNotFound if there is none."""

    def claim(self, request: ClaimRequest) -> Claim | None:
        """Atomically take the best ready job: highest priority, then earliest run_at, then
        oldest. Marks it processing, counts the attempt, opens a run. None if nothing is ready."""

    def heartbeat(self, worker_id: str, lease_seconds: float, claim: Claim | None) -> Heartbeat:
        """Keep the worker alive in the registry and extend the claim's lease if still held."""

    def set_run_pid(self, claim: Claim, pid: int) -> None:
        """Remember the process group of a run, so a crashed worker's command can be killed."""

    def finish(
        self,
        claim: Claim,
        result: RunResult,
        retry_delay: float | None,
        then_claim: ClaimRequest | None = None,
    ) -> Finished:
        """Record how a run ended: `completed` if it succeeded, else `failed` due again after
        `retry_delay` or `dead` when that is None. With `then_claim`, also claim the next job
        for the same worker, in the same transaction where the backend can: a worker running
        short jobs back to back then writes once per job instead of twice."""

    def rescue_expired(self, policy: RetryPolicy, lease_seconds: float) -> list[str]:
        """Requeue (or bury) jobs whose lease expired, as failed runs, and forget workers
        silent for longer than `lease_seconds`. Returns the ids of the jobs requeued."""

    def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        """dead -> pending with attempts 0, due now; all dead jobs when `job_ids` is None.
        JobNotFound / InvalidTransition (nothing changed) if any listed job is not dead."""

    def cancel(self, job_id: str) -> JobState:
        """Cancel a pending, failed or processing job; returns the state it was in."""

    def config_items(self) -> dict[str, str]: ...

    def config_set(self, key: str, value: str) -> None: ...

    def config_unset(self, key: str) -> bool: ...

    def register_worker(self, worker_id: str, host: str, pid: int) -> None: ...

    def unregister_worker(self, worker_id: str) -> None: ...

    def live_workers(self, lease_seconds: float) -> list[WorkerInfo]:
        """Workers that heartbeat within the last `lease_seconds`."""

    def request_stop(self, lease_seconds: float) -> list[str]:
        """Ask every live worker to stop gracefully; returns their ids."""

    def next_run_at(self, queues: Sequence[str] | None) -> float | None:
        """When the earliest waiting job becomes due, or None if there is none."""

    def pause_queues(self, names: Sequence[str], paused: bool) -> None:
        """Pause queues (no claim takes their jobs), or resume them and wake idle workers."""

    def limit_queue(self, name: str, limit: int) -> None:
        """At most `limit` jobs of the queue processing at once across every worker (0: none)."""

    def queues(self) -> list:
        """Every queue with jobs or settings, by name (store.queue_settings.QueueInfo)."""

    def paused_queues(self) -> list[str]:
        """The paused queues' names, sorted."""

    def run_counts(self) -> list:
        """Runs ended so far by queue and outcome (store.queue_settings.RunCount)."""

    def fold_job_counts(self) -> None:
        """Bookkeeping that keeps `queues()` quick however many jobs changed since the last
        call; workers call it every few seconds."""

    def run_durations(self) -> list:
        """Closed runs' times by queue, as cumulative histogram buckets over
        store.run_stats.RUN_DURATION_BOUNDS (store.run_stats.RunDurations, by queue name). A
        queue's count is the sum of its run_counts(); both only grow (prune lowers neither)."""

    def runs_per_minute(self, minutes: int = 60) -> list[int]:
        """Runs ended in each of the last `minutes` minutes of the store's clock, oldest
        first (the last entry: the minute up to now); by the runs kept, so prune lowers it."""

    def wait_for_work(self, timeout: float) -> None:
        """Block up to `timeout` seconds, returning early when the store may have new work."""

    # -- schedules (SPEC §8) ---------------------------------------------------------------

    def add_schedule(self, schedule: "Schedule") -> "Schedule":
        """Add a checked schedule (schedules.build_schedule), created now and first due at its
        first fire time after now, by the store's clock. ScheduleExists (nothing written) if
        the name is taken. Returns it as stored."""

    def list_schedules(self) -> "list[Schedule]":
        """Every schedule, by name."""

    def get_schedule(self, name: str) -> "Schedule":
        """One schedule; ScheduleNotFound if there is none of that name."""

    def pause_schedule(self, name: str) -> "Schedule":
        """No fire time is due until resumed (`next_run_at` None); ScheduleNotFound."""

    def resume_schedule(self, name: str) -> "Schedule":
        """Due again from its first fire time strictly after now: the fire times that passed
        while it was paused are never enqueued. A running schedule is left as it is."""

    def remove_schedule(self, name: str) -> None:
        """Delete a schedule (its jobs stay); ScheduleNotFound if there is none."""

    def fire_schedules(self, defaults: "Mapping[str, Any]") -> "Firing":
        """Enqueue the due fire time of every due schedule, exactly once across every worker
        and host: the latest fire time not after now, as job `<NAME>@<fire time>`, with the
        config `defaults` (`max-retries`, `job-timeout`) where the schedule sets none. Says
        how long until the next fire time (see store/schedule_ops.py)."""

    # -- prune (SPEC §8) -------------------------------------------------------------------

    def prune_finished(
        self,
        older_than: float,
        states: Sequence[JobState],
        limit: int | None = None,
        dry_run: bool = False,
        on_batch: Callable[[Sequence[str]], object] | None = None,
    ) -> int:
        """Delete finished jobs of `states` (completed, canceled, dead: ValueError for another)
        whose last change is at least `older_than` seconds old (0: every such job), with their
        runs, their dependency edges and the log files their runs left on this host; returns
        how many were deleted (with `dry_run`: would be; nothing is deleted). At most `limit`
        jobs (None: all). Unfinished jobs are never deleted, nor a dead or canceled job that a
        waiting job still depends on; run counts (metrics) are kept.

        Batches of at most a few hundred jobs, one short transaction each, so that claims never
        wait long behind a prune. After each batch commits, `on_batch(ids)` gets the ids
        deleted in it; returning False stops the prune there."""

    def claim_chore(self, name: str, every: float) -> bool:
        """Whether the caller is the one to do the chore `name` now: a compare-and-set in the
        store, True for at most one caller (any process, any host) per `every` seconds."""


def worker_row_kept(lease_seconds: float) -> float:
    """How long a silent worker's row is kept: well past its lease (5 minutes for the default
    30 s), so that `worker stop` can report it as not reached (SPEC §5). A worker back after
    longer still obeys a stop asked for meanwhile: the store keeps when it was asked."""
    return 10 * lease_seconds


def resolve_target(target: str | None) -> str:
    """The store target in effect: --db, then QUEUECTL_DB, then the per-user default.

    An empty --db is an error (a script's `--db "$UNSET"` must not land on the default
    queue); an empty QUEUECTL_DB counts as unset, as environment variables usually do."""
    if target is not None:
        if not target.strip():
            raise StoreError("--db is empty: give a file path, sqlite:///path or postgresql://…")
        return target
    if os.environ.get("QUEUECTL_DB"):
        return os.environ["QUEUECTL_DB"]
    return default_path()


def default_path() -> str:
    """The store used when no target is given: queuectl.db in default_store_dir()."""
    return os.path.join(default_store_dir(), "queuectl.db")


def default_store_dir(
    platform: str = sys.platform, environ: Mapping[str, str] | None = None
) -> str:
    """The per-user application folder of SPEC §1, `click.get_app_dir("queuectl")`, computed by
    click's own rule for the platform and environment given (os.environ by default), so that
    tests on one platform check the others': %APPDATA%\\queuectl on Windows (roaming; else
    under the user's profile), ~/Library/Application Support/queuectl on macOS, and
    $XDG_CONFIG_HOME/queuectl (default ~/.config/queuectl) elsewhere."""
    environ = os.environ if environ is None else environ
    if platform.startswith("win"):
        import ntpath

        upper = {name.upper(): value for name, value in environ.items()}
        folder = upper.get("APPDATA")
        if folder is None:  # what os.path.expanduser("~") gives on Windows
            folder = upper.get("USERPROFILE") or (
                upper.get("HOMEDRIVE", "") + upper["HOMEPATH"] if "HOMEPATH" in upper else "~"
            )
        return ntpath.join(folder, "queuectl")
    import posixpath

    home = environ.get("HOME") or os.path.expanduser("~")
    if platform == "darwin":
        return posixpath.join(home, "Library", "Application Support", "queuectl")
    config_home = environ.get("XDG_CONFIG_HOME", posixpath.join(home, ".config"))
    return posixpath.join(config_home, "queuectl")


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str) -> str:
    """A file path from TARGET: a plain path or sqlite:///relative / sqlite:////absolute.

    Other URLs (mysql://…, sqlite+pysqlite://…), URL parameters and in-memory databases are
    refused with a clear error rather than taken for file names."""
    scheme, separator, _ = target.partition("://")
    if separator and scheme != "sqlite" and scheme.replace("+", "").replace(".", "").isalnum():
        raise StoreError(
            f"unsupported store URL {target!r}: use a file path, sqlite:///path or postgresql://…"
        )
    if target.startswith("sqlite://") and "?" in target:
        raise StoreError(f"bad SQLite URL {target!r}: queuectl takes no URL parameters")
    if target in (":memory:", "sqlite://", "sqlite:///:memory:"):
        raise StoreError("an in-memory store cannot be shared with workers: give a file path")
    if target.startswith("sqlite://"):
        rest = target[len("sqlite://") :]
        if not rest.startswith("/"):
            raise StoreError(f"bad SQLite URL {target!r}: use sqlite:///relative or sqlite:////abs")
        rest = rest[1:]
        if not rest:
            raise StoreError(f"bad SQLite URL {target!r}: no file name")
        return rest
    return os.path.expanduser(target)


def busy_timeout() -> float:
    text = os.environ.get("QUEUECTL_BUSY_TIMEOUT")
    try:
        return float(text) if text else DEFAULT_BUSY_TIMEOUT
    except ValueError:
        raise StoreError(
            f"QUEUECTL_BUSY_TIMEOUT must be a number of seconds, got {text!r}"
        ) from None


SYNC_MODES = ("NORMAL", "FULL")


def sqlite_synchronous(default: str) -> str:
    """SQLite's `synchronous` for this process: QUEUECTL_SQLITE_SYNCHRONOUS, else `default`.

    The CLI defaults to FULL: an acknowledged enqueue survives power loss. Workers default to
    NORMAL: a power cut may undo their last claims and outcomes, and those jobs run again,
    which at-least-once delivery allows; a process crash loses nothing in either mode."""
    text = os.environ.get("QUEUECTL_SQLITE_SYNCHRONOUS", default).strip().upper()
    if text not in SYNC_MODES:
        raise StoreError(f"QUEUECTL_SQLITE_SYNCHRONOUS must be NORMAL or FULL, got {text!r}")
    return text


def open_store(
    target: str | None = None,
    clock: Callable[[], float] | None = None,
    synchronous: str = "FULL",
    reads_only: bool = False,
    call_timeout: float | None = None,
    deadline: float | None = None,
) -> Store:
    """Open (creating if needed) the store that TARGET names.

    `synchronous` is the SQLite durability default for this process (see sqlite_synchronous);
    PostgreSQL commits are always durable. `reads_only`: the caller never writes, so an SQLite
    store on a read-only file system is opened read-only instead of refused.

    PostgreSQL only (SQLite's waits are local and bounded by its busy timeout): `call_timeout`,
    the most seconds any one store call may take whatever the network or server does (a
    worker's heartbeat during a silent partition fails within it; leave None for big bulk
    adds); `deadline`, a time.monotonic() value no call waits past (a command's own
    --timeout). Both are documented on PostgresStoreBase (store/postgres_conn.py)."""
    resolved = resolve_target(target)
    if is_postgres(resolved):
        from .postgres import PostgresStore

        return PostgresStore(
            resolved, busy_timeout=busy_timeout(), call_timeout=call_timeout, deadline=deadline
        )
    from .sqlite import SQLiteStore

    path = sqlite_path(resolved)
    create_parent = target is None and not os.environ.get("QUEUECTL_DB")
    return SQLiteStore(
        path,
        busy_timeout=busy_timeout(),
        clock=clock,
        create_parent=create_parent,
        synchronous=sqlite_synchronous(synchronous),
        reads_only=reads_only,
    )
