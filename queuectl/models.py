"""Jobs, their states, spec validation and the pure rules that decide what happens next.

Nothing here touches a database, a clock or a process: every function takes what it needs and
returns values, so the rules can be tested exhaustively on their own.
"""

# No `from __future__ import annotations` here, unlike the other modules: typing.NamedTuple turns
# string annotations into ForwardRefs, compiling each one, and that made importing this module
# (on every `queuectl enqueue`) about 0.5 ms slower. Every annotation is valid at run time (3.10+).
from collections.abc import Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import Any, NamedTuple

# What queuectl creates is its owner's only (SPEC §5): the store and log files, and folders.
OWNER_ONLY = 0o600
OWNER_ONLY_FOLDER = 0o700
MAX_ID_LENGTH = 200
MAX_QUEUE_LENGTH = 200
# SQLite and PostgreSQL both store 64-bit signed integers; larger values would fail deep inside.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_QUEUE = "default"
MAX_SECONDS = 1e10  # about 317 years: bounds every delay, timeout and seconds setting


class JobState(str, Enum):
    """Where a job is in its life; see SPEC §3 and §7 (`waiting`)."""

    WAITING = "waiting"  # for its dependencies (`after`) to complete; never claimed
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value


STATES = tuple(state.value for state in JobState)
FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELED})
# A finished job is never canceled: its outcome stands (SPEC §4 `cancel`).
CANCELABLE_STATES = frozenset(
    {JobState.WAITING, JobState.PENDING, JobState.FAILED, JobState.PROCESSING}
)
# Finished without completing: a dependency that ended so dooms the jobs waiting on it, and
# `wait` exits 3 for it (SPEC §7).
ENDED_BADLY = frozenset({JobState.DEAD, JobState.CANCELED})
# SPEC §8: what `prune` deletes unless told otherwise, and what workers prune by `retention`
# (dead jobs wait in the dead-letter queue for someone to look at them).
PRUNED_BY_DEFAULT = (JobState.COMPLETED, JobState.CANCELED)


class Outcome(str, Enum):
    """How one run ended: the distinctions a user needs when reading `show` and `logs`."""

    EXITED = "exited"  # the command ran and exited with a code (0 or not)
    NOT_STARTED = "not_started"  # the shell could not be started at all
    TIMED_OUT = "timed_out"
    KILLED = "killed"  # killed by a signal, or by a worker forced to stop
    CANCELED = "canceled"
    LOST = "lost"  # the worker went silent and its lease expired

    def __str__(self) -> str:
        return self.value


class CommandFate(str, Enum):
    """What `cancel` did about a running job's command."""

    ENDED = "ended"  # gone within the wait: killed by its worker, or finished on its own first
    KILLED = "killed"  # killed by this call: its worker was gone
    LEFT_TO_WORKER = "left to its worker"  # on another host, or its pid not yet recorded

    def __str__(self) -> str:
        return self.value


# Records are NamedTuples, not dataclasses: a dataclass costs ~0.8 ms to create at import,
# and `queuectl enqueue` runs in shell loops (SPEC: import only what the command needs).


class JobSpec(NamedTuple):
    """A validated request to enqueue one job, with every default already filled in."""

    id: str
    command: str
    max_retries: int
    priority: int
    queue: str
    timeout: float
    run_at: float | None  # epoch seconds; None means "now" in the store's clock
    delay: float  # seconds after the store's "now"; used when run_at is None
    after: tuple = ()  # ids of the jobs that must complete first (SPEC §7)
    unique_key: str | None = None  # at most one unfinished job per key
    cwd: str | None = None  # an absolute folder; None: the worker's own
    env: dict | None = None  # added to the worker's environment for this job


class Run(NamedTuple):
    """One attempt at running a job, as kept in the run history."""

    run_id: int
    attempt: int
    worker_id: str
    host: str
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    exit_code: int | None = None
    error: str | None = None
    output_tail: str = ""
    pid: int | None = None
    log_path: str | None = None  # on the host that ran it

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "worker_id": self.worker_id,
            "host": self.host,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "error": self.error,
            "log_path": self.log_path,
            "output_tail": self.output_tail,
        }


