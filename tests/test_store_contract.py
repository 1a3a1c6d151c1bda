"""The store contract (store/__init__.py `Store`), one suite run against every backend.

Tests that need time to pass use `timed`: on a backend that takes an injected clock (SQLite)
time jumps instantly; elsewhere the test waits on the real clock with short, scaled durations.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import wait_for

from queuectl.errors import DuplicateJob, InvalidTransition, JobNotFound
from queuectl.models import STATES, JobState, Outcome, RunResult, build_spec
from queuectl.store import ClaimRequest, open_store, worker_row_kept

DEFAULTS = {"max-retries": 3, "job-timeout": 300.0}
LEASE = 60.0
OK = RunResult(Outcome.EXITED, 0, None, output_tail="all good\n")
EXIT_3 = RunResult(Outcome.EXITED, 3, "exited with status 3", output_tail="oops\n")
PAST = "2020-01-01T00:00:00Z"
FUTURE = "2100-01-01T00:00:00Z"
# Float times may lose a little on a round trip through the store (PostgreSQL: microseconds).
EPS = 0.01


def spec(job_id: str | None = None, **fields):
    data = {"command": f"echo {job_id}", **fields}
    if job_id is not None:
        data["id"] = job_id
    return build_spec(data, DEFAULTS)


def add(store, *job_ids: str, **fields) -> list[str]:
    return store.add([spec(job_id, **fields) for job_id in job_ids])


def claim(store, worker: str = "w1", queues=None, lease: float = LEASE):
    return store.claim(ClaimRequest(worker, "host-a", queues, lease))


def claim_all(store, worker: str = "w1", queues=None) -> list[str]:
    taken = []
    while (held := claim(store, worker, queues)) is not None:
        taken.append(held.job.id)
    return taken


def state(store, job_id: str) -> JobState:
    return store.get(job_id).state


def ids(jobs) -> list[str]:
    return [job.id for job in jobs]


def make_dead(store, job_id: str, **fields) -> None:
    add(store, job_id, **fields)
    held = claim(store, queues=[fields.get("queue", "default")])
    assert held is not None and held.job.id == job_id
    assert store.finish(held, EXIT_3, None).held


class FakeClock:
    def __init__(self) -> None:
        self.time = 1_700_000_000.0

    def __call__(self) -> float:
        return self.time


class Timed:
    """A store and a way to move its time forward."""

    def __init__(self, store, clock: FakeClock | None) -> None:
        self.store = store
        self.clock = clock
        # Durations in tests are multiples of `unit`: free with a fake clock, short otherwise.
        self.unit = 10.0 if clock else 0.25

    def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.time += seconds
            return
        target = self.store.now() + seconds
        wait_for(lambda: self.store.now() >= target, timeout=seconds + 10, interval=0.005)


@pytest.fixture
def timed(db_target: str):
    clock = FakeClock()
    opened = open_store(db_target, clock=clock)
    supported = opened.now() == clock.time
    yield Timed(opened, clock if supported else None)
    opened.close()


def fixed_delay(seconds: float | None):
    calls = []

    def policy(attempts: int, max_retries: int):
        calls.append((attempts, max_retries))
        return seconds

    policy.calls = calls
    return policy


# ---------------------------------------------------------------------------------------------
# identity


def test_store_describes_itself_and_its_target_reopens_it(store):
    assert isinstance(store.description, str) and store.description
    assert isinstance(store.log_dir, Path)
    add(store, "a")
    other = open_store(store.target)
    try:
        assert ids(other.list_jobs()) == ["a"]
    finally:
        other.close()
    assert abs(store.now() - time.time()) < 5


# ---------------------------------------------------------------------------------------------
# add / get


def test_add_returns_the_ids_and_get_returns_every_field(store):
    before = store.now()
    assert add(store, "a") == ["a"]
    after = store.now()
    assert store.add(
        [
            spec("b", max_retries=0, priority=7, queue="mail", timeout=2.5, delay=100),
            spec("c", run_at="2030-01-02T03:04:05Z"),
        ]
    ) == ["b", "c"]

    job = store.get("a")
    assert (job.id, job.command, job.state) == ("a", "echo a", JobState.PENDING)
    assert (job.attempts, job.max_retries, job.priority, job.queue) == (0, 3, 0, "default")
    assert job.timeout == 300.0
    assert before - EPS <= job.created_at <= after + EPS
    assert before - EPS <= job.updated_at <= after + EPS
    assert before - EPS <= job.run_at <= after + EPS
    assert (job.exit_code, job.last_error, job.worker_id, job.lease_until) == (None,) * 4

    b = store.get("b")
    assert (b.max_retries, b.priority, b.queue, b.timeout) == (0, 7, "mail", 2.5)
    assert b.created_at + 100 - EPS <= b.run_at <= b.created_at + 100 + EPS
    assert store.get("c").run_at == pytest.approx(1893553445.0, abs=1e-6)


def test_add_generated_ids_are_returned_in_order(store):
    returned = store.add([spec(), spec(), spec()])
    assert len(set(returned)) == 3
    assert ids(store.list_jobs()) == returned


def test_add_keeps_unicode_and_long_ids(store):
    job_id = "Ωmega/../job ✓ " + "x" * 185
    add(store, job_id)
    assert store.get(job_id).id == job_id
    assert store.get(job_id).command == f"echo {job_id}"


def test_duplicate_inside_a_batch_writes_nothing(store):
    with pytest.raises(DuplicateJob) as info:
        add(store, "b", "a", "c", "a")
    assert info.value.job_id == "a"  # the duplicate is named, not just the first id
    assert store.list_jobs() == []
    with pytest.raises(JobNotFound):
        store.get("b")


def test_duplicate_of_an_existing_job_writes_nothing(store):
    add(store, "x")
    with pytest.raises(DuplicateJob) as info:
        store.add([spec("y"), spec("x", priority=9), spec("z")])
    assert info.value.job_id == "x"
    assert ids(store.list_jobs()) == ["x"]
    assert store.get("x").priority == 0  # the existing job was not overwritten


def test_duplicate_at_the_end_of_a_big_batch_is_named_and_nothing_written(store):
    add(store, "old-7")
    batch = [spec(f"new-{n}") for n in range(1200)] + [spec("old-7")]
    with pytest.raises(DuplicateJob) as info:
        store.add(batch)
    assert info.value.job_id == "old-7"
    assert ids(store.list_jobs()) == ["old-7"]


def test_bulk_add_of_many_jobs(store):
    specs = [spec(f"j{n}") for n in range(1500)]
    assert store.add(specs) == [f"j{n}" for n in range(1500)]
    assert store.counts()["pending"] == 1500


def test_get_and_runs_of_an_unknown_job_raise_job_not_found(store):
    add(store, "a")
    with pytest.raises(JobNotFound) as info:
        store.get("nope")
    assert info.value.job_id == "nope"
    with pytest.raises(JobNotFound):
        store.runs("nope")
    with pytest.raises(JobNotFound):
        store.get("A")  # ids are case-sensitive
    assert store.runs("a") == []


# ---------------------------------------------------------------------------------------------
# list_jobs / counts


def test_list_jobs_in_insertion_order_with_filters_and_limit(store):
    # Ids, priorities and run_at all disagree with the insertion order on purpose.
    add(store, "c", priority=-1, queue="q1", run_at=FUTURE)
    add(store, "a", priority=5, queue="q2", run_at=PAST)
    add(store, "b", priority=0, queue="q1")
    add(store, "d", priority=9, queue="q2")
    held = claim(store, queues=["q2"])  # takes "d" (priority 9)
    assert held.job.id == "d"

    assert ids(store.list_jobs()) == ["c", "a", "b", "d"]
    assert ids(store.list_jobs(state="pending")) == ["c", "a", "b"]
    assert ids(store.list_jobs(state="processing")) == ["d"]
    assert ids(store.list_jobs(queue="q1")) == ["c", "b"]
    assert ids(store.list_jobs(state="pending", queue="q2")) == ["a"]
    assert ids(store.list_jobs(limit=2)) == ["c", "a"]
    assert ids(store.list_jobs(state="pending", limit=1)) == ["c"]
    assert ids(store.list_jobs(queue="q2", limit=10)) == ["a", "d"]
    assert store.list_jobs(state="dead") == []
    assert store.list_jobs(queue="nope") == []
    assert store.list_jobs(limit=0) == []


def test_counts_has_every_state(store):
    assert store.counts() == dict.fromkeys(STATES, 0)
    for name in ("pending", "processing", "completed", "failed", "dead", "canceled"):
        add(store, name, queue=name)
    claim(store, queues=["processing"])
    assert store.finish(claim(store, queues=["completed"]), OK, None).held
    assert store.finish(claim(store, queues=["failed"]), EXIT_3, 3600).held
    assert store.finish(claim(store, queues=["dead"]), EXIT_3, None).held
    store.cancel("canceled")

    assert store.counts() == dict.fromkeys(STATES, 1)
    assert set(store.counts()) == {
        "pending",
        "processing",
        "completed",
        "failed",
        "dead",
        "canceled",
    }
    for name in STATES:
        assert ids(store.list_jobs(state=name)) == [name]
        assert state(store, name) == JobState(name)


# ---------------------------------------------------------------------------------------------
# claim


def test_claim_order_is_priority_then_run_at_then_insertion(store):
    add(store, "low", priority=-1, run_at=PAST)
    add(store, "mid-late", run_at="2020-01-01T00:01:40Z")
    add(store, "mid-tie-1", run_at="2020-01-01T00:01:40Z")
    add(store, "mid-early", run_at=PAST)  # inserted later, but due earlier
    add(store, "mid-tie-2", run_at="2020-01-01T00:01:40Z")
    add(store, "high", priority=10)  # due now, inserted last
    add(store, "later", priority=100, run_at=FUTURE)  # highest priority, but not due
    assert claim_all(store) == ["high", "mid-early", "mid-late", "mid-tie-1", "mid-tie-2", "low"]
    assert state(store, "later") == JobState.PENDING


def test_jobs_added_at_the_same_moment_are_claimed_in_insertion_order(timed):
    store = timed.store
    order = [f"job-{n}" for n in (5, 3, 9, 1, 7, 2, 8)]
    add(store, *order)
    assert claim_all(store) == order


def test_claim_marks_processing_counts_the_attempt_and_opens_a_run(timed):
    store = timed.store
    add(store, "a", max_retries=2)
    now = store.now()
    held = store.claim(ClaimRequest("worker-1", "host-a", None, 30.0))
    assert held is not None
    assert (held.worker_id, held.attempt) == ("worker-1", 1)
    assert held.job.id == "a" and held.job.state == JobState.PROCESSING
    assert held.job.attempts == 1

    job = store.get("a")
    assert (job.state, job.attempts, job.worker_id) == (JobState.PROCESSING, 1, "worker-1")
    assert now + 30 - EPS <= job.lease_until <= store.now() + 30 + EPS

    [run] = store.runs("a")
    assert run.run_id == held.run_id
    assert (run.attempt, run.worker_id, run.host) == (1, "worker-1", "host-a")
    assert now - EPS <= run.started_at <= store.now() + EPS
    assert (run.finished_at, run.outcome, run.exit_code) == (None, None, None)
    assert store.get("a", with_runs=True).runs == store.runs("a")

    assert claim(store) is None  # nothing else is ready, and "a" is held

    assert store.finish(held, EXIT_3, 0.0).held
    again = store.claim(ClaimRequest("worker-2", "host-b", None, 30.0))
    assert (again.job.id, again.attempt, again.job.attempts) == ("a", 2, 2)
    assert again.run_id != held.run_id
    assert [(r.attempt, r.worker_id) for r in store.runs("a")] == [(1, "worker-1"), (2, "worker-2")]


def test_delayed_jobs_are_not_claimed_before_they_are_due(timed):
    store, unit = timed.store, timed.unit
    add(store, "far", run_at=FUTURE)
    add(store, "soon", delay=2 * unit)
    assert claim(store) is None
    timed.advance(unit)
    assert claim(store) is None
    timed.advance(unit + EPS)
    held = claim(store)
    assert held is not None and held.job.id == "soon"
    assert claim(store) is None
    assert state(store, "far") == JobState.PENDING


def test_queue_filter(store):
    add(store, "a1", queue="a")
    add(store, "b1", queue="b")
    add(store, "c1", queue="c")
    add(store, "b2", queue="b")
    add(store, "d1", queue="default")
    assert claim_all(store, queues=["b"]) == ["b1", "b2"]
    assert claim(store, queues=["zzz"]) is None
    assert claim_all(store, queues=["c", "a"]) == ["a1", "c1"]
    assert claim_all(store, queues=None) == ["d1"]


def test_set_run_pid_leaves_the_claim_intact(store):
    add(store, "a")
    held = claim(store)
    store.set_run_pid(held, 4242)
    assert store.heartbeat("w1", LEASE, held).held
    assert store.finish(held, OK, None).held


# ---------------------------------------------------------------------------------------------
# heartbeat / complete / fail


def test_heartbeat_extends_the_lease(timed):
    store, unit = timed.store, timed.unit
    store.register_worker("w1", "host-a", 1)
    add(store, "a")
    lease = 4 * unit
    held = claim(store, lease=lease)
    first = store.get("a").lease_until
    timed.advance(3 * unit)
    beat_at = store.now()
    beat = store.heartbeat("w1", lease, held)
    assert beat.held is True and beat.stop_requested is False
    extended = store.get("a").lease_until
    assert extended > first
    assert beat_at + lease - EPS <= extended <= store.now() + lease + EPS

    timed.advance(2 * unit)  # past the first deadline, before the extended one
    assert store.rescue_expired(fixed_delay(0.0), 1000 * unit) == []
    assert state(store, "a") == JobState.PROCESSING
    assert store.finish(held, OK, None).held


def test_heartbeat_without_a_claim_reports_held(store):
    store.register_worker("w1", "host-a", 1)
    beat = store.heartbeat("w1", LEASE, None)
    assert beat.held is True and beat.stop_requested is False


def test_complete_records_the_outcome_and_releases_the_job(store):
    store.register_worker("w1", "host-a", 1)
    add(store, "a")
    held = claim(store)
    assert store.finish(held, OK, None).held is True
    job = store.get("a")
    assert (job.state, job.attempts, job.exit_code, job.last_error) == (
        JobState.COMPLETED,
        1,
        0,
        None,
    )
    assert (job.worker_id, job.lease_until) == (None, None)
    [run] = store.runs("a")
    assert (run.outcome, run.exit_code, run.error) == ("exited", 0, None)
    assert run.output_tail == "all good\n"
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert claim(store) is None  # a completed job is never claimed again
    # The claim is spent: a second outcome or heartbeat is fenced off.
    assert store.finish(held, OK, None).held is False
    assert store.finish(held, EXIT_3, None).held is False
    assert store.heartbeat("w1", LEASE, held).held is False
    assert state(store, "a") == JobState.COMPLETED


def test_fail_with_a_retry_delay_schedules_the_retry(timed):
    store, unit = timed.store, timed.unit
    add(store, "a")
    held = claim(store)
    before = store.now()
    assert store.finish(held, EXIT_3, 4 * unit).held is True
    job = store.get("a")
    assert (job.state, job.exit_code, job.last_error) == (
        JobState.FAILED,
        3,
        "exited with status 3",
    )
    assert (job.worker_id, job.lease_until) == (None, None)
    assert before + 4 * unit - EPS <= job.run_at <= store.now() + 4 * unit + EPS
    [run] = store.runs("a")
    assert (run.outcome, run.exit_code, run.error, run.output_tail) == (
        "exited",
        3,
        "exited with status 3",
        "oops\n",
    )
    assert store.next_run_at(None) == pytest.approx(job.run_at, abs=EPS)

    assert claim(store) is None  # not before the backoff
    timed.advance(2 * unit)
    assert claim(store) is None
    timed.advance(2 * unit + EPS)
    retry = claim(store)
    assert (retry.job.id, retry.attempt) == ("a", 2)


def test_fail_without_a_retry_delay_buries_the_job(store):
    add(store, "a")
    held = claim(store)
    result = RunResult(Outcome.TIMED_OUT, None, "timed out after 1s")
    assert store.finish(held, result, None).held is True
    job = store.get("a")
    assert (job.state, job.last_error, job.exit_code) == (JobState.DEAD, "timed out after 1s", None)
    assert ids(store.list_jobs(state="dead")) == ["a"]
    assert store.next_run_at(None) is None
    assert claim(store) is None
    assert store.runs("a")[0].outcome == "timed_out"


def test_finish_records_the_outcome_and_claims_the_next_job(timed):
    store = timed.store
    add(store, "a", "b", "c")
    first = claim(store)
    request = ClaimRequest("w1", "host-a", None, LEASE)
    finished = store.finish(first, OK, None, request)
    assert finished.held is True
    assert state(store, "a") == JobState.COMPLETED
    second = finished.next_claim
    assert (second.job.id, second.worker_id, second.attempt) == ("b", "w1", 1)
    assert (second.job.state, state(store, "b")) == (JobState.PROCESSING, JobState.PROCESSING)
    assert second.run_id != first.run_id
    assert store.heartbeat("w1", LEASE, second).held is True
    # A failed run with a retry delay, claiming what is ready: the run just failed is not.
    before = store.now()
    finished = store.finish(second, EXIT_3, 4 * timed.unit, request)
    assert (finished.held, finished.next_claim.job.id) == (True, "c")
    job = store.get("b")
    assert (job.state, job.last_error) == (JobState.FAILED, "exited with status 3")
    assert before + 4 * timed.unit - EPS <= job.run_at <= store.now() + 4 * timed.unit + EPS
    # Without a request nothing more is claimed; without a delay the job is dead.
    finished = store.finish(finished.next_claim, EXIT_3, None)
    assert finished == (True, None)
    assert state(store, "c") == JobState.DEAD
    assert store.counts()["processing"] == 0


def test_finish_of_a_fenced_claim_still_claims_the_next_job(store):
    add(store, "a", "b")
    held = claim(store)
    store.cancel("a")
    finished = store.finish(held, OK, None, ClaimRequest("w1", "host-a", None, LEASE))
    assert finished.held is False
    assert state(store, "a") == JobState.CANCELED
    assert finished.next_claim.job.id == "b"
    assert store.finish(finished.next_claim, OK, None, None) == (True, None)
    assert state(store, "b") == JobState.COMPLETED


def test_cancel_fences_off_the_running_claim(store):
    store.register_worker("w1", "host-a", 1)
    add(store, "a")
    held = claim(store)
    assert store.cancel("a") is JobState.PROCESSING
    assert store.heartbeat("w1", LEASE, held).held is False
    assert store.finish(held, OK, None).held is False
    assert store.finish(held, EXIT_3, 0.0).held is False
    job = store.get("a")
    assert (job.state, job.exit_code, job.worker_id) == (JobState.CANCELED, None, None)
    [run] = store.runs("a")
    assert run.outcome == "canceled"  # the worker's late report does not rewrite the verdict
    assert run.finished_at is not None
    assert claim(store) is None


# ---------------------------------------------------------------------------------------------
# rescue and fencing


def expire(timed, held) -> None:
    """Move time past the claim's lease."""
    deadline = timed.store.get(held.job.id).lease_until
    timed.advance(max(0.0, deadline - timed.store.now()) + EPS)


