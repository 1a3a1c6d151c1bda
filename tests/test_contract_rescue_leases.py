"""The store contract: expired leases are rescued and stale claims fenced off.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

from storekit import (
    EPS,
    EXIT_3,
    OK,
    add,
    claim,
    expire,
    fixed_delay,
    state,
)

from queuectl.models import JobState

# ---------------------------------------------------------------------------------------------
# rescue and fencing


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
