"""The store contract: adding, reading, listing and counting jobs.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from storekit import (
    EPS,
    EXIT_3,
    FUTURE,
    OK,
    PAST,
    add,
    claim,
    ids,
    spec,
    state,
)

from queuectl.errors import DuplicateJob, JobNotFound
from queuectl.models import STATES, JobState
from queuectl.store import open_store

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
    add(store, "waiting", queue="waiting", after=["processing"])

    assert store.counts() == dict.fromkeys(STATES, 1)
    assert set(store.counts()) == {
        "waiting",
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
