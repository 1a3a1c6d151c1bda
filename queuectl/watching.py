"""Watching jobs from a script: `wait` until they finish, and `logs --follow` (SPEC §7).

A job's end wakes nobody (the worker that records it notifies only when there is new work for
workers), so both poll the store, one indexed read per look; POLL_SECONDS keeps them within the
half second SPEC §7 allows at no measurable CPU. Queue.wait and Queue.follow_log are the API.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, NamedTuple

from .errors import QueueError
from .liveness import host_name
from .models import ENDED_BADLY, FINISHED_STATES, Job, Run
from .runlogs import RunLog, open_run_log
from .store import Store


class WaitResult(NamedTuple):
    """What `Queue.wait` saw: every job named, as last read (in the order first named)."""

    jobs: dict[str, Job]
    timed_out: bool  # the timeout passed first: some jobs are not finished

    @property
    def unfinished(self) -> list[Job]:
        return [job for job in self.jobs.values() if job.state not in FINISHED_STATES]

    @property
    def failed(self) -> list[Job]:
        """The jobs that ended `dead` or `canceled`."""
        return [job for job in self.jobs.values() if job.state in ENDED_BADLY]


# How often `wait` and `logs --follow` look at the store (see the module docstring).
POLL_SECONDS = 0.2
# With a progress bar, `wait` also looks at every unfinished job, not only the first, at most
# this often (and no more than one job per PROGRESS_SWEEP_PER_JOB seconds on average).
PROGRESS_SWEEP_SECONDS = 1.0
PROGRESS_SWEEP_PER_JOB = 0.005


def wait_for(
    store: Store,
    job_ids: Sequence[str],
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> WaitResult:
    """Block until every job of `job_ids` has finished (`completed`, `dead` or `canceled`)
    or `timeout` seconds (None: no limit) have passed, changing nothing; returns each job
    as last read (every one read again at the timeout) and whether the timeout passed
    first (`queuectl wait`, SPEC §7).

    Every id is read first: JobNotFound, before any waiting, for one that does not exist.
    Then the jobs are read every POLL_SECONDS in the order given, only the first
    unfinished one each time (an idle wait costs one indexed read per look, however many
    jobs) and the next ones as soon as it has finished: the call returns within about
    POLL_SECONDS of the last job's end. `on_progress(finished, total)` is called at the
    start and whenever the count changes; with it, every unfinished job is also read about
    once a second, so that the count keeps up with jobs that finish out of order. (An
    example of its use: Queue.wait.)
    """
    jobs = {job_id: store.get(job_id) for job_id in dict.fromkeys(job_ids)}
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = deque(job.id for job in jobs.values() if job.state not in FINISHED_STATES)
    total = len(jobs)
    if on_progress is not None:
        on_progress(total - len(pending), total)
    sweep_every = max(PROGRESS_SWEEP_SECONDS, total * PROGRESS_SWEEP_PER_JOB)
    next_sweep = time.monotonic() + sweep_every
    while pending:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            # Read each one again, so that the result says which are still unfinished.
            pending = deque(job_id for job_id in pending if not _reread(store, jobs, job_id))
            return WaitResult(jobs, bool(pending))
        time.sleep(POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - now))
        before = len(pending)
        while pending and _reread(store, jobs, pending[0]):
            pending.popleft()
        if on_progress is not None and pending and time.monotonic() >= next_sweep:
            pending = deque(job_id for job_id in pending if not _reread(store, jobs, job_id))
            next_sweep = time.monotonic() + sweep_every
        if on_progress is not None and len(pending) != before:
            on_progress(total - len(pending), total)
    return WaitResult(jobs, False)


def _reread(store: Store, jobs: dict[str, Job], job_id: str) -> bool:
    """Read one job again into `jobs`; whether it has finished."""
    job = jobs[job_id] = store.get(job_id)
    return job.state in FINISHED_STATES


def follow(
    store: Store, job_id: str, open_log: Callable[[Run, int], RunLog], chunk_size: int = 1 << 16
) -> Iterator[tuple[Run, RunLog]]:
    """A job's runs, oldest first, each with its output as it is written, until the job
    has finished (`logs --follow`); JobNotFound at once for an unknown id. The caller reads
    the job's final state with store.get() afterwards.

    A run on this host comes as soon as its log file has a name (its command has run for
    a moment, or has ended); its chunks follow the file, waiting at its end, until the run
    has ended and all of it is read. Read them all before asking for the next run. A run
    on another host comes when it has ended, with the tail the store keeps (open_log).
    Nothing but one chunk is held in memory; while there is nothing new, the file and the
    store are looked at every POLL_SECONDS."""
    here = host_name()
    shown = 0  # runs yielded so far
    while True:
        job = store.get(job_id, with_runs=True)
        if shown < len(job.runs):
            run = job.runs[shown]
            if run.finished_at is not None:  # ended: all of its output is there to read
                shown += 1
                yield run, open_log(run, chunk_size)
                continue
            # A run's pid is recorded just before its log file gets its name: until then
            # the file is anonymous, or a stale one of a deleted store holds the name.
            handle = _open_growing(run) if run.host == here and run.pid is not None else None
            if handle is not None:
                shown += 1
                chunks = _follow_file(store, job_id, run.run_id, handle, chunk_size)
                yield run, RunLog(chunks, False, False, None)
                continue
        elif job.state in FINISHED_STATES:
            return
        time.sleep(POLL_SECONDS)


def _follow_file(
    store: Store, job_id: str, run_id: int, handle: BinaryIO, chunk_size: int
) -> Iterator[bytes]:
    """A running run's log file, chunk by chunk as it grows, to its end once the run has
    ended (what is written after that, by a process that left its group, is not shown)."""
    ended = False
    with handle:
        while True:
            try:
                chunk = handle.read(chunk_size)
            except OSError as exc:
                raise QueueError(
                    f"cannot read the log file {handle.name}: {exc.strerror}"
                ) from None
            if chunk:
                yield chunk
            elif ended:
                return
            else:
                time.sleep(POLL_SECONDS)
                # Read once more after the end is seen: the last output may be just in.
                ended = all(
                    run.finished_at is not None
                    for run in store.runs(job_id)
                    if run.run_id == run_id
                )


def _open_growing(run: Run) -> BinaryIO | None:
    """The log file of a run on this host, open for reading from its start; None while it
    has no name yet."""
    try:
        return open_run_log(run.log_path or "")
    except OSError:
        return None
