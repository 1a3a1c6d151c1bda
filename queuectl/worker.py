"""One worker process: its loop (maintenance, claims, the idle wait, store calls retried
through outages, stop requests) and its process entry. Each claim is run by job_run.JobRun.

Started by the supervisor as `python -m queuectl.worker --db TARGET …` (spawn-safe: a fresh
interpreter, no fork of the CLI). It never imports click, to keep its memory small.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from . import config
from .errors import StoreError
from .eventlog import EventLog, write_line
from .faults import crash_point
from .job_run import JobRun
from .liveness import host_name
from .models import PRUNED_BY_DEFAULT, Claim, heartbeat_interval, retry_delay
from .process_groups import kill_lost_run
from .runlogs import LogFolder
from .scheduling import ScheduleTicker
from .spawning import close_inherited_fds
from .stopping import (
    PARENT_DEATH_SIGNAL,
    STOP_SIGNALS,
    StopSignals,
    die_with_parent,
    signal_name,
    worker_copy_window,
)
from .store import ClaimRequest, Store, open_store

# Store errors (locked, read-only, disk full, a server outage) make the worker wait this long
# at most, then retry: short, so work is picked up again within a second of the store's return.
MAX_STORE_RETRY_SECONDS = 1.0
# PostgreSQL: no store call of a worker waits longer than this, whatever the network does (a
# silent partition blocks a socket with no limit): a renewal that hangs fails and is retried on
# a fresh connection, well inside the fence (lease.py). SQLite's waits are its busy timeout.
STORE_CALL_SECONDS = 3.0
# A pause between retries looks this often whether a stop was asked for (a signal does not cut
# a sleep short: PEP 475 resumes it).
PAUSE_SLICE_SECONDS = 0.05
# Retention (SPEC §8): one worker of the store, whichever takes the chore in the store first,
# prunes at most once a minute; each worker asks at most that often. A pass takes at most
# PRUNE_PASS_SECONDS of its time between jobs (a third of the lease if that is shorter: its
# registry heartbeat waits meanwhile); what is left goes in the next pass.
PRUNE_EVERY_SECONDS = 60.0
PRUNE_PASS_SECONDS = 5.0

T = TypeVar("T")


class Worker:
    """One worker: registers itself, claims jobs and runs each (JobRun) until stopped."""

    def __init__(
        self,
        store: Store,
        queues: Sequence[str] | None = None,
        burst: bool = False,
        worker_id: str | None = None,
        quiet: bool = False,
        supervisor: int | None = None,
    ) -> None:
        self.store = store
        self.queues = list(queues) if queues else None
        self.burst = burst
        # QUEUECTL_HOSTNAME: for containers whose host names repeat, and for tests that run
        # several "hosts" on one machine.
        self.host = host_name()
        # os.urandom, not secrets: the suffix only tells apart workers that reuse a pid.
        self.id = worker_id or f"{self.host}-{os.getpid()}-{os.urandom(3).hex()}"
        self.quiet = quiet
        self.events = EventLog(f"worker {self.id}", enabled=not quiet)
        self.stopping = False
        self.forced = False
        # The pid of the `worker start` that relays stop signals to this worker, if any.
        self.supervisor = supervisor
        self._stop_signals = StopSignals(worker_copy_window(supervisor))
        self._orphaned = False  # its supervisor died (see handle_parent_death)
        self._run: JobRun | None = None  # the claim being run, if any
        self._settings: dict = {}
        self._bad_setting: str | None = None  # the last bad stored setting said
        self._store_failing = False  # the last store call of the main loop failed
        self._said_waiting = False  # said that a stop waits for an outcome to be recorded
        # Monotonic time the call that made the current claim was sent (0: none): its lease
        # counts from there.
        self._claim_sent = 0.0
        self._next_maintenance = 0.0  # monotonic time of the next registry heartbeat and rescue
        self._next_prune = 0.0  # monotonic time this worker next asks to prune (retention)
        # Its runs' log files: the folder held open, and a spare empty file, from run to run.
        self._logs = LogFolder(os.fspath(store.log_dir))  # a string: joined once per job
        # Schedules (SPEC §8): every running worker fires them; burst workers do not.
        self._schedules = None if burst else ScheduleTicker(store, lambda: self._settings, self.say)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, in burst mode, until nothing is ready). Returns the exit code."""
        self.events.start()
        try:
            self._load_settings()
            self.retrying(lambda: self.store.register_worker(self.id, self.host, os.getpid()))
            self.say(f"started (pid {os.getpid()}, queues: {', '.join(self.queues or ['all'])})")
            try:
                self.retrying(self._maintain)
                self._loop()
            finally:
                self._unregister()
            self.say("stopped")
        finally:
            self._logs.close()
            self.events.close()
        return 1 if self.forced else 0

    def _unregister(self) -> None:
        if self._store_failing:
            # Stopping during an outage: no wait for a store that is not answering. The row
            # goes when its lease runs out, and on this host `status` drops it at once.
            self.say("not unregistered: the store is unreachable; its lease will run out")
            return
        try:
            self.store.unregister_worker(self.id)
        except StoreError as exc:
            self.say(f"could not unregister: {exc}")

    def _loop(self) -> None:
        self._next_maintenance = time.monotonic() + self._maintenance_interval()
        claim: Claim | None = None
        while True:
            if claim is None:
                # Between jobs: a held claim always runs first, even if a stop came meanwhile.
                if self.stopping:
                    break
                if time.monotonic() >= self._next_maintenance:
                    if self.retrying(self._maintain) is None:
                        continue
                    self._next_maintenance = time.monotonic() + self._maintenance_interval()
                    if self.stopping:
                        break
                self.tick_schedules()
                claim = self.retrying(self._claim)
            if claim is not None:
                claim = self.run_claim(claim)
                continue
            if self.burst:
                break
            self.retrying(lambda: self._wait_idle(self._next_maintenance))

    def _maintenance_interval(self) -> float:
        # Between jobs and while idle: the registry heartbeat, stop requests, rescue.
        return heartbeat_interval(self._settings["lease-seconds"])

    def _claim(self) -> Claim | None:
        self._claim_sent = time.monotonic()  # the lease of what it claims counts from here
        return self.store.claim(self._claim_request())

    def _claim_request(self) -> ClaimRequest:
        return ClaimRequest(self.id, self.host, self.queues, self._settings["lease-seconds"])

    def next_claim_request(self) -> ClaimRequest | None:
        """What to claim along with a run's outcome: nothing when stopping or when the registry
        heartbeat and rescue are due first (the loop then claims on its own)."""
        if self.stopping or time.monotonic() >= self._next_maintenance:
            return None
        if self._schedules is not None and self._schedules.due_in() == 0:
            return None  # a look for due schedules first (tick_schedules, between jobs)
        return self._claim_request()

    def _maintain(self) -> bool:
        """Registry heartbeat, stop requests, rescue of expired leases, fresh settings, and
        the store's bookkeeping (retention, job counts)."""
        self._load_settings()
        beat = self.store.heartbeat(self.id, self._settings["lease-seconds"], None)
        if beat.stop_requested:
            self.request_stop("asked to stop through the store")
        rescued = self.store.rescue_expired(self.retry_policy, self._settings["lease-seconds"])
        for job_id in rescued:
            self.say(f"requeued {job_id}: its worker went silent and its lease expired")
            self._kill_leftovers(job_id)
        self._prune_by_retention()
        # Jobs by queue and state stay quick to read for `queue list`, the dashboard and the
        # metrics, even when nobody reads them for weeks (PostgreSQL; nothing on SQLite).
        self.store.fold_job_counts()
        return True

    def tick_schedules(self) -> None:
        """Fire due schedules when it is time to look (scheduling.py): between jobs, while
        idle, and from a running job's lease thread. Store errors are the ticker's to say."""
        if self._schedules is not None and not self.stopping:
            self._schedules.tick()

    def _prune_by_retention(self) -> None:
        """With `retention` set, prune completed and canceled jobs older than it (SPEC §8), if
        this worker is the one of the store to do it this minute; in short batches, each its
        own transaction, so that the other workers' claims go on between them."""
        retention = self._settings["retention"]
        started = time.monotonic()
        if retention <= 0 or self.stopping or started < self._next_prune:
            return
        self._next_prune = started + PRUNE_EVERY_SECONDS
        if not self.store.claim_chore("retention", PRUNE_EVERY_SECONDS):
            return
        deadline = started + min(PRUNE_PASS_SECONDS, self._settings["lease-seconds"] / 3)
        pruned = self.store.prune_finished(
            retention,
            PRUNED_BY_DEFAULT,
            on_batch=lambda _ids: not self.stopping and time.monotonic() < deadline,
        )
        if pruned:
            self.say(f"pruned {pruned} jobs finished more than {retention:g} s ago (retention)")

    def _kill_leftovers(self, job_id: str) -> None:
        """If the lost run was on this host and its command still runs (the whole pool was
        killed), kill it before the job can run again, so two runs never overlap."""
        if kill_lost_run(job_id, self.store.runs(job_id), self.host, self._logs.path):
            self.say(f"{job_id}: killed the commands its lost run left behind")

    def _wait_idle(self, next_maintenance: float) -> None:
        """Sleep until work may have arrived, the next job is due, or maintenance is due."""
        wait = min(self._settings["poll-interval"], next_maintenance - time.monotonic())
        if self._schedules is not None:
            wait = min(wait, self._schedules.due_in())  # wakes for the next fire time
        due = self.store.next_run_at(self.queues)
        if due is not None:
            wait = min(wait, due - self.store.now())
        self.store.wait_for_work(max(0.0, wait))

    def _load_settings(self) -> None:
        """Fresh settings from the store. A bad one stored meanwhile (or by an older version,
        which took `1e3`) is said once and the settings in use are kept: a worker must not
        die of it, nor its replacement after it. At start-up there are none to keep."""
        try:
            self._settings = config.settings(self.store.config_items())
        except config.ConfigError as exc:
            if not self._settings:
                raise
            if str(exc) != self._bad_setting:
                self.say(f"keeping the settings in use: {exc}")
            self._bad_setting = str(exc)
        else:
            self._bad_setting = None

    def retry_policy(self, attempts: int, max_retries: int) -> float | None:
        """The delay before a failed run's next attempt under the settings in use; None: dead."""
        return retry_delay(
            attempts, max_retries, self._settings["backoff-base"], self._settings["backoff-max"]
        )

    def retrying(self, action: Callable[[], T], while_stopping: bool = False) -> T | None:
        """Run a store action; on a store error wait (with backoff) and retry, never die.

        Returns the action's result, or None when it is abandoned: a stop was forced, or (for
        actions not needed `while_stopping`, such as a claim) a graceful stop was asked for.
        An error is said once, not at every retry, and so is the store's return."""
        delay = 0.05
        failing: str | None = None
        while True:
            try:
                result = action()
            except StoreError as exc:
                self._store_failing = True
                if self._abandon(while_stopping):
                    return None
                if str(exc) != failing:
                    failing = str(exc)
                    self.say(f"store error, retrying: {exc}")
                if while_stopping and self.stopping and not self._said_waiting:
                    # A graceful stop waits for the outcome to be recorded: left unrecorded,
                    # the job would be requeued as lost and run again although it ran.
                    self._said_waiting = True
                    self.say(
                        "stopping once the store takes the outcome of the job just run"
                        " (a second stop signal gives that up)"
                    )
                self._pause(delay, while_stopping)
                delay = min(delay * 2, MAX_STORE_RETRY_SECONDS)
                continue
            self._store_failing = False
            if failing is not None:
                self.say("store reachable again")
            return result

    def _abandon(self, while_stopping: bool) -> bool:
        return self.forced or (self.stopping and not while_stopping)

    def _pause(self, seconds: float, while_stopping: bool) -> None:
        """Sleep between retries, cut short by a stop that abandons the retried action."""
        deadline = time.monotonic() + seconds
        while not self._abandon(while_stopping):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, PAUSE_SLICE_SECONDS))

    # -- one job ---------------------------------------------------------------------------

    def run_claim(self, claim: Claim) -> Claim | None:
        """Run one claimed job to its end and record its outcome (see job_run.JobRun). Returns
        the next job, claimed in the transaction that records this one's outcome, if any."""
        crash_point("after-claim")
        if claim.attempt > 1:
            # A rescuer requeues a lost run and kills what it left behind in two steps; a
            # worker of this host may claim the job in between. Kill first, then start.
            self.retrying(lambda: self._kill_leftovers(claim.job.id), while_stopping=True)
        claim_sent, self._claim_sent = self._claim_sent or None, 0.0
        lease = self._settings["lease-seconds"]
        run = JobRun(claim, self.store, self, self.events, self._logs, lease, claim_sent)
        self._run = run  # a forced stop kills its command (handle_signal)
        try:
            next_claim = run.run()
        finally:
            self._run = None
        self._claim_sent = run.next_claim_sent
        return next_claim

    # -- stopping --------------------------------------------------------------------------

    def request_stop(self, why: str) -> None:
        """A graceful stop: claim nothing more, finish the current job; said once."""
        if not self.stopping:
            self.stopping = True
            self.say(f"stopping after the current job ({why})")

    def handle_signal(self, signum: int, frame: object) -> None:
        """SIGINT/SIGTERM/SIGHUP/SIGBREAK: the first request stops claiming, the second kills the
        running command. A stop asked for through the store is not a signal: a signal after
        `worker stop` is still the first request."""
        if not self._stop_signals.count(time.monotonic()):
            return  # a copy of the request just handled
        if self._stop_signals.requests == 1:
            if self.supervisor is None:
                self.request_stop(f"got {signal_name(signum)}")
            else:
                # Relayed: the supervisor, which relays every signal as one kind, names the
                # signal the user sent and announces the stop once for the whole pool.
                self.stopping = True
            return
        self.forced = True
        run = self._run
        if run is not None:
            run.kill_now()

    def handle_parent_death(self, signum: int, frame: object) -> None:
        """PARENT_DEATH_SIGNAL: the supervisor was killed outright. A graceful stop (the current
        job finishes, as documented), even during a stop it relayed: nobody sent a second
        request. It has a signal of its own because a relayed SIGTERM and the parent-death
        signal can arrive in either order, and while the dying supervisor's other threads
        exit, getppid() still names it."""
        if not self._orphaned:
            self._orphaned = True
            self.stopping = True
            self.say("its supervisor is gone: stopping after the current job")

    def say(self, message: str) -> None:
        """One event line on the pool's stderr (see eventlog: it never holds up a job)."""
        self.events.say(message)