def test_rescue_requeues_expired_jobs_as_failed_runs(timed):
    store, unit = timed.store, timed.unit
    add(store, "short", max_retries=5)
    add(store, "long")
    short = claim(store, "w1", lease=unit)
    long = claim(store, "w2", lease=1000 * unit)
    assert store.rescue_expired(fixed_delay(0.0), 1000 * unit) == []  # nothing expired yet
    expire(timed, short)

    policy = fixed_delay(3 * unit)
    now = store.now()
    assert store.rescue_expired(policy, 1000 * unit) == ["short"]
    assert policy.calls == [(1, 5)]
    job = store.get("short")
    assert job.state == JobState.FAILED
    assert (job.worker_id, job.lease_until, job.exit_code) == (None, None, None)
    assert job.last_error  # says why
    assert now + 3 * unit - EPS <= job.run_at <= store.now() + 3 * unit + EPS
    [run] = store.runs("short")
    assert run.outcome == "lost" and run.finished_at is not None and run.error
    assert state(store, "long") == JobState.PROCESSING

    assert store.rescue_expired(policy, 1000 * unit) == []  # done once only
    assert store.finish(long, OK, None).held


def test_rescue_buries_a_job_whose_retries_are_exhausted(timed):
    store, unit = timed.store, timed.unit
    add(store, "a", max_retries=0)
    held = claim(store, lease=unit)
    expire(timed, held)
    policy = fixed_delay(None)
    assert store.rescue_expired(policy, 1000 * unit) == ["a"]
    assert policy.calls == [(1, 0)]
    assert state(store, "a") == JobState.DEAD
    assert store.runs("a")[0].outcome == "lost"
    assert claim(store) is None


