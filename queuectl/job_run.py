"""Running one claimed job under its lease: start its command, watch it (timeout, cancel, the
fence), renew the lease on a LeaseKeeper thread, and record the outcome.

The worker (worker.py) makes one JobRun per claim; what it needs from the worker besides the
store and the event log (the stop flags, the retried store calls, the retry rule, the next
claim) it asks through RunOwner, so this module never imports worker.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from .eventlog import EventLog
from .faults import crash_point
from .lease import CHECK_SECONDS, LeaseKeeper, fencing
from .models import Claim, Outcome, RunResult, heartbeat_interval, log_file_name
from .process_groups import kill_orphaned_run
from .runlogs import LogFolder
from .runner import RunningCommand
from .store import ClaimRequest, Finished, Store

# A running job's pid is recorded (and its lease first extended) this long after it starts.
FIRST_BEAT_SECONDS = 0.05

T = TypeVar("T")


class RunOwner(Protocol):
    """The worker, as a run sees it."""

    # A forced stop (a second stop request): the command is killed at once, retried store
    # calls are given up.
    forced: bool

    def request_stop(self, why: str) -> None:
        """Stop claiming after the current job (the store asked for a stop)."""

    def retrying(self, action: Callable[[], T], while_stopping: bool = False) -> T | None:
        """Run a store call until it succeeds; None when a stop abandons it."""

    def retry_policy(self, attempts: int, max_retries: int) -> float | None:
        """The delay before a failed run's next attempt; None: it is dead."""

    def next_claim_request(self) -> ClaimRequest | None:
        """What to claim along with the outcome, if anything."""

    def tick_schedules(self) -> None:
        """Fire due schedules if it is time to look (called between lease renewals)."""


