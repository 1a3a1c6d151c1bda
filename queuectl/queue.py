"""What to do: the operations behind every CLI command, usable from Python as well.

from queuectl import Queue
with Queue.open("jobs.db") as queue:
    job_id = queue.enqueue({"command": "echo hello"})
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from . import config
from .errors import QueueError
from .models import Job, JobSpec, JobState, Run, SpecError, build_spec, parse_spec_json
from .store import Store, WorkerInfo, open_store


class Status(NamedTuple):
    store: str
    jobs: dict[str, int]
    workers: list[WorkerInfo]


class BulkSpecError(QueueError):
    """A bad line in bulk input; nothing was enqueued."""


class Queue:
    """A queue system: one store, its settings, and the operations users ask for."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def open(cls, target: str | None = None) -> Queue:
        return cls(open_store(target))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- settings --------------------------------------------------------------------------

    def settings(self) -> dict:
        """Typed config values in effect for this process (environment overrides win)."""
        return config.settings(self.store.config_items())

    def config_entries(self) -> list[config.Entry]:
        return config.resolve(self.store.config_items())

    def config_get(self, key: str) -> str:
        config.check_key(key)
        for entry in self.config_entries():
            if entry.key == key:
                return entry.value
        raise AssertionError(key)  # every known key has an entry

    def config_set(self, key: str, value: str) -> None:
        config.parse_value(key, value)
        self.store.config_set(key, value.strip())

    def config_unset(self, key: str) -> bool:
        config.check_key(key)
        return self.store.config_unset(key)

    # -- enqueue ---------------------------------------------------------------------------

    def _defaults(self) -> dict:
        values = self.settings()
        return {"max-retries": int(values["max-retries"]), "job-timeout": values["job-timeout"]}

    def enqueue(self, spec: dict) -> str:
        """Validate one spec (a dict as decoded from JSON) and add it; returns the job id."""
        return self.store.add([build_spec(spec, self._defaults())])[0]

    def enqueue_json(self, text: str) -> str:
        return self.enqueue(parse_spec_json(text))

    def enqueue_lines(self, lines: Iterable[str]) -> list[str]:
        """Bulk enqueue: one JSON spec a line, blank lines skipped, all or nothing."""
        defaults = self._defaults()
        specs: list[JobSpec] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                specs.append(build_spec(parse_spec_json(line), defaults))
            except SpecError as exc:
                raise BulkSpecError(f"line {number}: {exc}; nothing was enqueued") from None
        if not specs:
            return []
        return self.store.add(specs)

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str, with_runs: bool = False) -> Job:
        return self.store.get(job_id, with_runs=with_runs)

    def list_jobs(
        self, state: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Job]:
        return self.store.list_jobs(state=state, queue=queue, limit=limit)

    def status(self) -> Status:
        lease = self.settings()["lease-seconds"]
        return Status(self.store.description, self.store.counts(), self.store.live_workers(lease))

    def runs(self, job_id: str) -> list[Run]:
        return self.store.runs(job_id)

    def read_log(self, run: Run, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """A run's full output from its log file, or the tail kept in the store when the file
        is gone or lives on another host."""
        try:
            with open(run.log_path or "", "rb") as handle:
                while chunk := handle.read(chunk_size):
                    yield chunk
        except OSError:
            yield run.output_tail.encode()

    # -- changes ---------------------------------------------------------------------------

    def cancel(self, job_id: str, wait: float = 5.0) -> JobState:
        """Cancel a job. For a running one on this host, wait (up to `wait` seconds) until its
        worker has killed the command, so the caller sees it gone."""
        previous = self.store.cancel(job_id)
        if previous is JobState.PROCESSING and wait > 0:
            from .runner import group_alive, host_name

            runs = self.store.runs(job_id)
            if runs and runs[-1].pid and runs[-1].host == host_name():
                deadline = time.monotonic() + wait
                while group_alive(runs[-1].pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        return previous

    def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        return self.store.retry_dead(job_ids)

    # -- workers ---------------------------------------------------------------------------

    def request_stop(self) -> list[str]:
        return self.store.request_stop(self.settings()["lease-seconds"])

    def wait_for_workers_exit(self, worker_ids: Sequence[str], timeout: float) -> list[str]:
        """Wait until the given workers are gone; returns those still running at the timeout."""
        lease = self.settings()["lease-seconds"]
        deadline = time.monotonic() + timeout
        waiting = set(worker_ids)
        while True:
            live = {worker.id for worker in self.store.live_workers(lease)}
            waiting &= live
            if not waiting or time.monotonic() >= deadline:
                return sorted(waiting)
            time.sleep(0.1)
