"""Model-based test of the store: a hypothesis state machine against a simple in-memory model.

The machine drives one store through add (with duplicates now and then), claim (several worker
ids, queue filters), heartbeat, complete, fail (retry after a delay, or dead), rescue_expired,
retry_dead, cancel, queue pause, resume and limits (SPEC §8), and the passing of time. A claim
takes the best ready job of the queues that are neither paused nor at their limit. After every
step it checks the store against the model: the same jobs in the same order with the same
fields (none lost, none invented; on SQLite every time to the last bit), `counts()`, every job
`processing` held by exactly one claim, `attempts` equal to the claims since the last dlq
retry, the run history (attempt, worker, and the outcome of whoever closed the run first), no
limited queue with more jobs processing than its limit (beyond those running when it was set),
`queues()` (settings, jobs by state, the oldest due job's age: exact on SQLite), and
`run_counts()` by queue and outcome once a run closed, and `run_durations()` (each queue's
histogram counts exactly the runs run_counts counts; on SQLite each run in the bucket of its
length, to the bound). Claims under pauses and limits are
driven harder, with more workers, by test_model_queues.py. Fencing: a claim kept after its job was
rescued, canceled, finished or retried gets held=False from heartbeat and False from
complete/fail, and leaves the job exactly as it was.

Workers behave as the real ones (worker.py): one claim at a time per worker id, and the rescuer
runs before claims now and then. A worker may `stall` (SIGSTOP, a VM pause, a partition) past
its lease: its claim lives on and may wake up later to heartbeat or report, while a new worker
process takes its slot, rescues and claims. The new process has a new id, as `worker start`
gives, or (`same_id`) the old one, as a Python caller passing Worker(worker_id=...) could; then
only the attempt number tells the two claims apart. Left out: retrying from the DLQ a job that
such a same-id claim still holds, since the store cannot tell those claims apart at all (see
test_a_claim_from_before_a_dlq_retry_is_fenced_even_under_the_same_worker_id below).

Time. SQLite takes an injected clock (`open_store(path, clock=...)`): time stands still between
steps and moves only in `time_passes` and `stall`, so the model predicts every time exactly
(run_at, lease_until, updated_at, which job is due, which lease expired), boundaries included.
PostgreSQL takes time from the server and has no injectable clock. Rather than real sleeps
(slow, and racy on a loaded machine: a lease of 0.05 s may or may not have run out when the
rescuer looks), the machine uses durations that make every time question certain: leases and
delays are either 0 (a lease granted by one transaction has expired by the next one; a job due
after 0 s is due in every later transaction, as the server's `now()` moves forward between
transactions) or a million seconds (never, within a test). The model's clock ticks once per store
call, which orders run_at values as the server's clock does, so claim order is still predicted
exactly; times are not compared by value on PostgreSQL. Rescues and delayed retries thus run on
both backends; only `time_passes` is left out on PostgreSQL.

Runtime: 300 examples of up to 40 steps on SQLite (about 10 s), 200 on PostgreSQL (about 15 s).
QUEUECTL_TEST_EXAMPLES=N runs N examples of up to 50 steps instead (a soak, e.g. N=3000).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from storekit import DEFAULTS, EXIT_3, FakeClock, add

from queuectl.errors import DuplicateJob, InvalidTransition, JobNotFound
from queuectl.models import STATES, Outcome, RunResult
from queuectl.specs import build_spec
from queuectl.store import ClaimRequest, open_store

EXAMPLES = int(os.environ.get("QUEUECTL_TEST_EXAMPLES") or 0)


def machine_settings(backend: str) -> settings:
    # PostgreSQL steps cost a few round trips each: fewer examples in the default run.
    default = 300 if backend == "sqlite" else 200
    return settings(
        max_examples=EXAMPLES or default,
        stateful_step_count=50 if EXAMPLES else 40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


SLOTS = 2  # worker processes alive at any time
QUEUES = ("default", "q1", "q2")
# Queues that pause and limit_queue name: those of jobs, and one that never has any (SPEC §8).
SETTING_QUEUES = (*QUEUES, "q3")
QUEUE_FILTERS = (None, ("default",), ("q1", "q2"), ("q2",))
# Ids are data: quotes, SQL and LIKE wildcards must be stored and matched literally.
ID_TAILS = ("", "'); DROP TABLE jobs; --", "%_", ' "q" ünï ✓', "/../x")
OK = RunResult(Outcome.EXITED, 0, None, output_tail="ok\n")
LONG = 1e6  # PostgreSQL: "never" within one test


class Timing:
    """Durations the machine may use on one backend, and how the model's clock moves."""

    def __init__(self, fake_clock: bool) -> None:
        self.fake = fake_clock
        if fake_clock:
            # Sums of advances often land exactly on a lease or a delay: the boundaries
            # (expired only when lease_until < now; due when run_at <= now) get tested.
            self.leases = (4.0, 20.0)
            self.add_delays = (0.0, 0.0, 5.0, 20.0)
            self.fail_delays = (0.0, 1.0, 4.0)
            self.advances = (1.0, 4.0, 16.0)
            self.stalls = (30.0,)  # longer than any lease
            self.retry_delays = (0.0, 2.0)  # by attempt: the first retry at once, then later
        else:
            self.leases = (0.0, LONG)
            self.add_delays = (0.0, 0.0, LONG)
            self.fail_delays = (0.0, LONG)
            self.advances, self.stalls = (0.0,), ()  # time moves by itself
            self.retry_delays = (0.0,)

    def rescue_policy(self, attempts: int, max_retries: int) -> float | None:
        """The retry policy the rescuer is given: dead once the retries are used up."""
        if attempts > max_retries:
            return None
        return self.retry_delays[(attempts - 1) % len(self.retry_delays)]