class JobRun:
    """One claim, run to its end and its outcome recorded (`run`), from the worker's thread."""

    def __init__(
        self,
        claim: Claim,
        store: Store,
        owner: RunOwner,
        events: EventLog,
        logs: LogFolder,
        lease_seconds: float,
        claim_sent: float | None,
    ) -> None:
        """`claim_sent`: the monotonic time the call that made the claim was sent, which the
        lease counts from; None when not known (a claim handed in by a caller of
        Worker.run_claim): the command's start, the best known, is taken."""
        self.claim = claim
        self.store = store
        self.owner = owner
        self.events = events
        self.logs = logs
        self.lease = lease_seconds
        self.claim_sent = claim_sent
        # When the outcome's call that may also claim the next job was sent: its lease counts
        # from there.
        self.next_claim_sent = 0.0
        self._running: RunningCommand | None = None

    def run(self) -> Claim | None:
        """Run the job to its end, heartbeating from this same thread: the wait for the
        command wakes for each heartbeat, the timeout, or the command's exit. Returns the
        next job, claimed in the transaction that records this one's outcome, if any."""
        claim, job = self.claim, self.claim.job
        if self.events.enabled:
            self.events.say(f"{job.id}: started attempt {claim.attempt}: {_one_line(job.command)}")
        log_name = log_file_name(job.id, claim.run_id, claim.worker_id)
        log_path = os.path.join(self.logs.path, log_name)
        extra_env = {"QUEUECTL_JOB_ID": job.id, "QUEUECTL_ATTEMPT": str(claim.attempt)}
        running = RunningCommand(
            job.command, extra_env, log_path, self.logs, cwd=job.cwd, job_env=job.env
        )
        self._running = running
        crash_point("after-start")
        try:
            # A forced stop that came before the command was known here: kill_now missed it.
            if self.owner.forced:
                running.kill_now(Outcome.KILLED, "killed: the worker was forced to stop")
            self._watch(running)
            result = running.result()
        finally:
            self._running = None
        crash_point("after-exit")
        # How long it ran, not how long until its outcome could be recorded (an outage).
        seconds = result.seconds if result.seconds is not None else 0.0
        next_claim, held = self._record(result, seconds)
        if not held and running.pid is not None:
            # Canceled (or its lease lost) while the command ran, and it ended before the
            # heartbeat that would have killed it: what it started may still run. Kill that
            # too, as a cancel must (SPEC §4), so it never overlaps with a retry.
            kill_orphaned_run(running.pid, job.id)
        return next_claim

    def kill_now(self) -> None:
        """A forced stop: kill the command at once, if it runs. Safe in a signal handler."""
        running = self._running
        if running is not None:
            running.kill_now(Outcome.KILLED, "killed: the worker was forced to stop")

    def _watch(self, running: RunningCommand) -> None:
        """Until the command exits: kill it on timeout, on cancel or a lost lease, and before
        its lease can run out while renewals fail (fencing: see lease.py). Renewals run on a
        LeaseKeeper thread, started FIRST_BEAT_SECONDS in: shorter jobs cost no store write
        here, and nothing the store does can hold up a kill."""
        lease = self.lease
        interval = heartbeat_interval(lease)
        timeout = self.claim.job.timeout
        deadline = running.started + timeout if timeout > 0 else None
        claimed_at = self.claim_sent or running.started
        keeper: LeaseKeeper | None = None
        keeper_due = running.started + min(FIRST_BEAT_SECONDS, interval)
        fenced = False
        try:
            while True:
                fence_at = keeper.fence_at() if keeper else claimed_at + fencing(lease).fence_after
                wake = [fence_at] if not fenced else []
                wake.append(keeper_due if keeper is None else time.monotonic() + CHECK_SECONDS)
                if deadline is not None:
                    wake.append(deadline)
                if running.wait_for_exit(max(0.0, min(wake) - time.monotonic())):
                    return
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    deadline = None
                    running.kill(Outcome.TIMED_OUT, f"timed out after {timeout:g}s")
                    continue
                if keeper is None and now >= keeper_due:
                    keeper = self._keep_lease(running, interval, claimed_at)
                if keeper is not None and keeper.lost:
                    running.kill(
                        Outcome.KILLED, "stopped: the job was canceled or its lease was lost"
                    )
                    continue
                if not fenced and now >= fence_at:
                    fenced = True
                    silent = now - (keeper.renewed_at if keeper else claimed_at)
                    self.events.say(
                        f"{self.claim.job.id}: lease not renewed for {silent:.1f}s: killing the"
                        " command before the lease runs out"
                    )
                    running.kill(
                        Outcome.KILLED,
                        f"killed: its lease could not be renewed for {silent:.1f}s",
                        grace=fencing(lease).grace,
                    )
        finally:
            if keeper is not None:
                keeper.stop()

    def _keep_lease(
        self, running: RunningCommand, interval: float, claimed_at: float
    ) -> LeaseKeeper:
        claim = self.claim

        def first() -> None:
            # Lets a rescuer on this host kill what a crashed pool left running.
            if running.pid is not None:
                self.store.set_run_pid(claim, running.pid)
                running.publish_log()  # a run this long may be followed with `logs`

        keeper = LeaseKeeper(
            self.store,
            claim,
            claim.worker_id,
            self.lease,
            interval,
            renewed_at=claimed_at,
            first=first,
            on_stop_request=lambda: self.owner.request_stop("asked to stop through the store"),
            say=self.events.say,
            chores=self.owner.tick_schedules,
        )
        keeper.start()
        return keeper

    def _record(self, result: RunResult, seconds: float) -> tuple[Claim | None, bool]:
        """Record the outcome; returns the next claim and whether this claim was still held."""
        claim, job = self.claim, self.claim.job
        delay = (
            None if result.succeeded else self.owner.retry_policy(claim.attempt, job.max_retries)
        )
        finished = self.owner.retrying(lambda: self._finish(result, delay), while_stopping=True)
        if result.succeeded:
            verdict = f"completed in {seconds:.2f}s"
        else:
            then = "dead (retries exhausted)" if delay is None else f"retry in {delay:g}s"
            verdict = f"failed: {result.error}; {then}"
        if finished is not None and not finished.held:
            verdict = "stopped: canceled, or its lease expired and it was requeued"
        self.events.say(f"{job.id}: {verdict}")
        if finished is None:
            return None, True  # a forced stop abandoned it: not known to be lost
        return finished.next_claim, finished.held

    def _finish(self, result: RunResult, delay: float | None) -> Finished:
        self.next_claim_sent = time.monotonic()  # for the next claim, if this call makes one
        return self.store.finish(self.claim, result, delay, self.owner.next_claim_request())


def _one_line(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
