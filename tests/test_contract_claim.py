"""The store contract: claiming jobs, waiting for work, concurrent claimers.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from storekit import (
    EPS,
    EXIT_3,
    FUTURE,
    LEASE,
    OK,
    PAST,
    add,
    claim,
    claim_all,
    spec,
    state,
)

from queuectl.models import JobState
from queuectl.store import ClaimRequest, open_store

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