def read_target(argument: str | None) -> str:
    """The store target: `--db TARGET`, or with `--db -` the first line of standard input.

    `worker start` hands the target over on a pipe: neither argv (`ps` shows it to every user)
    nor the environment (a job could read it in /proc/<worker pid>/environ, which keeps the
    environment a process started with) may carry a PostgreSQL password. Standard input is
    /dev/null afterwards; jobs get /dev/null as theirs in any case."""
    if argument != "-":
        if not argument:
            raise StoreError("no store: pass --db TARGET, or --db - and the target on stdin")
        return argument
    line = sys.stdin.buffer.readline()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    target = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
    if not target:
        raise StoreError("no store target on standard input")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """The worker process (`python -m queuectl.worker`); returns its exit code."""
    parser = argparse.ArgumentParser(prog="python -m queuectl.worker")
    parser.add_argument("--db", help="store target, or - to read it from standard input")
    parser.add_argument("--queue", action="append", dest="queues")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    die_with_parent()
    close_inherited_fds()
    if args.parent is not None and os.getppid() != args.parent:
        return 1  # the supervisor is already gone
    try:
        store = open_store(
            read_target(args.db), synchronous="NORMAL", call_timeout=STORE_CALL_SECONDS
        )
    except StoreError as exc:
        write_line(f"queuectl worker: {exc}")
        return 1
    worker = Worker(
        store, queues=args.queues, burst=args.burst, quiet=args.quiet, supervisor=args.parent
    )
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), worker.handle_signal)
    if sys.platform.startswith("linux"):
        signal.signal(PARENT_DEATH_SIGNAL, worker.handle_parent_death)
    try:
        return worker.run()
    except config.ConfigError as exc:
        write_line(f"queuectl worker: {exc}")
        return 1
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
