"""The store contract: heartbeats, recording outcomes, scheduling retries.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

import pytest
from storekit import (
    EPS,
    EXIT_3,
    LEASE,
    OK,
    add,
    claim,
    fixed_delay,
    ids,
    state,
)

from queuectl.models import JobState, Outcome, RunResult
from queuectl.store import ClaimRequest

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
