"""The store contract: the run-time histogram behind SPEC §9's
`queuectl_job_run_duration_seconds` (Store.run_durations), beside the run counts.

One suite run against every backend (the `store` fixture in conftest.py); helpers in
storekit.py. Runs are closed the ways a worker, `cancel` and the rescuer close them, and, where
a test needs a run of an exact length, by setting its end behind the store's back: the trigger
that counts a closing run is what is under test there.
"""

from __future__ import annotations

import bisect
import math

import pytest
from storekit import EXIT_3, OK, add, claim, expire, fixed_delay

from queuectl.models import JobState
from queuectl.store import open_store, postgres_schema, sqlite_schema
from queuectl.store.run_stats import RUN_DURATION_BOUNDS


def sql(store, sqlite: str, postgres: str) -> list:
    """Run one statement behind the store's back, in the backend's own dialect."""
    statement = postgres if store.target.startswith("postgres") else sqlite
    return store._transaction(lambda tx: tx.execute(statement, {}).fetchall())


def close_run(store, run_id: int, seconds: float, exit_code: int = 0) -> None:
    """End an open run `seconds` after it started, as a worker's finish would, without
    changing its job: only the runs table's trigger acts."""
    change = (
        f"SET finished_at = started_at + {seconds!r}, outcome = 'exited', "
        f"exit_code = {exit_code} WHERE run_id = {run_id} RETURNING run_id"
    )
    sql(store, f"UPDATE runs {change}", f"UPDATE queuectl_runs {change}")


def mark_completed(store, job_id: str) -> None:
    """Finish a job behind the store's back (its run closed by close_run), so prune may take
    it."""
    change = f"SET state = 'completed' WHERE id = '{job_id}' RETURNING id"
    assert sql(store, f"UPDATE jobs {change}", f"UPDATE queuectl_jobs {change}")


def bucket_of(seconds: float) -> float:
    """The bound a run of this length is counted under: the smallest one at or above it."""
    return RUN_DURATION_BOUNDS[bisect.bisect_left(RUN_DURATION_BOUNDS, seconds)]


def expected(lengths: list[float]) -> tuple:
    """The cumulative buckets a queue with runs of these lengths must show."""
    below = [bucket_of(length) for length in lengths]
    return tuple((bound, sum(1 for b in below if b <= bound)) for bound in RUN_DURATION_BOUNDS)


def histograms(store) -> dict:
    return {h.queue: h for h in store.run_durations()}


def runs_by_queue(store) -> dict:
    """Runs and seconds per queue, summed over outcomes, as run_counts() gives them."""
    total: dict = {}
    for count in store.run_counts():
        runs, seconds = total.get(count.queue, (0, 0.0))
        total[count.queue] = (runs + count.runs, seconds + count.seconds)
    return total


def assert_agrees_with_run_counts(store) -> None:
    """Every queue's histogram counts each run run_counts counts, once, and is well formed."""
    counted = runs_by_queue(store)
    found = histograms(store)
    assert found.keys() == counted.keys()
    for queue, histogram in found.items():
        bounds = [bound for bound, _ in histogram.buckets]
        assert bounds == list(RUN_DURATION_BOUNDS), queue
        counts = [count for _, count in histogram.buckets]
        assert counts == sorted(counts), f"{queue}: buckets not cumulative: {counts}"
        assert histogram.count == counts[-1] == counted[queue][0], queue
        assert histogram.seconds == pytest.approx(counted[queue][1], abs=1e-6), queue


def test_bounds_are_increasing_and_end_at_infinity():
    assert list(RUN_DURATION_BOUNDS) == sorted(set(RUN_DURATION_BOUNDS))
    assert RUN_DURATION_BOUNDS[0] > 0 and math.isinf(RUN_DURATION_BOUNDS[-1])


def test_an_empty_store_has_no_histogram(store):
    assert store.run_durations() == []