class Job(NamedTuple):
    """A job as stored; times are epoch seconds (UTC)."""

    id: str
    command: str
    state: JobState
    attempts: int
    max_retries: int
    priority: int
    queue: str
    run_at: float
    timeout: float
    created_at: float
    updated_at: float
    exit_code: int | None = None
    last_error: str | None = None
    worker_id: str | None = None
    lease_until: float | None = None
    unique_key: str | None = None
    cwd: str | None = None
    env: dict | None = None
    after: Sequence[str] = ()
    runs: Sequence[Run] = ()

    @classmethod
    def from_row(cls, row: Sequence[Any], runs: Sequence[Run] = ()) -> "Job":
        """A job from its stored columns, in the order of the fields above; `env` and `after`
        are stored as JSON text (None when empty)."""
        env, after = row[17], row[18]
        if env is not None or after is not None:
            import json  # only jobs that have them pay for it

            env = None if env is None else json.loads(env)
            after = () if after is None else json.loads(after)
        else:
            after = ()
        return cls(row[0], row[1], JobState(row[2]), *row[3:17], env, after, list(runs))

    def to_dict(self, with_runs: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "command": self.command,
            "state": str(self.state),
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "priority": self.priority,
            "queue": self.queue,
            "run_at": iso(self.run_at),
            "timeout": self.timeout,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "exit_code": self.exit_code,
            "last_error": self.last_error,
            "worker_id": self.worker_id,
            "after": list(self.after),
            "unique_key": self.unique_key,
            "cwd": self.cwd,
            "env": self.env or {},
        }
        if with_runs:
            data["runs"] = [run.to_dict() for run in self.runs]
        return data


class Claim(NamedTuple):
    """A worker's hold on one run of a job: the fencing token for heartbeat and finish."""

    job: Job
    worker_id: str
    attempt: int
    run_id: int


class RunResult(NamedTuple):
    """What the runner reports about one finished run."""

    outcome: Outcome
    exit_code: int | None
    error: str | None
    output_tail: str = ""
    log_path: str | None = None
    # How long the command ran, by the worker's clock: the run's finish time is its start plus
    # this, not the time the outcome reached the store (later, after an outage).
    seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.EXITED and self.exit_code == 0


# ---------------------------------------------------------------------------------------------
# Pure rules


def backoff_delay(retry: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number `retry` (1, 2, …): min(cap, base ** retry)."""
    if retry < 1:
        return 0.0
    try:
        delay = float(base) ** retry
    except OverflowError:
        return float(cap)
    return min(float(cap), delay)


def heartbeat_interval(lease_seconds: float) -> float:
    """Beat well inside the lease; at least once a second so cancels take effect quickly."""
    return max(0.01, min(lease_seconds / 3.0, 1.0))


def retry_delay(attempts: int, max_retries: int, base: float, cap: float) -> float | None:
    """After a failed run, seconds until the next try, or None when the job is now dead.

    `attempts` counts runs started so far (the one that just failed included), so the retry
    about to be scheduled is number `attempts`, and a job may run `max_retries + 1` times.
    """
    if attempts > max_retries:
        return None
    return backoff_delay(attempts, base, cap)


def failed_state(retry_delay: float | None) -> JobState:
    """Where a job goes after a failed (or lost) run: `failed`, due again after `retry_delay`,
    or `dead` when that is None (see retry_delay)."""
    return JobState.DEAD if retry_delay is None else JobState.FAILED


def next_state(result: RunResult, retry_delay: float | None) -> tuple[JobState, float]:
    """The state a run's outcome puts its job in, and the delay before it is due again."""
    if result.succeeded:
        return JobState.COMPLETED, 0.0
    state = failed_state(retry_delay)
    return state, retry_delay if state is JobState.FAILED else 0.0


# ---------------------------------------------------------------------------------------------
# Log files and times

# Names that open a device instead of a file on Windows, whatever the extension.
WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{name}{n}" for name in ("COM", "LPT") for n in range(1, 10)]
)


def log_file_name(job_id: str, run_id: int, worker_id: str) -> str:
    """The log file of one run. Ids are untrusted: only [A-Za-z0-9_-] survive (no dots, no
    separators, so never `..` or a path).

    Run ids restart at 1 in every store, and stores share a logs folder (SQLite stores side by
    side, or one deleted and made again), so the name also carries a checksum of the worker
    that ran it: `<id>.<run id>.<crc32 of worker id, 8 hex>.log`. Worker ids end in random
    hex, so two stores' runs never share a name.

    The id part never starts with `-` (a job `-rf` would give `rm *` in the logs folder an
    option) nor is empty (a hidden `.5.….log`), nor is a Windows device name: `_` goes in
    front."""
    plain = job_id.isascii() and job_id.replace("_", "").replace("-", "").isalnum()
    if plain:  # the usual case, checked in C: a worker names a log file for every run
        safe = job_id[:64]
    else:
        safe = "".join(
            ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in job_id
        )
        safe = safe[:64]
    if not safe or safe[0] == "-" or safe.upper() in WINDOWS_DEVICES:
        safe = "_" + safe[:63]
    import zlib  # here, not at the top: `enqueue` never names a log file (start-up time)

    return f"{safe}.{run_id}.{zlib.crc32(worker_id.encode('utf-8', 'surrogatepass')):08x}.log"


def iso(epoch: float | None) -> str | None:
    """Epoch seconds to ISO-8601 UTC with millisecond precision, e.g. 2026-01-02T03:04:05.678Z."""
    if epoch is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # stored by an older, laxer version
        return str(epoch)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
