"""The store contract: dependencies (`after`, the `waiting` state) and unique keys (SPEC §7).

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

import multiprocessing

import pytest
from storekit import EXIT_3, LEASE, OK, add, claim, ids, spec, state

from queuectl.errors import DependencyError, DuplicateJob, InvalidTransition
from queuectl.models import JobState
from queuectl.store import ClaimRequest, open_store

W, P, C, D, X = (
    JobState.WAITING,
    JobState.PENDING,
    JobState.COMPLETED,
    JobState.DEAD,
    JobState.CANCELED,
)


def complete(store, job_id: str) -> None:
    held = claim(store, queues=[store.get(job_id).queue])
    assert held is not None and held.job.id == job_id
    assert store.finish(held, OK, None).held


def bury(store, job_id: str) -> None:
    held = claim(store, queues=[store.get(job_id).queue])
    assert held is not None and held.job.id == job_id
    assert store.finish(held, EXIT_3, None).held


def states(store, *job_ids: str) -> list[JobState]:
    return [state(store, job_id) for job_id in job_ids]


def test_a_job_waits_until_its_dependency_completes(store):
    add(store, "build", queue="b")
    add(store, "test", queue="t", after=["build"])
    assert state(store, "test") is W
    assert claim(store, queues=["t"]) is None  # waiting jobs are never claimed
    assert store.next_run_at(["t"]) is None
    complete(store, "build")
    assert state(store, "test") is P
    assert claim(store, queues=["t"]).job.id == "test"


def test_a_chain_whose_middle_job_dies_cancels_the_rest(store):
    add(store, "a", queue="a")
    add(store, "b", queue="b", after=["a"], max_retries=0)
    add(store, "c", queue="c", after=["b"])
    complete(store, "a")
    bury(store, "b")
    assert states(store, "a", "b", "c") == [C, D, X]
    assert store.get("c").last_error == "dependency b ended dead"


def test_a_canceled_dependency_cancels_dependents_transitively(store):
    add(store, "a", queue="a")
    add(store, "b", queue="b", after=["a"])
    add(store, "c", queue="c", after=["b"])
    add(store, "other", queue="o")
    assert store.cancel("a") is P
    assert states(store, "a", "b", "c", "other") == [X, X, X, P]
    assert store.get("b").last_error == "dependency a ended canceled"
    assert store.get("c").last_error == "dependency b ended canceled"


def test_cancel_of_a_waiting_job_cancels_it_and_its_dependents(store):
    add(store, "a", queue="a")
    add(store, "b", queue="b", after=["a"])
    add(store, "c", queue="c", after=["b"])
    assert store.cancel("b") is W
    assert states(store, "a", "b", "c") == [P, X, X]


def test_a_diamond_is_released_by_its_last_dependency(store):
    add(store, "a", queue="a")
    add(store, "b", queue="b", after=["a"])
    add(store, "c", queue="c", after=["a"])
    add(store, "d", queue="d", after=["b", "c"])
    complete(store, "a")
    assert states(store, "b", "c", "d") == [P, P, W]
    complete(store, "b")
    assert state(store, "d") is W
    complete(store, "c")
    assert state(store, "d") is P


def test_a_diamond_with_one_dead_side_cancels_the_join(store):
    add(store, "a", queue="a")
    add(store, "b", queue="b", after=["a"], max_retries=0)
    add(store, "c", queue="c", after=["a"])
    add(store, "d", queue="d", after=["b", "c"])
    complete(store, "a")
    bury(store, "b")
    complete(store, "c")
    assert states(store, "b", "c", "d") == [D, C, X]
    assert store.get("d").last_error == "dependency b ended dead"


def test_a_thousand_dependents_are_released_by_one_finish(store):
    add(store, "root", queue="root")
    store.add([spec(f"dep-{n}", after=["root"], queue="deps") for n in range(1000)])
    assert store.counts()["waiting"] == 1000
    complete(store, "root")
    counts = store.counts()
    assert counts["waiting"] == 0 and counts["pending"] == 1000


def test_finish_and_claim_takes_a_dependent_it_released_when_that_is_the_best_job(store):
    # A worker that completes `a` and claims next in the same call: `after-a`, ready from
    # that moment and of the highest priority, comes first. (PostgreSQL's one statement did
    # not see it as ready yet and took `other`.)
    add(store, "a")
    held = claim(store)
    add(store, "after-a", priority=5, after=["a"])
    add(store, "other")
    request = ClaimRequest("w1", "host-a", None, LEASE)
    assert store.finish(held, OK, None, request).next_claim.job.id == "after-a"
    assert claim(store, "w2").job.id == "other"


def test_a_completed_dependency_is_satisfied_at_once(store):
    add(store, "a", queue="a")
    complete(store, "a")
    add(store, "b", after=["a"])
    assert state(store, "b") is P


@pytest.mark.parametrize("fate", ["dead", "canceled"])
def test_a_dependency_that_ended_badly_is_refused_and_nothing_written(store, fate):
    add(store, "a", queue="a", max_retries=0)
    if fate == "dead":
        bury(store, "a")
    else:
        store.cancel("a")
    with pytest.raises(DependencyError, match=f"'a', which already ended {fate}"):
        store.add([spec("ok"), spec("b", after=["a"])])
    assert ids(store.list_jobs()) == ["a"]


def test_an_unknown_dependency_is_refused_and_nothing_written(store):
    with pytest.raises(DependencyError, match="'nope', and there is no such job"):
        store.add([spec("a"), spec("b", after=["nope"])])
    assert store.list_jobs() == []


def test_a_batch_may_depend_on_earlier_lines_but_not_later_ones(store):
    assert store.add([spec("a"), spec("b", after=["a"])]) == ["a", "b"]
    assert state(store, "b") is W
    with pytest.raises(DependencyError, match="later line"):
        store.add([spec("c", after=["d"]), spec("d")])
    assert ids(store.list_jobs()) == ["a", "b"]


def test_dlq_retry_of_a_dead_dependency_does_not_revive_canceled_dependents(store):
    add(store, "a", queue="a", max_retries=0)
    add(store, "b", queue="b", after=["a"])
    bury(store, "a")
    assert store.retry_dead(["a"]) == ["a"]
    complete(store, "a")
    assert states(store, "a", "b") == [C, X]


def test_a_rescued_job_that_is_dead_cancels_its_dependents(timed):
    store = timed.store
    add(store, "a", queue="a", max_retries=0)
    add(store, "b", queue="b", after=["a"])
    held = claim(store, queues=["a"], lease=timed.unit / 5)
    assert held is not None
    timed.advance(timed.unit / 2)
    assert store.rescue_expired(lambda attempts, max_retries: None, LEASE) == ["a"]
    assert states(store, "a", "b") == [D, X]


# -- unique keys ------------------------------------------------------------------------------


def test_a_unique_key_held_by_an_unfinished_job_gives_back_its_id(store):
    assert store.add([spec("first", unique_key="nightly")]) == ["first"]
    assert store.add([spec("second", unique_key="nightly")]) == ["first"]
    assert ids(store.list_jobs()) == ["first"]
    complete(store, "first")
    # Finished: the key is free again.
    assert store.add([spec("third", unique_key="nightly")]) == ["third"]


def test_a_batch_repeating_a_key_gives_the_first_lines_id(store):
    added = store.add([spec("a", unique_key="k"), spec("b", unique_key="k"), spec("c")])
    assert added == ["a", "a", "c"]
    assert ids(store.list_jobs()) == ["a", "c"]


def test_a_duplicate_id_in_the_linked_path_is_refused(store):
    add(store, "a")
    with pytest.raises(DuplicateJob):
        store.add([spec("b", unique_key="k"), spec("a", unique_key="other")])
    assert ids(store.list_jobs()) == ["a"]


def test_dlq_retry_refuses_a_dead_job_whose_key_is_held_again(store):
    add(store, "old", unique_key="k", max_retries=0)
    bury(store, "old")
    assert store.add([spec("new", unique_key="k")]) == ["new"]
    with pytest.raises(InvalidTransition, match="held by unfinished job 'new'"):
        store.retry_dead(["old"])
    assert state(store, "old") is D


def _enqueue_with_key(target: str, key: str, job_id: str, gate) -> str:
    """One enqueuer process: open the store, wait for the others, add a job with `key`."""
    store = open_store(target)
    try:
        gate.wait(timeout=30)
        return store.add([spec(job_id, unique_key=key)])[0]
    finally:
        store.close()


def test_concurrent_enqueuers_of_one_key_create_exactly_one_job(store):
    # Eight processes, each with its own connection, released at once by a barrier, 50 rounds:
    # exactly one job per key, and every one of them is told that job's id.
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(8) as pool:
        for round_ in range(50):
            key = f"key-{round_}"
            gate = manager.Barrier(8)
            calls = [(store.target, key, f"{key}-{n}", gate) for n in range(8)]
            answers = pool.starmap(_enqueue_with_key, calls)
            created = [job.id for job in store.list_jobs() if job.unique_key == key]
            assert len(created) == 1, created
            assert answers == created * 8


@pytest.mark.parametrize("ended", ["completed", "dead"])
def test_maintenance_settles_a_job_its_dependency_ended_without(store, ended):
    # The PostgreSQL race this covers (chaining.settle_stranded): a job linked to a dependency
    # while that dependency's one-statement finish ran. Made here by ending the dependency
    # behind the store's back; the next maintenance pass settles the dependent.
    add(store, "a", queue="a")
    add(store, "b", queue="b", after=["a"])
    table = "queuectl_jobs" if store.target.startswith("postgres") else "jobs"
    store._transaction(
        lambda tx: tx.execute(f"UPDATE {table} SET state = '{ended}' WHERE id = 'a'", {})
    )
    assert state(store, "b") is W
    store.rescue_expired(lambda attempts, max_retries: None, LEASE)
    assert state(store, "b") is (P if ended == "completed" else X)