def test_each_run_lands_in_the_bucket_of_its_length_bounds_included(store):
    """The migration's bucketing (SQL) and RUN_DURATION_BOUNDS (Python) say the same thing,
    at each bound, just above it, and past the last one."""
    finite = [bound for bound in RUN_DURATION_BOUNDS if not math.isinf(bound)]
    lengths = [0.0, *finite, *(bound + 0.001 for bound in finite), 86_400.0]
    ids = [f"r{i}" for i in range(len(lengths))]
    add(store, *ids, queue="timed")
    for length in lengths:
        held = claim(store)
        close_run(store, held.run_id, length)
    [histogram] = store.run_durations()
    assert histogram.queue == "timed"
    assert histogram.buckets == expected(lengths)
    assert histogram.count == len(lengths)
    assert histogram.seconds == pytest.approx(sum(lengths), abs=1e-3)
    assert_agrees_with_run_counts(store)


def test_every_way_a_run_ends_is_counted_once_beside_run_counts(timed):
    store, unit = timed.store, timed.unit
    add(store, "ok", queue="a")
    assert store.finish(claim(store), OK, None).held
    add(store, "bad", queue="b", max_retries=1)
    assert store.finish(claim(store), EXIT_3, 0.0).held  # failed, retried
    assert store.finish(claim(store), EXIT_3, None).held  # dead
    add(store, "gone", queue="b")
    claim(store)
    store.cancel("gone")
    add(store, "lost", queue="c", max_retries=0)
    held = claim(store, lease=unit)
    expire(timed, held)
    assert store.rescue_expired(fixed_delay(None), 1000 * unit) == ["lost"]
    assert store.get("lost").state == JobState.DEAD
    # A stale report of the rescued run changes nothing, here as in run_counts.
    assert not store.finish(held, OK, None).held
    counts = {queue: h.count for queue, h in histograms(store).items()}
    assert counts == {"a": 1, "b": 3, "c": 1}
    assert_agrees_with_run_counts(store)


def test_prune_lowers_no_bucket(store):
    add(store, "x", "y", queue="kept")
    for length in (0.2, 42.0):
        held = claim(store)
        close_run(store, held.run_id, length)
        mark_completed(store, held.job.id)
    before = store.run_durations()
    assert before[0].count == 2
    assert store.prune_finished(0, [JobState.COMPLETED]) == 2
    assert store.counts()["completed"] == 0
    assert store.run_durations() == before
    assert_agrees_with_run_counts(store)


def test_a_store_from_before_the_histogram_gets_it_from_its_runs(db_target, monkeypatch):
    """A store made by the previous version (its migrations less the histogram's), with some
    runs pruned already: migrating puts the runs still there in their buckets, and those pruned
    (counted by run_counts, gone) in the bucket of their mean length, so that the histogram's
    count and sum are run_counts' from the start."""
    schema = postgres_schema if db_target.startswith("postgres") else sqlite_schema
    histogram = next(i for i, m in enumerate(schema.MIGRATIONS) if "run_durations (" in m)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:histogram])
    old = open_store(db_target)
    try:
        with pytest.raises(Exception, match="run_durations"):
            old.run_durations()  # no such table yet
        add(old, "kept", "pruned-20", "pruned-40", queue="q")
        add(old, "other", queue="p")
        for job_id, length in (("kept", 0.05), ("pruned-20", 20.0), ("pruned-40", 40.0)):
            held = claim(old, queues=["q"])
            assert held.job.id == job_id
            close_run(old, held.run_id, length)
            if job_id != "kept":
                mark_completed(old, job_id)
        held = claim(old, queues=["p"])
        close_run(old, held.run_id, 7200.0, exit_code=1)
        assert old.prune_finished(0, [JobState.COMPLETED]) == 2
    finally:
        old.close()
    monkeypatch.undo()

    store = open_store(db_target)
    try:
        found = histograms(store)
        # q: the kept run (0.05 s) in its bucket; the two pruned ones (60 s in all) at 30 s.
        assert found["q"].buckets == expected([0.05, 30.0, 30.0])
        assert found["q"].seconds == pytest.approx(60.05, abs=1e-3)
        assert found["p"].buckets == expected([7200.0])
        assert_agrees_with_run_counts(store)
        # And from now on the trigger counts new runs in both.
        add(store, "new", queue="q")
        close_run(store, claim(store, queues=["q"]).run_id, 0.7)
        assert histograms(store)["q"].buckets == expected([0.05, 30.0, 30.0, 0.7])
        assert_agrees_with_run_counts(store)
    finally:
        store.close()
