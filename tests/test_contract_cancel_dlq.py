"""The store contract: cancel, and reviving dead jobs (retry_dead).

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
    make_dead,
    state,
)

from queuectl.errors import InvalidTransition, JobNotFound
from queuectl.models import JobState


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