def test_stale_claim_after_rescue_is_fenced(timed):
    store, unit = timed.store, timed.unit
    store.register_worker("old", "host-a", 1)
    store.register_worker("new", "host-b", 2)
    add(store, "a")
    stale = claim(store, "old", lease=unit)
    expire(timed, stale)
    assert store.rescue_expired(fixed_delay(0.0), 1000 * unit) == ["a"]

    # Requeued but not yet claimed again: the old worker cannot finish it.
    assert store.heartbeat("old", 4 * unit, stale).held is False
    assert store.finish(stale, OK, None).held is False
    assert state(store, "a") == JobState.FAILED

    fresh = claim(store, "new", lease=4 * unit)
    assert fresh.attempt == 2
    lease_before = store.get("a").lease_until
    assert store.heartbeat("old", 1000 * unit, stale).held is False
    assert store.get("a").lease_until == lease_before  # the stale heartbeat moved nothing
    assert store.finish(stale, OK, None).held is False
    assert store.finish(stale, EXIT_3, None).held is False
    job = store.get("a")
    assert (job.state, job.attempts, job.worker_id, job.exit_code) == (
        JobState.PROCESSING,
        2,
        "new",
        None,
    )
    assert store.heartbeat("new", 4 * unit, fresh).held is True

    assert store.finish(fresh, EXIT_3, None).held is True
    job = store.get("a")
    assert (job.state, job.exit_code) == (JobState.DEAD, 3)
    assert [(r.attempt, r.outcome) for r in store.runs("a")] == [(1, "lost"), (2, "exited")]