class MJob:
    """The model's view of one job."""

    def __init__(self, job_id, seq, priority, queue, max_retries, run_at, now) -> None:
        self.id, self.seq, self.priority, self.queue = job_id, seq, priority, queue
        self.max_retries = max_retries
        self.state = "pending"
        self.attempts = 0
        self.run_at = run_at
        self.lease_until = None
        self.worker = None
        self.run_id = None  # the run of the claim that holds it, while processing
        self.exit_code = None
        self.last_error = None
        self.created_at = self.updated_at = now
        self.runs: list[list] = []  # [run_id, attempt, worker, outcome or None]
        self.dlq_retries = 0  # attempts restart from 0 after each

    def close_run(self, outcome: str) -> None:
        run = self.runs[-1]
        assert run[0] == self.run_id and run[3] is None
        run[3] = outcome


def run_label(outcome: str, exit_code: int | None) -> str:
    """How run_counts names a closed run: `completed` or `failed` for a command that exited
    (by its status), else the run's outcome (lost, canceled, ...)."""
    if outcome != "exited":
        return outcome
    return "completed" if exit_code == 0 else "failed"


class Hand:
    """A claim some process holds: a live worker's (slot) or a stalled one's (slot None)."""

    def __init__(self, claim, slot: int | None, dlq_retries: int) -> None:
        self.claim, self.slot = claim, slot
        self.same_id_successor = False  # stalled, and its id lives on in a new worker
        self.dlq_retries = dlq_retries  # of its job when claimed


