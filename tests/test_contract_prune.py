"""The store contract: prune (SPEC §8, retention) and the once-per-interval chore that workers
prune by `retention` under.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storekit import EXIT_3, OK, add, claim, spec, state

from queuectl.errors import DependencyError, JobNotFound
from queuectl.models import JobState, log_file_name

W, P, C, D, X = (
    JobState.WAITING,
    JobState.PENDING,
    JobState.COMPLETED,
    JobState.DEAD,
    JobState.CANCELED,
)
FINISHED = [C, X, D]


def complete(store, job_id: str) -> None:
    held = claim(store, queues=[store.get(job_id).queue])
    assert held is not None and held.job.id == job_id
    assert store.finish(held, OK, None).held


def bury(store, job_id: str) -> None:
    held = claim(store, queues=[store.get(job_id).queue])
    assert held is not None and held.job.id == job_id
    assert store.finish(held, EXIT_3, None).held


def exists(store, job_id: str) -> bool:
    try:
        store.get(job_id)
    except JobNotFound:
        return False
    return True


def sql(store, sqlite: str, postgres: str) -> list:
    """Rows of one statement run behind the store's back, in the backend's own dialect."""
    statement = postgres if store.target.startswith("postgres") else sqlite
    return store._transaction(lambda tx: tx.execute(statement, {}).fetchall())


def run_counts(store) -> dict:
    """The metrics' run counts (SPEC §9: monotonic across prune), summed over PostgreSQL's
    shards."""
    rows = sql(
        store,
        "SELECT queue, outcome, runs, seconds FROM run_counts",
        "SELECT queue, outcome, sum(runs), sum(seconds) FROM queuectl_run_counts "
        "GROUP BY queue, outcome",
    )
    return {
        (queue, outcome): (int(runs), round(seconds, 3)) for queue, outcome, runs, seconds in rows
    }


def finished_pair(store, job_id: str, fate: JobState) -> None:
    """A job of its own queue that ended in `fate` after one run (canceled: while pending)."""
    add(store, job_id, queue=f"q-{job_id}", max_retries=0)
    if fate is C:
        complete(store, job_id)
    elif fate is D:
        bury(store, job_id)
    else:
        store.cancel(job_id)


def test_prune_takes_finished_jobs_older_than_the_cutoff_and_leaves_recent_ones(timed):
    store = timed.store
    for job_id, fate in (("old-c", C), ("old-x", X), ("old-d", D)):
        finished_pair(store, job_id, fate)
    timed.advance(10 * timed.unit)
    for job_id, fate in (("new-c", C), ("new-x", X), ("new-d", D)):
        finished_pair(store, job_id, fate)
    assert store.prune_finished(5 * timed.unit, [C, X]) == 2
    assert not exists(store, "old-c") and not exists(store, "old-x")
    assert state(store, "old-d") is D  # dead was not asked for
    assert [state(store, j) for j in ("new-c", "new-x", "new-d")] == [C, X, D]
    with pytest.raises(JobNotFound):
        store.runs("old-c")
    # 0 takes every finished job of the states asked for.
    assert store.prune_finished(0, [D]) == 2
    assert store.prune_finished(0, FINISHED) == 2
    assert store.list_jobs() == []


def test_prune_never_takes_an_unfinished_job(timed):
    store = timed.store
    add(store, "pending", queue="p")
    add(store, "later", queue="p", run_at="2100-01-01T00:00:00Z")
    add(store, "failing", queue="f", max_retries=5)
    held = claim(store, queues=["f"])
    assert store.finish(held, EXIT_3, 3600.0).held  # failed, its retry an hour away
    add(store, "running", queue="r")
    assert claim(store, queues=["r"]).job.id == "running"
    add(store, "root", queue="root")
    add(store, "waiting", queue="w", after=["root"])
    before = {job.id: job.state for job in store.list_jobs()}
    assert set(before.values()) == {P, JobState.FAILED, JobState.PROCESSING, W}
    timed.advance(10 * timed.unit)
    assert store.prune_finished(0, FINISHED, dry_run=True) == 0
    assert store.prune_finished(0, FINISHED) == 0
    assert {job.id: job.state for job in store.list_jobs()} == before


def test_prune_refuses_unfinished_states_and_negative_ages(store):
    add(store, "a")
    for bad in (JobState.PENDING, JobState.WAITING, JobState.PROCESSING, JobState.FAILED):
        with pytest.raises(ValueError, match="finished jobs only"):
            store.prune_finished(0, [bad])
    with pytest.raises(ValueError, match="at least 0"):
        store.prune_finished(-1, [C])
    assert exists(store, "a")


def test_a_dry_run_counts_and_deletes_nothing(store):
    for n in range(3):
        finished_pair(store, f"c{n}", C)
    finished_pair(store, "x", X)
    finished_pair(store, "d", D)
    assert store.prune_finished(0, [C, X], dry_run=True) == 4
    assert store.prune_finished(0, [D], dry_run=True) == 1
    assert store.prune_finished(0, FINISHED, dry_run=True, limit=2) == 2
    assert len(store.list_jobs()) == 5
    assert store.prune_finished(0, FINISHED) == 5


def test_prune_goes_in_batches_and_stops_at_its_limit(store):
    store.add([spec(f"j{n:04d}") for n in range(1200)])
    done = 0
    while (held := claim(store)) is not None:
        assert store.finish(held, OK, None).held
        done += 1
    assert done == 1200
    batches: list[int] = []
    assert (
        store.prune_finished(0, [C], limit=700, on_batch=lambda ids: batches.append(len(ids)))
        == 700
    )
    assert batches == [200, 200, 200, 100]  # PRUNE_BATCH jobs a transaction at most
    assert store.counts()["completed"] == 500
    # on_batch returning False stops the prune after that batch.
    assert store.prune_finished(0, [C], on_batch=lambda ids: False) == 200
    assert store.counts()["completed"] == 300
    assert store.prune_finished(0, [C]) == 300


def test_prune_keeps_the_run_counts(store):
    for job_id, fate in (("c", C), ("d", D), ("x", X)):
        finished_pair(store, job_id, fate)
    add(store, "retried", queue="q-c", max_retries=1)
    held = claim(store, queues=["q-c"])
    assert store.finish(held, EXIT_3, 0.0).held
    complete(store, "retried")
    before = run_counts(store)
    assert before[("q-c", "completed")][0] == 2 and before[("q-c", "failed")][0] == 1
    assert store.prune_finished(0, FINISHED) == 4
    assert run_counts(store) == before


def test_prune_deletes_the_log_files_of_its_runs_on_this_host(store):
    for job_id in ("old", "-dash", "kept"):
        add(store, job_id, queue="logs")
        complete(store, job_id)
    paths = {job_id: Path(store.runs(job_id)[0].log_path) for job_id in ("old", "-dash", "kept")}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("output\n")
    # A job whose id starts with `-` may have a log under its older name too (no `_`).
    legacy = paths["-dash"].with_name(paths["-dash"].name[1:])
    legacy.write_text("older output\n")
    unrelated = paths["old"].with_name("someone-else.1.00000000.log")
    unrelated.write_text("not ours\n")
    # Two of them finished an hour ago.
    sql(
        store,
        "UPDATE jobs SET updated_at = updated_at - 3600 WHERE id <> 'kept' RETURNING id",
        "UPDATE queuectl_jobs SET updated_at = updated_at - 3600 WHERE id <> 'kept' RETURNING id",
    )
    assert store.prune_finished(60, [C]) == 2
    assert not paths["old"].exists() and not paths["-dash"].exists() and not legacy.exists()
    assert paths["kept"].exists() and unrelated.exists()
    # A run whose log file is gone already (or was never written) is no error.
    assert store.prune_finished(0, [C]) == 1
    assert not paths["kept"].exists()


def test_a_new_job_never_inherits_a_pruned_jobs_runs_or_edges(store):
    # SQLite reuses the seq of the newest row once it is deleted: what hung off the pruned
    # job (its runs; its dependency edges) must have gone with it.
    # job(seq) on SQLite: gate(1), other(2), ran(3), doomed(4); then fresh(3), waiter(4).
    add(store, "gate", queue="gate")
    add(store, "other", queue="other")
    add(store, "ran", queue="ran")
    complete(store, "ran")
    add(store, "doomed", queue="doomed", after=["gate"])
    assert store.cancel("doomed") is W
    assert store.prune_finished(0, [C, X]) == 2
    add(store, "fresh", queue="fresh")
    assert store.runs("fresh") == []
    add(store, "waiter", queue="w", after=["other"])
    complete(store, "gate")  # had an edge to `doomed`, whose seq may be reused
    assert state(store, "waiter") is W
    complete(store, "other")
    assert state(store, "waiter") is P


def test_a_waiting_job_still_runs_after_its_completed_dependency_is_pruned(store):
    add(store, "a", queue="a")
    add(store, "b", queue="b")
    add(store, "w", queue="w", after=["a", "b"])
    complete(store, "a")
    assert store.prune_finished(0, [C]) == 1
    assert not exists(store, "a")
    # Maintenance (which settles waiting jobs whose dependencies all ended) does not release
    # it early: its other dependency is still to complete.
    store.rescue_expired(lambda attempts, max_retries: None, 60.0)
    assert state(store, "w") is W
    complete(store, "b")
    assert state(store, "w") is P


def test_enqueue_after_a_pruned_job_says_there_is_no_such_job(store):
    finished_pair(store, "gone", C)
    assert store.prune_finished(0, [C]) == 1
    with pytest.raises(DependencyError, match="'gone', and there is no such job"):
        store.add([spec("next", after=["gone"])])


@pytest.mark.parametrize("ended", ["dead", "canceled"])
def test_a_dependency_that_ended_badly_stays_while_a_job_still_waits_on_it(store, ended):
    # The PostgreSQL race of chaining.settle_stranded: a job still `waiting` on a dependency
    # that ended dead or canceled, until the next maintenance cancels it. Made here behind the
    # store's back. Pruning the dependency first would release the waiting job instead.
    add(store, "a", queue="a")
    add(store, "w", queue="w", after=["a"])
    sql(
        store,
        f"UPDATE jobs SET state = '{ended}' WHERE id = 'a' RETURNING id",
        f"UPDATE queuectl_jobs SET state = '{ended}' WHERE id = 'a' RETURNING id",
    )
    assert store.prune_finished(0, FINISHED) == 0
    assert exists(store, "a")
    store.rescue_expired(lambda attempts, max_retries: None, 60.0)
    assert state(store, "w") is X
    assert store.prune_finished(0, FINISHED) == 2


def test_a_chore_is_taken_once_per_interval(timed):
    store = timed.store
    every = 8 * timed.unit
    assert store.claim_chore("retention", every) is True
    assert store.claim_chore("retention", every) is False
    assert store.claim_chore("other", every) is True  # chores are apart
    timed.advance(every / 2)
    assert store.claim_chore("retention", every) is False
    timed.advance(every / 2 + 0.05)
    assert store.claim_chore("retention", every) is True
    assert store.claim_chore("retention", every) is False


def test_a_chore_is_taken_again_after_the_clock_went_back(timed):
    if timed.clock is None:
        pytest.skip("the backend keeps its own clock")
    store = timed.store
    assert store.claim_chore("retention", 60) is True
    timed.clock.time -= 3600  # the host's clock was set back an hour
    assert store.claim_chore("retention", 60) is True
    assert store.claim_chore("retention", 60) is False


def test_only_one_of_many_processes_takes_a_chore(store):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(8) as pool:
        gate = manager.Barrier(8)
        taken = pool.starmap(_take_chore, [(store.target, gate)] * 8)
    assert sorted(taken) == [False] * 7 + [True]


def _take_chore(target: str, gate) -> bool:
    from queuectl.store import open_store

    opened = open_store(target)
    try:
        gate.wait(timeout=30)
        return opened.claim_chore("race", 60)
    finally:
        opened.close()


def test_log_file_names_used_here_are_the_runs_own(store):
    # The names prune deletes are the ones `show` reports (runs' log_path).
    add(store, "n", queue="n")
    complete(store, "n")
    run = store.runs("n")[0]
    assert run.log_path == os.path.join(
        os.fspath(store.log_dir), log_file_name("n", run.run_id, run.worker_id)
    )


def test_postgres_prune_skips_a_job_someone_holds_and_waits_for_nothing(pg_url):
    # An enqueue naming a job in `after` holds it FOR SHARE until it commits: prune leaves it
    # for next time rather than wait, or pull it from under the enqueue.
    import time

    import psycopg

    from queuectl.store import open_store

    store = open_store(pg_url)
    try:
        finished_pair(store, "held", C)
        finished_pair(store, "free", C)
        with psycopg.connect(pg_url) as other:
            other.execute("SELECT 1 FROM queuectl_jobs WHERE id = 'held' FOR SHARE")
            started = time.monotonic()
            assert store.prune_finished(0, [C]) == 1
            assert time.monotonic() - started < 5
            assert exists(store, "held") and not exists(store, "free")
        assert store.prune_finished(0, [C]) == 1
    finally:
        store.close()
