"""What to do: the operations behind every CLI command, and queuectl's Python API.

    from queuectl import Queue, QueueError

    with Queue.open("jobs.db") as queue:       # or a postgresql:// URL; None: as the CLI
        job_id = queue.enqueue({"command": "echo hello", "max_retries": 2})
        queue.wait(job_id, timeout=60)         # once a worker (`queuectl worker start`) ran it
        print(queue.get(job_id).state)

The methods named as SPEC §10 names them (enqueue, get, list, status, cancel, retry, wait, and
the queue and schedule operations) are the documented API (docs/api.md); every error a caller
can act on is a QueueError (errors.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from . import config
from .errors import DuplicateJob, JobNotFound, QueueError, ScheduleNotFound
from .models import (
    FINISHED_STATES,
    INT64_MAX,
    MAX_QUEUE_LENGTH,
    PRUNED_BY_DEFAULT,
    CommandFate,
    Job,
    JobSpec,
    JobState,
    Run,
    iso,
)
from .specs import SpecError, build_spec, check_encodable, check_name, parse_spec_json, type_name
from .store import Store, WorkerInfo, is_postgres, open_store

if TYPE_CHECKING:  # imported when used: `enqueue` loads none of them
    from .runlogs import RunLog
    from .schedules import Schedule
    from .watching import WaitResult


# `list` (and the dashboard's /api/jobs) without a limit shows this many jobs; 0 = all.
DEFAULT_LIST_LIMIT = 100
# `queuectl prune` without --older-than (SPEC §8).
DEFAULT_PRUNE_AGE = "7d"


class Status(NamedTuple):
    """What `status` shows: the store in use, job counts by state, live workers, paused
    queues."""

    store: str
    jobs: dict[str, int]
    workers: list[WorkerInfo]
    paused_queues: list[str]

    def to_dict(self) -> dict:
        """The document of `status --json` and the dashboard's /api/status (SPEC §4, §9)."""
        workers = [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "started_at": iso(w.started_at),
                "last_heartbeat": iso(w.last_heartbeat),
                "current_job": w.current_job,
            }
            for w in self.workers
        ]
        return {
            "store": self.store,
            "jobs": dict(self.jobs),
            "workers": workers,
            "paused_queues": list(self.paused_queues),
        }


class Canceled(NamedTuple):
    previous: JobState  # the state the job was in
    command: CommandFate | None  # for a job that was running; None otherwise


class Enqueued(NamedTuple):
    """A spec's job: the one added, or the unfinished job that already held its unique_key."""

    id: str
    existing: bool  # True: nothing was written for the spec; `id` is that other job


class BulkSpecError(QueueError):
    """A bad line in bulk input; nothing was enqueued."""


