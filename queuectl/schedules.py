"""Schedules (SPEC §8): what one is, the checks on what a user gives for one, and the jobs its
fire times become. Pure, like specs.py, whose checks of a job's fields it reuses: a schedule's
queue, priority, max_retries and timeout are refused exactly as a job spec's would be.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

from . import cron
from .models import DEFAULT_QUEUE, JobSpec, iso
from .specs import SpecError, build_spec, check_name

MAX_NAME_LENGTH = 100
OVERLAPS = ("allow", "skip")
DEFAULT_ZONE = "UTC"
# The fields of `schedule list --json` and `schedule show --json`, in order (SPEC §8).
JSON_FIELDS = (
    "name",
    "cron",
    "tz",
    "command",
    "queue",
    "priority",
    "max_retries",
    "timeout",
    "overlap",
    "paused",
    "next_run_at",
    "last_enqueued_at",
)


class Schedule(NamedTuple):
    """A stored schedule. `max_retries` and `timeout` are None when the config's default in
    effect at each fire time applies; `next_run_at` is the next fire time to enqueue (None
    while paused)."""

    name: str
    cron: str
    tz: str
    command: str
    queue: str
    priority: int
    max_retries: int | None
    timeout: float | None
    overlap: str
    paused: bool
    created_at: float
    next_run_at: float | None
    last_enqueued_at: float | None
    last_job_id: str | None

    @classmethod
    def from_row(cls, row: tuple) -> Schedule:
        """From a row of the store's schedule columns, in field order."""
        return cls(*row[:9], bool(row[9]), *row[10:])

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `schedule list --json` (times as ISO-8601 UTC, as for jobs)."""
        data = {name: getattr(self, name) for name in JSON_FIELDS}
        data["next_run_at"] = iso(self.next_run_at)
        data["last_enqueued_at"] = iso(self.last_enqueued_at)
        return data


class Firing(NamedTuple):
    """What one look for due schedules did (Store.fire_schedules)."""

    enqueued: list[str]  # the ids of the jobs it added
    skipped: list[str]  # the ids of fire times it skipped (overlap skip, or the id was taken)
    errors: list[str]  # schedules this host could not compute, each said in a sentence
    wait: float | None  # seconds until the next fire time of any schedule; None: none known


def check_schedule_name(name: Any) -> str:
    """1–100 characters, no control characters, no `@` (it separates the name from the fire
    time in the ids of its jobs)."""
    check_name(name, "schedule name", MAX_NAME_LENGTH)
    if "@" in name:
        raise SpecError(f"schedule name {name!r} must not contain '@'")
    return name


def job_id(name: str, fire_time: float) -> str:
    """The id of the job for one fire time: `<NAME>@YYYY-MM-DDTHH:MM:SSZ` (UTC)."""
    moment = datetime.fromtimestamp(fire_time, tz=timezone.utc)
    return f"{name}@{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}"


class ScheduleCronError(SpecError, cron.CronError):
    """A schedule's cron expression or time zone that cannot be used. A CronError, as
    docs/api.md promises for a bad expression or zone, and a SpecError, as every other bad
    field of a schedule is, so callers catching either (or QueueError) see it."""


def build_schedule(
    name: Any,
    expression: Any,
    command: Any,
    *,
    tz: Any = None,
    queue: Any = None,
    priority: Any = None,
    max_retries: Any = None,
    timeout: Any = None,
    overlap: Any = None,
    now: float,
) -> Schedule:
    """Check what a user gives for a new schedule; SpecError names the first problem. The
    result is not paused, created at `now`, first due at its first fire time after `now`."""
    name = check_schedule_name(name)
    if not isinstance(expression, str):
        raise SpecError("the cron expression must be a string")
    zone_name = DEFAULT_ZONE if tz is None else tz
    if not isinstance(zone_name, str):
        raise SpecError("the time zone must be a string")
    try:
        expression = cron.normalized(expression)
        first = cron.check(expression, zone_name, now)
    except cron.CronError as exc:
        raise ScheduleCronError(str(exc)) from None
    overlap = "allow" if overlap is None else overlap
    if overlap not in OVERLAPS:
        raise SpecError(f"overlap must be one of {', '.join(OVERLAPS)}, got {overlap!r}")
    # The job spec of a fire time, checked now as `enqueue` would check it: a bad queue,
    # priority, max_retries or timeout is refused here rather than at every fire time.
    data = {"id": job_id(name, first), "command": command, "queue": queue, "priority": priority}
    data.update(max_retries=max_retries, timeout=timeout)
    checked = build_spec(data, {"max-retries": 0, "job-timeout": 0.0})
    return Schedule(
        name=name,
        cron=expression,
        tz=zone_name,
        command=checked.command,
        queue=checked.queue,
        priority=checked.priority,
        max_retries=None if max_retries is None else checked.max_retries,
        timeout=None if timeout is None else checked.timeout,
        overlap=overlap,
        paused=False,
        created_at=now,
        next_run_at=first,
        last_enqueued_at=None,
        last_job_id=None,
    )


def job_spec(schedule: Schedule, fire_time: float, defaults: dict) -> JobSpec:
    """The job of one fire time: the schedule's command, queue and priority; its max_retries
    and timeout, or the config's defaults in effect now (`defaults`: `max-retries`,
    `job-timeout`) where it has none."""
    max_retries = schedule.max_retries
    timeout = schedule.timeout
    return JobSpec(
        id=job_id(schedule.name, fire_time),
        command=schedule.command,
        max_retries=int(defaults["max-retries"]) if max_retries is None else max_retries,
        priority=schedule.priority,
        queue=schedule.queue or DEFAULT_QUEUE,
        timeout=float(defaults["job-timeout"]) if timeout is None else timeout,
        run_at=fire_time,  # due at its fire time, which is past or now when it is added
        delay=0.0,
        after=(),
        unique_key=None,
        cwd=None,
        env=None,
    )
