"""Domain errors: one hierarchy under QueueError. The CLI turns each into a one-line message
and exit status 1; Python callers catch QueueError (or a subclass) for every mistake they can
act on. The whole tree, every class importable from `queuectl` itself (docs/api.md):

    QueueError
    ├── JobNotFound          no job with that id
    ├── DuplicateJob         a job with that id exists already
    ├── DependencyError      an `after` that cannot be waited for
    ├── InvalidTransition    the job's state does not allow it (cancel a finished job, …)
    ├── StoreError           the store cannot be used (missing, unreachable, read-only, corrupt)
    │   └── StoreBusy        locked by another process for longer than we wait
    ├── ScheduleNotFound     no schedule of that name
    ├── ScheduleExists       a schedule of that name exists already
    ├── BulkSpecError        a bad line of a bulk enqueue (queue.py)
    ├── SpecError            a bad job spec or name (specs.py; also a ValueError)
    ├── ConfigError          a bad config key or value, a bad DURATION (config.py; ValueError)
    └── CronError            a bad cron expression or time zone (cron.py; ValueError)

The last three live beside the rules that raise them and are also ValueErrors, as they were
before the hierarchy was one."""

from __future__ import annotations


class QueueError(Exception):
    """Base class of every error a user can act on."""


class JobNotFound(QueueError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class DuplicateJob(QueueError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class DependencyError(QueueError):
    """An `after` that cannot be waited for: an unknown job, one on a later line of a batch,
    or one that already ended dead or canceled (SPEC §7); nothing was written."""


class InvalidTransition(QueueError):
    """The job is in a state that does not allow the requested change."""


class StoreError(QueueError):
    """The store cannot be used: missing, unreadable, read-only, locked or corrupt."""


class StoreReadOnly(StoreError):
    """The store answers reads but refuses writes here: a standby server, a role that may
    only read, a read-only file."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than we wait."""


class ScheduleNotFound(QueueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class ScheduleExists(QueueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} already exists; nothing was changed")
        self.name = name