def test_stale_claim_is_fenced_when_the_same_worker_claims_the_job_again(timed):
    store, unit = timed.store, timed.unit
    add(store, "a")
    stale = claim(store, "w1", lease=unit)
    expire(timed, stale)
    assert store.rescue_expired(fixed_delay(0.0), 1000 * unit) == ["a"]
    fresh = claim(store, "w1", lease=4 * unit)
    assert (fresh.job.id, fresh.attempt) == ("a", 2)
    assert store.heartbeat("w1", 1000 * unit, stale).held is False
    assert store.finish(stale, OK, None).held is False
    assert (state(store, "a"), store.get("a").attempts) == (JobState.PROCESSING, 2)
    # The late report is still recorded on its own run, which keeps the rescuer's verdict.
    first = store.runs("a")[0]
    assert (first.attempt, first.outcome, first.output_tail) == (1, "lost", "all good\n")
    assert store.finish(fresh, OK, None).held is True


def test_stale_claim_is_fenced_after_dlq_retry_resets_the_attempt_count(timed):
    # dead -> retry_dead -> claimed again by another worker: attempt 1 once more, so the
    # attempt number alone cannot tell the old run from the new one.
    store, unit = timed.store, timed.unit
    add(store, "a", max_retries=0)
    stale = claim(store, "old", lease=unit)
    expire(timed, stale)
    assert store.rescue_expired(fixed_delay(None), 1000 * unit) == ["a"]
    assert store.retry_dead(["a"]) == ["a"]
    fresh = claim(store, "new", lease=4 * unit)
    assert (fresh.job.id, fresh.attempt) == ("a", stale.attempt)
    lease_before = store.get("a").lease_until
    assert store.heartbeat("old", 1000 * unit, stale).held is False
    assert store.get("a").lease_until == lease_before
    assert store.finish(stale, EXIT_3, None).held is False
    assert (state(store, "a"), store.get("a").worker_id) == (JobState.PROCESSING, "new")
    assert store.finish(fresh, OK, None).held is True
    assert state(store, "a") == JobState.COMPLETED