class Queue:
    """A queue system: one store, its settings, and the operations users ask for."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def open(
        cls,
        target: str | None = None,
        reads_only: bool = False,
        deadline: float | None = None,
        *,
        dotenv: bool = True,
    ) -> Queue:
        """Open (creating if needed) the queue in the store TARGET names, by the CLI's rules
        (SPEC §1, store.resolve_target): a file path, sqlite:///relative/path,
        sqlite:////absolute/path or postgresql://…; None: $QUEUECTL_DB, else queuectl.db in
        the per-user application folder. With `dotenv` (the default), a .env file in the
        current folder is loaded first as the CLI loads it, never overriding variables already
        set (config.load_dotenv_file). `reads_only`: for callers that only look, also a store
        on a read-only file system; `deadline`: a time.monotonic() value no PostgreSQL call
        waits past. StoreError when the store cannot be used, ConfigError for a bad .env.

            with Queue.open("postgresql://queue@db.example/queuectl") as queue:
                print(queue.status().jobs)
        """
        if dotenv:
            config.load_dotenv_file()
        return cls(open_store(target, reads_only=reads_only, deadline=deadline))

    def close(self) -> None:
        """Close the store's connection; the Queue is not usable afterwards."""
        self.store.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """The kind of store: "sqlite" or "postgresql" (metrics' build_info label)."""
        return "postgresql" if is_postgres(self.store.target) else "sqlite"

    def now(self) -> float:
        """The store's clock, epoch seconds (PostgreSQL: the server's), by which its times
        were stamped: ages are measured against it."""
        return self.store.now()

    # -- settings --------------------------------------------------------------------------

    def settings(self) -> dict:
        """Typed config values in effect for this process (environment overrides win)."""
        return config.settings(self.store.config_items())

    def config_entries(self) -> list[config.Entry]:
        """Every key's value in effect, and where it comes from. A bad environment override
        is an error here as for every other command: it is not a value in effect."""
        stored = self.store.config_items()
        config.settings(stored)
        return config.resolve(stored)

    def config_get(self, key: str) -> str:
        config.check_key(key)
        for entry in self.config_entries():
            if entry.key == key:
                return entry.value
        raise AssertionError(key)  # every known key has an entry

    def config_set(self, key: str, value: str) -> str:
        """Check and store a value for `key`; returns it as stored (in canonical form)."""
        text = config.canonical_value(key, value)
        self.store.config_set(key, text)
        return text

    def config_unset(self, key: str) -> bool:
        """Forget KEY's stored value (its default applies again); whether there was one."""
        config.check_key(key)
        return self.store.config_unset(key)

    # -- enqueue ---------------------------------------------------------------------------

    def _defaults(self) -> dict:
        values = self.settings()
        return {"max-retries": int(values["max-retries"]), "job-timeout": values["job-timeout"]}

    def enqueue(self, spec: dict) -> str:
        """Validate one spec (a dict as decoded from JSON, SPEC §2 and §7 fields) and add it;
        returns the job id (that of the unfinished job holding its unique_key, if one does:
        see add). SpecError for a bad spec, DuplicateJob for an id in use, DependencyError
        for an `after` that cannot be waited for; nothing is written then.

            job_id = queue.enqueue({"command": "make test", "queue": "ci", "max_retries": 1})
        """
        return self.add(spec).id

    def enqueue_json(self, text: str) -> str:
        """Enqueue one spec given as JSON text (SPEC §2); returns the job id."""
        return self.add_json(text).id

    def enqueue_lines(self, lines: Iterable[str]) -> list[str]:
        """Bulk enqueue: one JSON spec a line, blank lines skipped, all or nothing; the ids,
        one per spec."""
        return [added.id for added in self.add_lines(lines)]

    def add(self, spec: dict) -> Enqueued:
        """enqueue(), saying also whether the job was there already (SPEC §7 unique jobs)."""
        if not isinstance(spec, dict):
            raise SpecError(f"a job spec must be a dict (a JSON object), got {type(spec).__name__}")
        return self._added([build_spec(spec, self._defaults())])[0]

    def add_json(self, text: str) -> Enqueued:
        """enqueue_json(), saying also whether the job was there already."""
        return self.add(parse_spec_json(text))

    def add_lines(self, lines: Iterable[str]) -> list[Enqueued]:
        """enqueue_lines(), saying for each spec whether its job was there already (its key
        held by an unfinished job, or by an earlier line)."""
        defaults = self._defaults()
        specs: list[JobSpec] = []
        line_of: dict[str, int] = {}  # id -> the line that gave it
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                spec = build_spec(parse_spec_json(line), defaults)
            except SpecError as exc:
                raise BulkSpecError(f"line {number}: {exc}; nothing was enqueued") from None
            if spec.id in line_of:
                raise BulkSpecError(
                    f"line {number}: id {spec.id!r} is also on line {line_of[spec.id]}; "
                    "nothing was enqueued"
                )
            line_of[spec.id] = number
            specs.append(spec)
        if not specs:
            return []
        try:
            return self._added(specs)
        except DuplicateJob as exc:
            raise BulkSpecError(
                f"line {line_of[exc.job_id]}: {exc}; nothing was enqueued"
            ) from None

    def _added(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        # The store gives, for a spec whose unique_key is taken, the id of the job holding it
        # in place of the spec's own: nothing was written for that spec.
        ids = self.store.add(specs)
        return [
            Enqueued(job_id, job_id != spec.id) for spec, job_id in zip(specs, ids, strict=True)
        ]

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str, with_runs: bool = False) -> Job:
        """One job (JobNotFound if there is none), with its runs if asked."""
        return self.store.get(_job_id(job_id), with_runs=with_runs)

    def list_jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs, filtered by state and queue, at most `limit` (None: all), in `list` order,
        past the first `offset` of them (a page of the dashboard). QueueError for a state that
        does not exist."""
        if state is not None:
            try:
                state = JobState(state).value
            except ValueError:
                states = ", ".join(s.value for s in JobState)
                raise QueueError(f"unknown state {state!r} (one of: {states})") from None
        return self.store.list_jobs(state=state, queue=queue, limit=limit, offset=offset)

    def status(self) -> Status:
        """The store, job counts by state and live workers (SPEC §4 `status`)."""
        lease = self.settings()["lease-seconds"]
        workers = self.live_workers(lease)
        return Status(
            self.store.description, self.store.counts(), workers, self.store.paused_queues()
        )

    # -- queues (SPEC §8) --------------------------------------------------------------------

    def queues(self) -> list:
        """Every queue that has jobs or settings, by name: store.queue_settings.QueueInfo
        (name, paused, limit, jobs by state, oldest_ready_age)."""
        return self.store.queues()

    def pause_queues(self, names: str | Sequence[str]) -> None:
        """Pause a queue or queues: no worker on any host claims their jobs until they are
        resumed; enqueue still works and running jobs finish. A queue need not have jobs yet.

            queue.pause_queues("reports")        # or ["reports", "mail"]
        """
        self.store.pause_queues([_queue_name(name) for name in _names(names)], True)

    def resume_queues(self, names: str | Sequence[str]) -> None:
        """Resume a queue or queues: their jobs are claimable at once (idle workers are
        woken)."""
        self.store.pause_queues([_queue_name(name) for name in _names(names)], False)

    def limit_queue(self, name: str, limit: int) -> None:
        """At most `limit` jobs of the queue run at the same moment across every worker and
        host; 0 removes the limit. QueueError if `limit` is negative."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < 2**63:
            raise QueueError(f"the limit must be a whole number ≥ 0 (0 = no limit), got {limit!r}")
        self.store.limit_queue(_queue_name(name), limit)

    def runs_per_minute(self, minutes: int = 60) -> list[int]:
        """Runs ended in each of the last `minutes` minutes, oldest first (the dashboard's
        activity); counted from the run history, so prune lowers it."""
        return self.store.runs_per_minute(minutes)

    def run_counts(self) -> list:
        """Runs ended so far by queue and outcome (store.queue_settings.RunCount): kept apart
        from the jobs, so prune never lowers them."""
        return self.store.run_counts()

    def run_durations(self) -> list:
        """Run times by queue as histograms (store.run_stats.RunDurations: cumulative buckets
        over RUN_DURATION_BOUNDS, count, total seconds), every closed run counted once, as in
        run_counts(); prune never lowers them."""
        return self.store.run_durations()

    def runs(self, job_id: str) -> list[Run]:
        """A job's runs, oldest first."""
        return self.store.runs(_job_id(job_id))

    def open_log(self, run: Run, chunk_size: int = 1 << 16) -> RunLog:
        """A run's full output from its log file, or the tail kept in the store when the file
        is gone or lives on another host (RunLog says which)."""
        from .runlogs import TAIL_BYTES, RunLog, open_run_log, read_chunks

        try:
            handle = open_run_log(run.log_path or "")
        except OSError:
            from .liveness import host_name

            tail = run.output_tail.encode()
            other_host = run.host if run.host != host_name() else None
            # The tail holds the last TAIL_BYTES of the output, decoded with replacement
            # characters, which never make it shorter: under that, it is the whole output.
            return RunLog(iter((tail,)), True, len(tail) >= TAIL_BYTES, other_host)
        return RunLog(read_chunks(handle, chunk_size), False, False, None)

    def output_tail(self, run: Run, limit: int | None = None) -> str:
        """The last `limit` bytes (default: as many as the store keeps) of a run's output,
        as text: read from its log file when this host has it (a running run's output so
        far), else the tail kept in the store. For the dashboard's job page."""
        from .runlogs import TAIL_BYTES, open_run_log

        limit = TAIL_BYTES if limit is None else limit
        try:
            with open_run_log(run.log_path or "") as handle:
                size = handle.seek(0, 2)
                handle.seek(max(0, size - limit))
                data = handle.read(limit)
        except OSError:
            return run.output_tail
        return data.decode("utf-8", errors="replace")

    def read_log(self, run: Run, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """A run's output as open_log() finds it, without saying where it came from."""
        yield from self.open_log(run, chunk_size).chunks

    # -- waiting ---------------------------------------------------------------------------

    def wait(
        self,
        job_ids: str | Sequence[str],
        timeout: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> WaitResult:
        """Block until every job of `job_ids` (one id, or a list) has finished or `timeout`
        seconds (None: no limit) have passed, changing nothing (`queuectl wait`, SPEC §7):
        see watching.wait_for. A worker must be running for the jobs to finish. JobNotFound
        for an unknown id. The result tells finished, failed and unfinished jobs apart:

            with Queue.open("jobs.db") as queue:
                result = queue.wait(["build", "test"], timeout=600)
            if result.timed_out:
                print("still running:", [job.id for job in result.unfinished])
            for job in result.failed:
                print(job.id, job.state, job.last_error)
        """
        from .watching import wait_for

        ids = [_job_id(job_id) for job_id in _names(job_ids)]
        return wait_for(self.store, ids, timeout, on_progress)

    def follow_log(self, job_id: str, chunk_size: int = 1 << 16) -> Iterator[tuple[Run, RunLog]]:
        """A job's runs, oldest first, each with its output as it is written, until the job
        has finished (`logs --follow`): see watching.follow."""
        from .watching import follow

        return follow(self.store, _job_id(job_id), self.open_log, chunk_size)

    # -- changes ---------------------------------------------------------------------------

    def cancel(self, job_id: str, wait: float = 5.0) -> Canceled:
        """Cancel a job. For a running one on this host, wait (up to `wait` seconds) until its
        worker has killed the command, so the caller sees it gone; if it is still there then
        (its worker was killed with the whole pool, say), kill it here: a canceled job has no
        worker left to do it."""
        previous = self.store.cancel(_job_id(job_id))
        if previous is not JobState.PROCESSING:
            return Canceled(previous, None)
        from .process_groups import end_canceled_run

        return Canceled(previous, end_canceled_run(job_id, self.store.runs(job_id), wait))

    def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        """Dead jobs (these, or all with None) back to pending, attempts 0; the ids retried."""
        return self.store.retry_dead(None if job_ids is None else [_job_id(i) for i in job_ids])

    # -- schedules (SPEC §8) ---------------------------------------------------------------

    def add_schedule(
        self,
        name: str,
        cron: str,
        command: str,
        *,
        tz: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        overlap: str | None = None,
    ) -> Schedule:
        """Add a schedule: from its first fire time after now, every fire time of `cron` (5
        fields or @hourly, @daily, @weekly, @monthly, @yearly, @annually) in the IANA zone
        `tz` (default UTC) becomes the job `<name>@<fire time in UTC>`, enqueued by a running
        worker. `max_retries` and `timeout` left None take the config's defaults at each fire
        time; `overlap="skip"` skips a fire time while the previous job is unfinished.
        SpecError for a bad value, ScheduleExists for a name in use; nothing is written then.

            with Queue.open("jobs.db") as queue:
                queue.add_schedule("backup", "30 2 * * *", "./backup.sh", tz="Europe/Berlin")
        """
        from .schedules import build_schedule

        schedule = build_schedule(
            name,
            cron,
            command,
            tz=tz,
            queue=queue,
            priority=priority,
            max_retries=max_retries,
            timeout=timeout,
            overlap=overlap,
            now=self.store.now(),
        )
        return self.store.add_schedule(schedule)

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        return self.store.list_schedules()

    def get_schedule(self, name: str) -> Schedule:
        """One schedule; ScheduleNotFound if there is none of that name."""
        return self.store.get_schedule(_schedule_name(name))

    def next_fire_times(self, schedule: Schedule, count: int = 5) -> list[float]:
        """The schedule's next `count` fire times after now (epoch seconds, the store's
        clock), whether or not it is paused."""
        from . import cron

        try:
            return cron.next_times(schedule.cron, schedule.tz, self.store.now(), count)
        except cron.CronError as exc:  # a zone this host's time zone database lacks
            raise QueueError(f"schedule {schedule.name!r}: {exc}") from None

    def pause_schedule(self, name: str) -> Schedule:
        """Stop enqueuing the schedule's fire times until it is resumed; ScheduleNotFound."""
        return self.store.pause_schedule(_schedule_name(name))

    def resume_schedule(self, name: str) -> Schedule:
        """Enqueue its fire times again from the first one after now (none of those that
        passed while it was paused); ScheduleNotFound."""
        return self.store.resume_schedule(_schedule_name(name))

    def remove_schedule(self, name: str) -> None:
        """Delete a schedule; the jobs it enqueued stay. ScheduleNotFound."""
        self.store.remove_schedule(_schedule_name(name))

    # -- retention (SPEC §8) ---------------------------------------------------------------

    def prune(
        self,
        older_than: float | str = DEFAULT_PRUNE_AGE,
        states: Iterable[JobState | str] = PRUNED_BY_DEFAULT,
        dry_run: bool = False,
        limit: int | None = None,
        on_batch: Callable[[Sequence[str]], object] | None = None,
    ) -> int:
        """Delete finished jobs whose last change is older than `older_than` (seconds, or a
        DURATION such as "7d"; 0: every finished job) and in one of `states` (completed,
        canceled, dead), with their run history and the log files of their runs on this host
        (`queuectl prune`). Returns how many were deleted, or with `dry_run` how many would be
        (nothing is deleted). At most `limit` jobs (None: all). `on_batch(ids)` is called
        after each batch of deletions commits; returning False stops there. A bad DURATION is
        a config.ConfigError, a state that is not finished a QueueError.

            with Queue.open("jobs.db") as queue:
                gone = queue.prune("30d", states=["completed", "canceled", "dead"])
        """
        seconds = config.parse_duration(older_than) if isinstance(older_than, str) else older_than
        if not seconds >= 0:  # also NaN
            raise config.ConfigError(f"older_than must be at least 0, got {older_than}")
        chosen = []
        for state in states:
            try:
                chosen.append(JobState(state))
            except ValueError:
                raise QueueError(f"unknown state {state!r}") from None
            if chosen[-1] not in FINISHED_STATES:
                finished = ", ".join(sorted(s.value for s in FINISHED_STATES))
                raise QueueError(f"prune deletes finished jobs ({finished}), not {state} ones")
        return self.store.prune_finished(float(seconds), chosen, limit, dry_run, on_batch)

    # -- workers (worker_rows.py) ---------------------------------------------------------

    def live_workers(self, lease_seconds: float) -> list[WorkerInfo]:
        """Workers whose lease is current, less those on this host whose process is gone (a
        pool killed with kill -9 leaves its rows behind until the lease runs out)."""
        from .worker_rows import live_workers

        return live_workers(self.store, lease_seconds)

    def request_stop(self) -> list[str]:
        """Ask every live worker to stop (`worker stop`); returns the ids asked."""
        from .worker_rows import request_stop

        return request_stop(self.store, self.settings()["lease-seconds"])

    def wait_for_workers_exit(self, worker_ids: Sequence[str], timeout: float) -> list[str]:
        """Wait until the given workers are gone; returns those still running at the timeout."""
        from .worker_rows import wait_for_exit

        return wait_for_exit(self.store, worker_ids, timeout, self.settings()["lease-seconds"])

    def away_workers(self) -> dict[str, float]:
        """Workers whose lease ran out but whose row is still there (not known to be dead): cut
        off, frozen, or died on another host. With how long each has been silent. A stop asked
        for now applies to them if they come back (SPEC §5)."""
        from .worker_rows import away_workers

        return away_workers(self.store, self.settings()["lease-seconds"])

    def unreachable(self, worker_ids: Sequence[str]) -> dict[str, float]:
        """Of these workers, those not heard from for several heartbeats (a partition, a
        frozen host), with how many seconds each has been silent. Their stop request stays
        in the store: they obey it when they reach it again."""
        from .worker_rows import unreachable

        return unreachable(self.store, worker_ids, self.settings()["lease-seconds"])

    # -- SPEC §10 names ----------------------------------------------------------------------
    # Last in the class: a method called `list` would hide the builtin from annotations below.

    def retry(self, *job_ids: str | Sequence[str], all: bool = False) -> list[str]:
        """`dlq retry`: dead jobs back to `pending`, attempts 0, due now; their run history is
        kept. Give ids (`retry("a", "b")` or `retry(["a", "b"])`) or `all=True`, not both;
        returns the ids retried. JobNotFound for an unknown id, InvalidTransition for a job
        that is not dead (or whose unique_key another unfinished job now holds); nothing is
        retried then.

            for job in queue.list(state="dead"):
                print(job.id, job.last_error)
            queue.retry(all=True)
        """
        ids = [item for group in job_ids for item in _names(group)]
        if all == bool(ids):
            raise QueueError("give job ids or all=True (one of the two)")
        return self.retry_dead(None if all else ids)

    def list(
        self, state: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """`queuectl list`: jobs, oldest first, filtered by state (a JobState or its name) and
        queue, at most `limit` of them (None or 0: all, as `--limit 0`). QueueError for an
        unknown state, a queue name no job can have, or a limit that is not a whole number
        ≥ 0.

            for job in queue.list(state="failed", queue="mail", limit=20):
                print(job.id, job.attempts, job.last_error)
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise QueueError(f"the limit must be a whole number ≥ 0 (0 = all), got {limit!r}")
        return self.list_jobs(
            state=state,
            queue=None if queue is None else _queue_name(queue),
            limit=None if not limit or limit >= INT64_MAX else limit,
        )


def _looked_up(value: object, what: str, missing: Callable[[str], QueueError]) -> str:
    """A job id or schedule name to look up, checked as the CLI checks its arguments, so that
    both backends answer alike: SpecError for what is no text at all, `missing` for a name no
    store can hold (a NUL), which therefore names nothing."""
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string, got {type_name(value)}")
    check_encodable(value, what)
    if "\x00" in value:
        raise missing(value)
    return value


def _job_id(value: object) -> str:
    return _looked_up(value, "job id", JobNotFound)


def _schedule_name(value: object) -> str:
    return _looked_up(value, "schedule name", ScheduleNotFound)


def _names(names: str | Sequence[str]) -> list[str]:
    """One name or several, as a list: a lone string is one name, not its characters (and
    anything else that is no list of names is one, for the caller's check to refuse)."""
    return list(names) if isinstance(names, Iterable) and not isinstance(names, str) else [names]


def _queue_name(name: str) -> str:
    """A queue name as a job spec's `queue` field must be (QueueError otherwise)."""
    try:
        return check_name(name, "queue", MAX_QUEUE_LENGTH)
    except SpecError as exc:
        raise QueueError(str(exc)) from None
