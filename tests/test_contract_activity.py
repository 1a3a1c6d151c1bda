"""The store contract: the dashboard's reads (SPEC §9): runs per minute over the last hour, and
a page of the job list (`offset`). Run against every backend (conftest.py fixtures)."""

from __future__ import annotations

from storekit import EXIT_3, OK, add, claim, ids


def finish_one(store, job_id: str, result=OK) -> None:
    held = claim(store)
    assert held is not None and held.job.id == job_id
    assert store.finish(held, result, None).held


def test_runs_per_minute_counts_ended_runs_in_the_minute_they_ended(timed):
    store = timed.store
    assert store.runs_per_minute() == [0] * 60
    add(store, "a", "b", "c")
    finish_one(store, "a")
    finish_one(store, "b", EXIT_3)  # a failed run counts as a run too
    running = claim(store)  # still running: not counted
    assert running is not None and running.job.id == "c"
    counts = store.runs_per_minute()
    assert len(counts) == 60 and counts[-1] == 2 and sum(counts) == 2
    assert store.runs_per_minute(5) == [0, 0, 0, 0, 2]
    if timed.clock is None:
        return  # the server's clock: minutes cannot be skipped
    timed.advance(150)  # two and a half minutes later
    assert store.finish(running, OK, None).held
    counts = store.runs_per_minute()
    assert counts[-1] == 1 and counts[-3] == 2 and sum(counts) == 3
    timed.advance(3600 - 150 - 1)  # a and b ended 3599 s ago: in the oldest minute still
    assert store.runs_per_minute()[0] == 2
    timed.advance(2)
    counts = store.runs_per_minute()
    assert sum(counts) == 1 and counts[2] == 1  # c ended 3451 s ago: minute 57


def test_a_page_of_jobs_starts_past_the_offset(store):
    add(store, *[f"j{i}" for i in range(7)], queue="q")
    add(store, "other", queue="r")
    assert ids(store.list_jobs(limit=3, offset=3)) == ["j3", "j4", "j5"]
    assert ids(store.list_jobs(queue="q", offset=5)) == ["j5", "j6"]
    assert ids(store.list_jobs(offset=6)) == ["j6", "other"]
    assert store.list_jobs(queue="q", limit=5, offset=10) == []
    assert ids(store.list_jobs(limit=2, offset=0)) == ["j0", "j1"]