def machine_for(open_fresh_store, fake_clock: bool):
    """A state machine class; `open_fresh_store()` returns (store, clock or None), empty."""
    timing = Timing(fake_clock)

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store, self.clock = open_fresh_store()
            self.tick = 0.0  # PostgreSQL's logical clock
            self.jobs: dict[str, MJob] = {}
            self.next_seq = 0
            self.next_name = 0
            self.hands: list[Hand] = []
            self.generation = [0] * SLOTS
            self.busy: set[int] = set()
            self.policy_calls: list[tuple[int, int]] = []
            self.touched: set[str] = set()  # jobs whose run history to check after this step
            # Queue settings (SPEC §8): paused queues, limits, and for each limited queue the
            # jobs already processing when its limit was set (a limit stops no running job).
            self.paused: set[str] = set()
            self.limits: dict[str, int] = {}
            self.over_limit: dict[str, set[str]] = {}
            # Closed runs by (queue, label), their run time (checked on SQLite), and when each
            # open run started, by run id.
            self.run_counts: Counter = Counter()
            self.run_seconds: Counter = Counter()
            self.run_started: dict[int, float] = {}
            self.run_lengths: dict[str, list[float]] = {}  # by queue (SQLite: exact)
            self.runs_closed = False  # in this step: check run_counts()

        def teardown(self) -> None:
            self.store.close()

        # -- the model's clock ----------------------------------------------------------

        def now(self) -> float:
            """The time the next store call runs at, as the model sees it."""
            if timing.fake:
                return self.clock.time
            self.tick += 1.0
            return self.tick

        def policy(self, attempts: int, max_retries: int) -> float | None:
            self.policy_calls.append((attempts, max_retries))
            return timing.rescue_policy(attempts, max_retries)

        # -- helpers ----------------------------------------------------------------------

        def worker_id(self, slot: int) -> str:
            return f"w{slot}.{self.generation[slot]}"

        def current(self, hand: Hand) -> bool:
            job = self.jobs[hand.claim.job.id]
            return job.state == "processing" and job.run_id == hand.claim.run_id

        def pick(self, items, index: int):
            return items[index % len(items)]

        def pick_hand(self, index: int) -> Hand:
            """Any claim in hand; every other pick a stale one if there is any (they are the
            interesting ones, and rarer)."""
            stale = [hand for hand in self.hands if not self.current(hand)]
            return self.pick(stale if stale and index % 2 else self.hands, index // 2)

        def snapshot(self, job_id: str):
            return self.store.get(job_id)

        def ready(self, queues, now: float) -> MJob | None:
            """The job a claim must take: the best ready job of the open queues."""
            candidates = [
                job
                for job in self.jobs.values()
                if job.state in ("pending", "failed")
                and job.run_at <= now
                and (queues is None or job.queue in queues)
                and self.open(job.queue)
            ]
            return min(candidates, key=lambda j: (-j.priority, j.run_at, j.seq), default=None)

        def processing(self, queue: str) -> list[MJob]:
            return [j for j in self.jobs.values() if j.queue == queue and j.state == "processing"]

        def open(self, queue: str) -> bool:
            """May a claim take a job of this queue: not paused, and below its limit?"""
            if queue in self.paused:
                return False
            limit = self.limits.get(queue, 0)
            return limit == 0 or len(self.processing(queue)) < limit

        def close(self, job: MJob, outcome: str, exit_code: int | None, now: float) -> None:
            """Close the job's open run, and count it as run_counts does."""
            run_id = job.run_id
            job.close_run(outcome)
            key = (job.queue, run_label(outcome, exit_code))
            self.run_counts[key] += 1
            length = now - self.run_started.pop(run_id)
            self.run_seconds[key] += length
            self.run_lengths.setdefault(job.queue, []).append(length)
            self.runs_closed = True

        def unfinished(self) -> int:
            return sum(
                job.state in ("pending", "failed", "processing") for job in self.jobs.values()
            )

        def waiting_on_time(self) -> bool:
            """Would the passing of time change anything: a lease to expire, a job to become due?"""
            now = self.clock.time
            return any(
                job.state == "processing"
                or (job.state in ("pending", "failed") and job.run_at > now)
                for job in self.jobs.values()
            )

        def dead_ids(self) -> list[str]:
            return [job.id for job in self.jobs.values() if job.state == "dead"]

        def release(self, hand: Hand) -> None:
            self.hands.remove(hand)
            if hand.slot is not None:
                self.busy.discard(hand.slot)

        # -- rules ------------------------------------------------------------------------

        @initialize(
            batch=st.lists(st.tuples(st.integers(-1, 2), st.sampled_from(QUEUES)), max_size=4)
        )
        def first_jobs(self, batch) -> None:
            if batch:
                jobs = [(True, "", p, queue, n % 2, 0.0) for n, (p, queue) in enumerate(batch)]
                self.add(jobs)

        @initialize(
            limits=st.lists(
                st.tuples(st.sampled_from(SETTING_QUEUES), st.sampled_from((0, 1, 1, 2))),
                max_size=2,
            )
        )
        def first_limits(self, limits) -> None:
            # Limits from the start, in most examples: a limit matters while its queue's jobs
            # run, which a limit set late in an example rarely sees.
            for name, limit in limits:
                self.operator_limits(name, limit)

        @precondition(lambda self: self.unfinished() < 6)  # a small queue, much activity
        @rule(
            batch=st.lists(
                st.tuples(
                    st.booleans(),  # an id of our own, or a generated one
                    st.sampled_from(ID_TAILS),
                    st.integers(-1, 2),
                    st.sampled_from(QUEUES),
                    st.sampled_from((0, 0, 1, 2)),  # max_retries: dead jobs come soon
                    st.sampled_from(timing.add_delays),
                ),
                min_size=1,
                max_size=2,
            ),
            duplicate=st.sampled_from((None, None, None, "existing", "inside")),
            index=st.integers(0, 1000),
        )
        def add(self, batch, duplicate: str | None = None, index: int = 0) -> None:
            specs = []
            for own_id, tail, priority, queue, max_retries, delay in batch:
                fields = {"command": "true", "priority": priority, "queue": queue}
                fields.update(max_retries=max_retries, delay=delay)
                if own_id:
                    fields["id"] = f"j{self.next_name}{tail}"
                    self.next_name += 1
                specs.append(build_spec(fields, DEFAULTS))
            taken = None
            if duplicate == "inside":
                taken = specs[index % len(specs)].id
            elif duplicate == "existing" and self.jobs:
                taken = self.pick(list(self.jobs), index)
            if taken is not None:
                # Refused as a whole, and the duplicate named; nothing is written.
                specs.insert(
                    index % (len(specs) + 1),
                    build_spec({"id": taken, "command": "x"}, DEFAULTS),
                )
                with pytest.raises(DuplicateJob) as info:
                    self.store.add(specs)
                assert info.value.job_id == taken
                self.now()
                return
            now = self.now()
            ids = self.store.add(specs)
            assert len(ids) == len(specs) == len(set(ids))
            for job_id, spec in zip(ids, specs, strict=True):
                assert job_id == spec.id and job_id not in self.jobs
                self.jobs[job_id] = MJob(
                    job_id,
                    self.next_seq,
                    spec.priority,
                    spec.queue,
                    spec.max_retries,
                    now + spec.delay,
                    now,
                )
                self.next_seq += 1

        @precondition(lambda self: len(self.busy) < SLOTS)
        @rule(
            index=st.integers(0, SLOTS - 1),
            queues=st.sampled_from(QUEUE_FILTERS),
            lease=st.sampled_from(timing.leases),
            rescue_first=st.booleans(),
        )
        def claim(self, index: int, queues, lease: float, rescue_first: bool) -> None:
            if rescue_first:  # what a worker's maintenance does between jobs
                self.rescue()
            self.take(
                self.pick([s for s in range(SLOTS) if s not in self.busy], index), queues, lease
            )

        def take(self, slot: int, queues, lease: float, finished=None) -> None:
            """The worker in `slot` claims the best ready job, if there is one: by itself, or
            (`finished`) in the same call that recorded its previous run's outcome."""
            worker = self.worker_id(slot)
            now = self.now()
            expected = self.ready(queues, now)
            if finished is None:
                claim = self.store.claim(
                    ClaimRequest(worker, "host", queues and list(queues), lease)
                )
            else:
                claim = finished.next_claim
            if expected is None:
                assert claim is None, f"claimed {claim.job.id!r}, but no job was ready"
                return
            assert claim is not None, f"nothing claimed, but {expected.id!r} was ready"
            assert claim.job.id == expected.id, "claimed the wrong job first"
            expected.state, expected.attempts = "processing", expected.attempts + 1
            expected.worker, expected.run_id = worker, claim.run_id
            expected.lease_until, expected.updated_at = now + lease, now
            expected.runs.append([claim.run_id, expected.attempts, worker, None])
            self.run_started[claim.run_id] = now
            self.touched.add(expected.id)
            assert (claim.worker_id, claim.attempt) == (worker, expected.attempts)
            assert (claim.job.state.value, claim.job.attempts) == ("processing", claim.attempt)
            self.hands.append(Hand(claim, slot, expected.dlq_retries))
            self.busy.add(slot)

        @precondition(lambda self: self.hands)
        @rule(index=st.integers(0, 1000), lease=st.sampled_from(timing.leases))
        def heartbeat(self, index: int, lease: float) -> None:
            hand = self.pick_hand(index)
            job = self.jobs[hand.claim.job.id]
            if self.current(hand):
                now = self.now()
                beat = self.store.heartbeat(hand.claim.worker_id, lease, hand.claim)
                assert beat.held is True
                job.lease_until = now + lease
            else:
                before = self.snapshot(job.id)
                beat = self.store.heartbeat(hand.claim.worker_id, lease, hand.claim)
                self.now()
                assert beat.held is False, "a stale claim was told it still holds its job"
                assert self.snapshot(job.id) == before, "a stale heartbeat changed the job"
            assert beat.stop_requested is False

        @precondition(lambda self: self.hands)
        @rule(
            index=st.integers(0, 1000),
            # complete, fail and bury (None), or fail with a retry after some delay
            outcome=st.sampled_from(("ok", "ok", None, None, *timing.fail_delays)),
            # and, as a live worker does between short jobs, claim the next one in the same call
            then_claim=st.one_of(
                st.none(), st.tuples(st.sampled_from(QUEUE_FILTERS), st.sampled_from(timing.leases))
            ),
        )
        def report(self, index: int, outcome, then_claim) -> None:
            hand = self.pick_hand(index)
            if hand.slot is None:
                then_claim = None  # a stalled worker's successor claims for that slot
            if outcome == "ok":
                self.finish(hand, OK, None, then_claim)
            else:
                self.finish(hand, EXIT_3, outcome, then_claim)

        def finish(self, hand: Hand, result: RunResult, delay: float | None, then_claim) -> None:
            job = self.jobs[hand.claim.job.id]
            self.touched.add(job.id)
            self.release(hand)
            request = None
            if then_claim is not None:
                queues, lease = then_claim
                worker = self.worker_id(hand.slot)
                request = ClaimRequest(worker, "host", queues and list(queues), lease)
            if not self.current(hand):
                before = self.snapshot(job.id)
                finished = self.store.finish(hand.claim, result, delay, request)
                self.now()
                assert finished.held is False, "a stale claim recorded an outcome"
                taken = finished.next_claim
                if taken is None or taken.job.id != job.id:
                    # (Else the job was claimed anew, checked against the model after take.)
                    assert self.snapshot(job.id) == before, "a stale report changed the job"
            else:
                now = self.now()
                finished = self.store.finish(hand.claim, result, delay, request)
                assert finished.held is True
                if result is OK:
                    job.state = "completed"
                else:
                    job.state = "dead" if delay is None else "failed"
                    if delay is not None:
                        job.run_at = now + delay
                self.close(job, result.outcome.value, result.exit_code, now)
                job.exit_code, job.last_error = result.exit_code, result.error
                job.worker = job.lease_until = job.run_id = None
                job.updated_at = now
            if request is None:
                assert finished.next_claim is None, "claimed a job nobody asked for"
            else:
                self.take(hand.slot, then_claim[0], then_claim[1], finished)

        @precondition(lambda self: any(hand.slot is not None for hand in self.hands))
        @rule(
            index=st.integers(0, 1000),
            same_id=st.booleans(),
            seconds=st.sampled_from((0.0, *timing.stalls)),
            lease=st.sampled_from(timing.leases),
        )
        def stall(self, index: int, same_id: bool, seconds: float, lease: float) -> None:
            """A worker freezes holding its claim, for `seconds`, and a new worker process
            takes its slot: with a new id (what `worker start` does) or, `same_id`, under the
            same one (a worker id given by a Python caller), which only the attempt number
            tells apart. Like every worker, the new one first requeues expired jobs, then
            claims. The frozen claim may wake up later and heartbeat or report."""
            hand = self.pick([hand for hand in self.hands if hand.slot is not None], index)
            if hand.dlq_retries != self.jobs[hand.claim.job.id].dlq_retries:
                same_id = False  # the attempt number may come round again: see retry_dead
            slot = hand.slot
            self.busy.discard(slot)
            if not same_id:
                self.generation[slot] += 1
            hand.slot = None
            hand.same_id_successor = same_id
            if timing.fake:
                self.clock.time += seconds
            self.rescue()
            self.take(slot, None, lease)

        def rescue(self) -> None:
            """What every worker does before it claims, and now and then between jobs."""
            now = self.now()
            expired = [
                job
                for job in self.jobs.values()
                if job.state == "processing" and job.lease_until < now
            ]
            self.policy_calls = []
            rescued = self.store.rescue_expired(self.policy, 1e9)
            wanted = sorted(job.id for job in expired)
            assert sorted(rescued) == wanted, f"rescued {rescued}, expired {wanted}"
            assert sorted(self.policy_calls) == sorted(
                (job.attempts, job.max_retries) for job in expired
            ), "the retry policy was not asked about each rescued job's attempts"
            for job in expired:
                delay = timing.rescue_policy(job.attempts, job.max_retries)
                job.state = "dead" if delay is None else "failed"
                job.run_at = now + (delay or 0.0)
                self.close(job, "lost", None, now)
                self.touched.add(job.id)
                job.exit_code, job.last_error = None, "lost"
                job.worker = job.lease_until = job.run_id = None
                job.updated_at = now

        @precondition(lambda self: any(job.state == "dead" for job in self.jobs.values()))
        @rule(
            everything=st.booleans(),
            picks=st.lists(st.integers(0, 1000), min_size=1, max_size=3),
            unknown=st.integers(0, 4),
        )
        def user_retries_dead(self, everything: bool, picks: list[int], unknown: int) -> None:
            # Left out: a dead job that a stalled worker still holds a claim on while its id
            # lives on (and, in `stall`, the converse): the model cannot predict it simply.
            # The store fences it through the claim's run (see the test at the end).
            ambiguous = {hand.claim.job.id for hand in self.hands if hand.same_id_successor}
            dead = [
                job.id
                for job in self.jobs.values()
                if job.state == "dead" and job.id not in ambiguous
            ]
            if not dead:
                return
            if everything and len(dead) == len(self.dead_ids()):
                asked = None
                chosen = dead
            else:
                # Mostly dead jobs, the same one twice at times, now and then a live one.
                others = [job_id for job_id in self.jobs if job_id not in ambiguous]
                pool = dead if picks[0] % 3 else others
                asked = [self.pick(pool, i) for i in picks] if pool else []
                if unknown == 0 or not asked:
                    asked.append("no-such-job")
                chosen = list(dict.fromkeys(asked))
            blocker = next((i for i in chosen if i not in dead), None)
            if blocker is not None:
                before = self.store.list_jobs()
                error = JobNotFound if blocker not in self.jobs else InvalidTransition
                with pytest.raises(error):
                    self.store.retry_dead(asked)
                self.now()
                assert self.store.list_jobs() == before, "a refused dlq retry changed jobs"
                return
            now = self.now()
            assert self.store.retry_dead(asked) == chosen
            for job_id in chosen:
                job = self.jobs[job_id]
                job.state, job.attempts, job.run_at, job.updated_at = "pending", 0, now, now
                job.dlq_retries += 1

        @precondition(lambda self: self.unfinished() >= 2)  # cancels must not empty the queue
        @rule(index=st.integers(0, 1000), which=st.integers(0, 9))
        def user_cancels(self, index: int, which: int) -> None:
            if which == 0:
                with pytest.raises(JobNotFound):
                    self.store.cancel("no-such-job")
                return
            running = [job for job in self.jobs.values() if job.state == "processing"]
            pool = running if running and which % 2 else list(self.jobs.values())
            job = self.pick(pool, index)
            if job.state in ("completed", "dead", "canceled"):
                before = self.snapshot(job.id)
                with pytest.raises(InvalidTransition):
                    self.store.cancel(job.id)
                self.now()
                assert self.snapshot(job.id) == before
                return
            now = self.now()
            assert self.store.cancel(job.id).value == job.state
            if job.state == "processing":
                self.close(job, "canceled", None, now)
                self.touched.add(job.id)
            job.state, job.last_error, job.updated_at = "canceled", "canceled", now
            job.worker = job.lease_until = job.run_id = None

        @rule(
            names=st.lists(st.sampled_from(SETTING_QUEUES), min_size=1, max_size=3),
            pause=st.booleans(),
        )
        def operator_pauses(self, names: list[str], pause: bool) -> None:
            """`queue pause` or `queue resume`: no claim takes a paused queue's jobs."""
            self.store.pause_queues(names, pause)
            self.now()
            if pause:
                self.paused.update(names)
            else:
                self.paused.difference_update(names)
            assert self.store.paused_queues() == sorted(self.paused)

        @rule(name=st.sampled_from(SETTING_QUEUES), limit=st.sampled_from((0, 1, 1, 2)))
        def operator_limits(self, name: str, limit: int) -> None:
            """`queue limit`: claims keep the queue's processing jobs at most `limit` (0: none);
            jobs already running go on."""
            self.store.limit_queue(name, limit)
            self.now()
            self.limits[name] = limit
            self.over_limit[name] = {job.id for job in self.processing(name)}

        @precondition(lambda self: timing.fake and self.waiting_on_time())
        @rule(seconds=st.sampled_from(timing.advances), then_rescue=st.booleans())
        def time_passes(self, seconds: float, then_rescue: bool) -> None:
            self.clock.time += seconds
            if then_rescue:
                self.rescue()

        # Hypothesis picks among rules evenly (and turns some off per example); aliases give
        # the rules that move jobs along more weight than the ones that only add or end them.
        claim_more = claim
        report_more = report_again = report_once_more = report
        heartbeat_more = heartbeat
        stall_more = stall_again = stall
        user_retries_dead_more = user_retries_dead
        operator_limits_more = operator_limits

        # -- checks -----------------------------------------------------------------------

        @invariant()
        def store_matches_model(self) -> None:
            jobs = self.store.list_jobs()
            model = sorted(self.jobs.values(), key=lambda job: job.seq)
            assert [job.id for job in jobs] == [job.id for job in model], "jobs lost or invented"
            for job, expected in zip(jobs, model, strict=True):
                seen = (
                    job.state.value,
                    job.attempts,
                    job.worker_id,
                    job.priority,
                    job.queue,
                    job.max_retries,
                    job.exit_code,
                )
                wanted = (
                    expected.state,
                    expected.attempts,
                    expected.worker,
                    expected.priority,
                    expected.queue,
                    expected.max_retries,
                    expected.exit_code,
                )
                assert seen == wanted, f"job {job.id!r}: store {seen} != model {wanted}"
                if expected.last_error == "lost":
                    assert job.last_error.startswith("lost"), job.last_error
                else:
                    assert job.last_error == expected.last_error, job.id
                if expected.state != "processing":
                    assert job.lease_until is None, f"job {job.id!r}: a lease outside processing"
                if timing.fake:
                    times = (job.run_at, job.lease_until, job.created_at, job.updated_at)
                    model_times = (
                        expected.run_at,
                        expected.lease_until,
                        expected.created_at,
                        expected.updated_at,
                    )
                    assert times == model_times, f"job {job.id!r}: times {times} != {model_times}"
            counts = Counter(job.state for job in model)
            assert self.store.counts() == {state: counts[state] for state in STATES}

        @invariant()
        def one_holder_per_job(self) -> None:
            holders = Counter(hand.claim.job.id for hand in self.hands if self.current(hand))
            assert all(n == 1 for n in holders.values()), holders
            processing = {job.id for job in self.jobs.values() if job.state == "processing"}
            assert set(holders) == processing, "a processing job that no worker holds"
            live = [hand.slot for hand in self.hands if hand.slot is not None]
            assert len(live) == len(set(live)) == len(self.busy)

        @invariant()
        def run_history_matches_model(self) -> None:
            """Each run: attempt, worker and outcome (whoever closed it first keeps it)."""
            for job_id in self.touched:
                job = self.jobs[job_id]
                runs = [
                    [run.run_id, run.attempt, run.worker_id, run.outcome]
                    for run in self.store.runs(job.id)
                ]
                assert runs == job.runs, f"run history of {job.id!r}"
            self.touched.clear()

        @invariant()
        def limits_hold(self) -> None:
            """A limited queue never has more jobs processing than its limit, beyond those that
            were already running when it was set."""
            for queue, limit in self.limits.items():
                running = {job.id for job in self.processing(queue)}
                if limit:
                    assert len(running) <= max(limit, len(running & self.over_limit[queue])), (
                        f"queue {queue!r}: {sorted(running)} processing, limit {limit}"
                    )

        @invariant()
        def queue_list_matches_model(self) -> None:
            """`queue list`: each queue with jobs or settings, its settings, its jobs by state
            and the age of its oldest due pending job; run counts by queue and outcome."""
            now = self.clock.time if timing.fake else self.tick
            wanted = {}
            for name in sorted({job.queue for job in self.jobs.values()} | set(SETTING_QUEUES)):
                jobs = [job for job in self.jobs.values() if job.queue == name]
                limit = self.limits.get(name, 0)
                if not jobs and not limit and name not in self.paused:
                    continue
                due = [j.run_at for j in jobs if j.state == "pending" and j.run_at <= now]
                counts = Counter(job.state for job in jobs)
                age = now - min(due) if due else None
                wanted[name] = (
                    name in self.paused,
                    limit or None,
                    {state: counts[state] for state in STATES},
                    age if timing.fake else age is not None,
                )
            seen = {}
            for queue in self.store.queues():
                age = queue.oldest_ready_age
                if not timing.fake:  # the server's clock: only whether a job is due is certain
                    assert age is None or age >= 0, queue
                    age = age is not None
                seen[queue.name] = (queue.paused, queue.limit, queue.jobs, age)
            assert list(seen) == list(wanted), "queues listed"
            assert seen == wanted, "queue list"
            if self.runs_closed:
                self.runs_closed = False
                counts = {(c.queue, c.outcome): c for c in self.store.run_counts()}
                assert {key: c.runs for key, c in counts.items()} == self.run_counts
                for key, count in counts.items():
                    if timing.fake:
                        assert count.seconds == pytest.approx(self.run_seconds[key]), key
                    else:
                        assert count.seconds >= 0, key
                self.check_run_durations()

        def check_run_durations(self) -> None:
            """The histogram counts every closed run once, as run_counts does; with the model's
            clock, each run in the bucket of its length."""
            found = {h.queue: h for h in self.store.run_durations()}
            assert found.keys() == self.run_lengths.keys(), "histogram queues"
            for queue, histogram in found.items():
                lengths = self.run_lengths[queue]
                runs = sum(n for (q, _), n in self.run_counts.items() if q == queue)
                assert histogram.count == histogram.buckets[-1][1] == runs == len(lengths)
                if timing.fake:
                    wanted = tuple(
                        (bound, sum(1 for length in lengths if length <= bound))
                        for bound, _ in histogram.buckets
                    )
                    assert histogram.buckets == wanted, queue
                    assert histogram.seconds == pytest.approx(sum(lengths)), queue
                else:
                    counts = [n for _, n in histogram.buckets]
                    assert counts == sorted(counts), queue

    return StoreMachine


def fresh_sqlite(folder: Path):
    def open_fresh():
        clock = FakeClock()
        path = Path(tempfile.mkdtemp(dir=folder)) / "queue.db"
        return open_store(str(path), clock=clock, synchronous="NORMAL"), clock

    return open_fresh


class KeptOpen:
    """One PostgreSQL store for every example (connecting costs more than an example)."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def close(self) -> None:
        pass


def fresh_postgres(store, admin):
    def open_fresh():
        # DELETE, not TRUNCATE: cheaper on tables this small. Runs go with their jobs.
        admin.execute("DELETE FROM queuectl_jobs")
        admin.execute("DELETE FROM queuectl_workers")
        admin.execute("DELETE FROM queuectl_config")
        admin.execute("DELETE FROM queuectl_queues")
        admin.execute("DELETE FROM queuectl_run_counts")
        admin.execute("DELETE FROM queuectl_run_durations")
        return KeptOpen(store), None

    return open_fresh


def test_store_behaves_like_the_model(db_target: str, tmp_path: Path) -> None:
    if not db_target.startswith("postgresql"):
        machine = machine_for(fresh_sqlite(tmp_path), fake_clock=True)
        run_state_machine_as_test(machine, settings=machine_settings("sqlite"))
        return
    import psycopg

    store = open_store(db_target)
    try:
        with psycopg.connect(db_target, autocommit=True) as admin:
            machine = machine_for(fresh_postgres(store, admin), fake_clock=False)
            run_state_machine_as_test(machine, settings=machine_settings("postgres"))
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# What the machine found, as plain examples


def test_retry_dead_with_the_same_id_twice_retries_it_once(store) -> None:
    # `queuectl dlq retry a a`. SQLite counts the repeat once; PostgreSQL retried the first
    # and then refused the second ("job 'a' is pending, not dead"), undoing both.
    add(store, "a", command="false", max_retries=0)
    held = store.claim(ClaimRequest("w1", "host", None, 60.0))
    assert store.finish(held, EXIT_3, None).held is True
    assert store.retry_dead(["a", "a"]) == ["a"]
    job = store.get("a")
    assert (job.state.value, job.attempts) == ("pending", 0)


def test_a_claim_from_before_a_dlq_retry_is_fenced_even_under_the_same_worker_id(store) -> None:
    # Only reachable when two processes share a worker id: ids made by `worker start` carry a
    # random part, but Worker(worker_id=...) lets a Python caller choose one. The fence
    # includes the claim's run (still open), not only the attempt number.
    add(store, "a", command="false", max_retries=0)
    # Its lease has run out already:
    stale = store.claim(ClaimRequest("fixed-id", "host", None, -1.0))
    # ...the worker stalls; the rescuer buries the job; a user sends it back from the DLQ...
    assert store.rescue_expired(lambda attempts, max_retries: None, 60.0) == ["a"]
    assert store.retry_dead(["a"]) == ["a"]
    # ...and a new process with the same id claims it: attempt 1 again.
    fresh = store.claim(ClaimRequest("fixed-id", "host", None, 60.0))
    assert (fresh.job.id, fresh.attempt) == ("a", stale.attempt)
    assert store.heartbeat("fixed-id", 60.0, stale).held is False
    assert store.finish(stale, OK, None).held is False