def test_rescue_forgets_silent_workers(timed):
    store, unit = timed.store, timed.unit
    # Kept well past the lease (worker stop reports it as not reached), then forgotten.
    lease = unit / 5
    store.register_worker("silent", "host-a", 1)
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.register_worker("alive", "host-b", 2)
    store.rescue_expired(fixed_delay(0.0), 20 * lease)
    assert sorted(w.id for w in store.live_workers(1000 * unit)) == ["alive", "silent"]
    store.rescue_expired(fixed_delay(0.0), lease)
    assert [w.id for w in store.live_workers(1000 * unit)] == ["alive"]


def test_heartbeat_brings_back_a_worker_forgotten_during_a_stall(timed):
    # A worker silent for longer than the lease (a long GC pause, a suspended VM) is pruned by
    # the rescuer; when it heartbeats again it must be listed again, or `worker stop` and
    # `status` would never see it.
    store, unit = timed.store, timed.unit
    lease = unit / 5
    store.register_worker("w1", "host-a", 7)
    [registered] = store.live_workers(lease)
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.rescue_expired(fixed_delay(0.0), lease)
    assert store.live_workers(1000 * unit) == []
    store.heartbeat("w1", lease, None)
    [worker] = store.live_workers(lease)
    assert (worker.id, worker.host, worker.pid) == ("w1", "host-a", 7)
    # `status` shows when it started, not when it came back.
    assert worker.started_at == registered.started_at < worker.last_heartbeat
    assert sorted(store.request_stop(lease)) == ["w1"]


def test_a_worker_registering_again_keeps_its_start_time(timed):
    # A worker that registers again after a reconnect (or after being pruned) is the same
    # worker: its start time stays the first one.
    store, unit = timed.store, timed.unit
    lease = unit / 5
    store.register_worker("w1", "host-a", 7)
    [first] = store.live_workers(lease)
    timed.advance(unit)
    store.register_worker("w1", "host-a", 7)  # the row is still there
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.rescue_expired(fixed_delay(0.0), lease)
    store.register_worker("w1", "host-a", 7)  # pruned meanwhile
    [worker] = store.live_workers(lease)
    assert worker.started_at == first.started_at < worker.last_heartbeat


def test_a_worker_back_after_being_pruned_obeys_a_stop_asked_while_it_was_away(timed):
    store, unit = timed.store, timed.unit
    lease = unit / 5
    store.register_worker("away", "host-a", 7)
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.rescue_expired(fixed_delay(0.0), lease)
    assert store.live_workers(1000 * unit) == []
    assert store.request_stop(lease) == []  # nobody to ask now, but the request is kept
    timed.advance(unit / 2)
    store.register_worker("later", "host-b", 8)  # started after the stop: not affected
    assert store.heartbeat("away", lease, None).stop_requested is True
    assert store.heartbeat("later", lease, None).stop_requested is False


# ---------------------------------------------------------------------------------------------
# retry_dead / cancel


def test_retry_dead_revives_listed_jobs_and_keeps_history(timed):
    store = timed.store
    make_dead(store, "d1")
    make_dead(store, "d2")
    now = store.now()
    assert store.retry_dead(["d1"]) == ["d1"]
    job = store.get("d1")
    assert (job.state, job.attempts) == (JobState.PENDING, 0)
    assert now - EPS <= job.run_at <= store.now() + EPS
    assert len(store.runs("d1")) == 1  # the history is kept
    assert state(store, "d2") == JobState.DEAD

    held = claim(store)
    assert (held.job.id, held.attempt) == ("d1", 1)
    assert [r.attempt for r in store.runs("d1")] == [1, 1]


def test_retry_dead_refuses_unknown_or_live_jobs_and_changes_nothing(store):
    make_dead(store, "d1")
    make_dead(store, "d2")
    add(store, "p")
    with pytest.raises(JobNotFound):
        store.retry_dead(["d1", "nope", "d2"])
    with pytest.raises(InvalidTransition):
        store.retry_dead(["d1", "p", "d2"])
    assert [state(store, j) for j in ("d1", "d2", "p")] == [
        JobState.DEAD,
        JobState.DEAD,
        JobState.PENDING,
    ]
    assert store.get("d1").attempts == 1


def test_retry_dead_with_none_revives_every_dead_job(store):
    assert store.retry_dead(None) == []
    make_dead(store, "d1")
    add(store, "p", queue="other")
    make_dead(store, "d2")
    assert sorted(store.retry_dead(None)) == ["d1", "d2"]
    assert store.counts()["dead"] == 0
    assert store.counts()["pending"] == 3
    assert store.retry_dead(None) == []


def test_cancel_pending_failed_and_processing_jobs(store):
    add(store, "pending")
    add(store, "failed", queue="f")
    add(store, "processing", queue="p")
    assert store.finish(claim(store, queues=["f"]), EXIT_3, 3600).held
    claim(store, queues=["p"])
    assert store.cancel("pending") is JobState.PENDING
    assert store.cancel("failed") is JobState.FAILED
    assert store.cancel("processing") is JobState.PROCESSING
    assert store.counts()["canceled"] == 3
    assert store.next_run_at(None) is None
    assert claim(store) is None


def test_cancel_of_a_finished_or_unknown_job_is_refused(store):
    add(store, "done", queue="c")
    assert store.finish(claim(store, queues=["c"]), OK, None).held
    make_dead(store, "dead")
    add(store, "gone")
    store.cancel("gone")
    for job_id, expected in [
        ("done", JobState.COMPLETED),
        ("dead", JobState.DEAD),
        ("gone", JobState.CANCELED),
    ]:
        updated = store.get(job_id).updated_at
        with pytest.raises(InvalidTransition):
            store.cancel(job_id)
        assert state(store, job_id) == expected
        assert store.get(job_id).updated_at == updated
    with pytest.raises(JobNotFound):
        store.cancel("nope")


# ---------------------------------------------------------------------------------------------
# config


def test_config_set_get_unset(store):
    assert store.config_items() == {}
    store.config_set("max-retries", "5")
    store.config_set("backoff-base", "3")
    store.config_set("max-retries", "7")  # replaces
    assert store.config_items() == {"max-retries": "7", "backoff-base": "3"}
    other = open_store(store.target)
    try:
        assert other.config_items() == {"max-retries": "7", "backoff-base": "3"}
    finally:
        other.close()
    assert store.config_unset("max-retries") is True
    assert store.config_unset("max-retries") is False
    assert store.config_unset("never-set") is False
    assert store.config_items() == {"backoff-base": "3"}


# ---------------------------------------------------------------------------------------------
# workers


def test_worker_registry(timed):
    store, unit = timed.store, timed.unit
    lease = 4 * unit
    before = store.now()
    store.register_worker("w1", "host-a", 101)
    store.register_worker("w2", "host-b", 202)
    live = {w.id: w for w in store.live_workers(lease)}
    assert set(live) == {"w1", "w2"}
    w1 = live["w1"]
    assert (w1.host, w1.pid, w1.current_job) == ("host-a", 101, None)
    assert before - EPS <= w1.started_at <= w1.last_heartbeat <= store.now() + EPS

    add(store, "a")
    held = claim(store, "w1")
    assert {w.id: w.current_job for w in store.live_workers(lease)} == {"w1": "a", "w2": None}
    assert store.finish(held, OK, None).held
    assert {w.id: w.current_job for w in store.live_workers(lease)} == {"w1": None, "w2": None}

    store.unregister_worker("w2")
    assert [w.id for w in store.live_workers(lease)] == ["w1"]
    assert store.heartbeat("w1", lease, None).stop_requested is False


def test_live_workers_leaves_out_silent_ones_and_heartbeat_keeps_them(timed):
    store, unit = timed.store, timed.unit
    lease = 4 * unit
    store.register_worker("beating", "h", 1)
    store.register_worker("silent", "h", 2)
    timed.advance(3 * unit)
    store.heartbeat("beating", lease, None)
    timed.advance(2 * unit)  # "silent" is now 5 units quiet, "beating" 2
    assert [w.id for w in store.live_workers(lease)] == ["beating"]


def test_request_stop_asks_live_workers_and_reaches_those_away_when_they_return(timed):
    store, unit = timed.store, timed.unit
    lease = 4 * unit
    store.register_worker("stale", "h", 1)
    timed.advance(5 * unit)
    store.register_worker("w1", "h", 2)
    store.register_worker("w2", "h", 3)
    assert sorted(store.request_stop(lease)) == ["w1", "w2"]
    store.register_worker("late", "h", 4)  # started after the request: not affected

    assert store.heartbeat("w1", lease, None).stop_requested is True
    assert store.heartbeat("w2", lease, None).stop_requested is True
    assert store.heartbeat("late", lease, None).stop_requested is False
    # Silent past its lease when the stop was asked (SPEC §5): it obeys when it comes back.
    assert store.heartbeat("stale", lease, None).stop_requested is True

    add(store, "a")
    held = claim(store, "w1")
    beat = store.heartbeat("w1", lease, held)
    assert beat.held is True and beat.stop_requested is True


# ---------------------------------------------------------------------------------------------
# waiting


def test_next_run_at(timed):
    store, unit = timed.store, timed.unit
    assert store.next_run_at(None) is None
    add(store, "later", delay=100 * unit, queue="a")
    expected = store.get("later").run_at
    assert store.next_run_at(None) == pytest.approx(expected, abs=EPS)
    add(store, "sooner", delay=10 * unit, queue="b")
    sooner = store.get("sooner").run_at
    assert store.next_run_at(None) == pytest.approx(sooner, abs=EPS)
    assert store.next_run_at(["a"]) == pytest.approx(expected, abs=EPS)
    assert store.next_run_at(["b", "c"]) == pytest.approx(sooner, abs=EPS)
    assert store.next_run_at(["c"]) is None

    add(store, "due", run_at=PAST, queue="c")
    held = claim(store, queues=["c"])  # processing jobs wait for nothing
    assert store.next_run_at(["c"]) is None
    assert store.finish(held, EXIT_3, 50 * unit).held  # a scheduled retry counts
    assert store.next_run_at(["c"]) == pytest.approx(store.get("due").run_at, abs=EPS)
    store.cancel("sooner")
    assert store.next_run_at(["b"]) is None


def test_wait_for_work_returns_early_when_another_connection_commits(store):
    other = open_store(store.target)
    done = threading.Event()
    added = []

    def keep_adding():
        # Keep committing until the waiter wakes, so there is no race with its start.
        while not done.is_set():
            added.extend(other.add([spec()]))
            done.wait(0.05)

    thread = threading.Thread(target=keep_adding)
    started = time.monotonic()
    thread.start()
    try:
        store.wait_for_work(15.0)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        thread.join()
        other.close()
    assert elapsed < 5.0
    assert added and store.counts()["pending"] == len(added)


def test_wait_for_work_waits_for_the_timeout_when_nothing_happens(store):
    add(store, "a", run_at=FUTURE)
    started = time.monotonic()
    store.wait_for_work(0.3)
    elapsed = time.monotonic() - started
    assert 0.28 <= elapsed < 2.0


# ---------------------------------------------------------------------------------------------
# concurrency


def test_concurrent_claimers_take_every_job_exactly_once(store):
    total, workers = 200, 6
    store.add([spec(f"job-{n:03}") for n in range(total)])
    claimed: list[list[str]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(index: int) -> None:
        own = open_store(store.target)
        try:
            start.wait()
            while (held := own.claim(ClaimRequest(f"w{index}", "host", None, LEASE))) is not None:
                assert held.attempt == 1
                claimed[index].append(held.job.id)
                assert own.finish(held, OK, None).held
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    taken = Counter(job_id for ids_ in claimed for job_id in ids_)
    assert sorted(taken) == [f"job-{n:03}" for n in range(total)]
    assert set(taken.values()) == {1}
    assert store.counts()["completed"] == total
    assert all(len(store.runs(job_id)) == 1 for job_id in ("job-000", "job-199"))


def test_a_run_finishes_when_its_command_ended_not_when_its_outcome_was_recorded(timed):
    # After an outage the outcome lands late; the run's finish time is its start plus how long
    # the command ran, as the worker measured it (and never later than the recording).
    store, unit = timed.store, timed.unit
    add(store, "a")
    held = claim(store, "w1")
    timed.advance(4 * unit)  # the store was unreachable meanwhile
    store.finish(held, RunResult(Outcome.EXITED, 0, None, seconds=unit), None)
    [run] = store.runs("a")
    assert run.finished_at == pytest.approx(run.started_at + unit, abs=0.01)
    add(store, "b")
    unmeasured = claim(store, "w1")
    store.finish(unmeasured, RunResult(Outcome.NOT_STARTED, None, "could not start"), None)
    [run] = store.runs("b")
    assert run.finished_at >= run.started_at
