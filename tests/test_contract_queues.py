"""The store contract: queue pause, limits, the queue list and run counts (SPEC §8).

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py. Pauses and limits under real worker pools are in test_worker_queues.py.
"""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for
from storekit import EXIT_3, OK, add, claim, claim_all, make_dead

from queuectl.errors import StoreReadOnly
from queuectl.models import STATES, JobState
from queuectl.store import ClaimRequest, open_store


def test_a_paused_queue_is_not_claimed_and_resume_makes_it_claimable(store):
    add(store, "a1", "a2", queue="a")
    add(store, "b1", queue="b")
    store.pause_queues(["a"], True)
    assert claim_all(store) == ["b1"]
    assert claim(store, queues=["a"]) is None
    assert store.next_run_at(None) is None  # a paused queue's due jobs wake nobody
    store.pause_queues(["a"], False)
    assert claim_all(store) == ["a1", "a2"]


def test_pausing_a_queue_with_no_job_yet_holds_its_first_jobs(store):
    store.pause_queues(["later"], True)
    add(store, "l1", queue="later")  # enqueue still works
    assert store.get("l1").state is JobState.PENDING
    assert claim(store) is None
    assert store.paused_queues() == ["later"]
    store.pause_queues(["later"], False)
    assert store.paused_queues() == []
    assert claim(store).job.id == "l1"


def test_running_jobs_of_a_paused_queue_finish(store):
    add(store, "r1", "r2", queue="q")
    held = claim(store)
    store.pause_queues(["q"], True)
    assert store.finish(held, OK, None).held
    assert store.get("r1").state is JobState.COMPLETED
    assert claim(store) is None


def test_the_best_job_of_an_open_queue_is_taken_past_a_long_paused_backlog(store):
    # The paused queue's jobs are older and of higher priority: every one is passed over.
    add(store, *[f"p{i}" for i in range(300)], queue="paused", priority=5)
    add(store, "low", queue="open", priority=-1)
    add(store, "high", queue="open", priority=1)
    add(store, "mid", queue="other")
    store.pause_queues(["paused"], True)
    assert claim_all(store) == ["high", "mid", "low"]


def test_a_limit_holds_back_claims_until_a_running_job_ends(store):
    add(store, "j1", "j2", "j3", queue="lim")
    add(store, "o1", queue="other")
    store.limit_queue("lim", 2)
    first, second = claim(store, "w1"), claim(store, "w2")
    assert {first.job.id, second.job.id} == {"j1", "j2"}
    assert claim(store, "w3").job.id == "o1"  # the full queue is passed over
    assert claim(store, "w3") is None
    assert store.finish(first, OK, None).held
    assert claim(store, "w3").job.id == "j3"


def test_finish_and_claim_takes_the_place_its_own_job_freed(store):
    add(store, "j1", "j2", queue="lim")
    store.limit_queue("lim", 1)
    held = claim(store)
    request = ClaimRequest("w1", "host-a", None, 60.0)
    assert store.finish(held, OK, None, request).next_claim.job.id == "j2"


def test_a_limit_of_zero_removes_the_limit(store):
    add(store, "j1", "j2", queue="lim")
    store.limit_queue("lim", 1)
    assert claim(store, "w1") is not None
    assert claim(store, "w2") is None
    store.limit_queue("lim", 0)
    assert claim(store, "w2").job.id == "j2"


def test_a_limit_is_also_a_pause_when_paused(store):
    add(store, "j1", queue="lim")
    store.limit_queue("lim", 3)
    store.pause_queues(["lim"], True)
    assert claim(store) is None
    store.pause_queues(["lim"], False)
    assert claim(store).job.id == "j1"


def test_a_worker_of_some_queues_only_sees_those(store):
    add(store, "a1", queue="a")
    add(store, "b1", queue="b")
    store.pause_queues(["zzz"], True)  # settings in force: the per-queue claim path
    assert claim(store, queues=["b"]).job.id == "b1"
    assert claim(store, queues=["b"]) is None
    assert claim(store, queues=["a", "b"]).job.id == "a1"


def test_the_queue_list_counts_jobs_by_state_with_settings(timed):
    store = timed.store
    make_dead(store, "a3", queue="a")
    add(store, "a1", "a2", queue="a")
    store.limit_queue("b", 4)  # settings only, no job
    store.pause_queues(["c"], True)
    store.pause_queues(["c"], False)  # back to no setting and no job: not listed
    timed.advance(timed.unit)
    queues = {q.name: q for q in store.queues()}
    assert list(queues) == ["a", "b"]
    a = queues["a"]
    assert a.jobs == {**dict.fromkeys(STATES, 0), "pending": 2, "dead": 1}
    assert (a.paused, a.limit) == (False, None)
    assert a.oldest_ready_age >= timed.unit * 0.9
    b = queues["b"]
    assert (b.paused, b.limit, b.oldest_ready_age) == (False, 4, None)
    assert sum(b.jobs.values()) == 0
    assert b.to_dict().keys() == {"name", "paused", "limit", "jobs", "oldest_ready_age"}


def test_run_counts_by_queue_and_outcome_count_every_way_a_run_ends(store):
    add(store, "ok", queue="a")
    assert store.finish(claim(store), OK, None).held
    add(store, "bad", queue="b", max_retries=1)
    assert store.finish(claim(store), EXIT_3, None).held
    add(store, "gone", queue="b")
    claim(store)
    store.cancel("gone")
    counts = {(c.queue, c.outcome): c.runs for c in store.run_counts()}
    assert counts == {("a", "completed"): 1, ("b", "failed"): 1, ("b", "canceled"): 1}


def on_threads(db_target: str, count: int, work) -> None:
    """Run work(store, n) on `count` threads, each with a store connection of its own; fail
    with whatever any of them raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        store = open_store(db_target)
        try:
            work(store, n)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_a_limit_holds_under_concurrent_claimers(db_target):
    """Eight threads, each with its own connection, claim and finish as fast as they can from
    one queue limited to 2: the running count, checked inside every claim, never passes 2."""
    setup = open_store(db_target)
    add(setup, *[f"j{i}" for i in range(120)], queue="lim")
    add(setup, *[f"o{i}" for i in range(40)], queue="other")
    setup.limit_queue("lim", 2)
    running: set[str] = set()
    most = [0]
    lock = threading.Lock()

    def work(store, n: int) -> None:
        while (held := claim(store, f"w{n}")) is not None:
            if held.job.queue == "lim":
                with lock:
                    running.add(held.job.id)
                    most[0] = max(most[0], len(running))
                    assert len(running) <= 2, sorted(running)
                with lock:
                    running.discard(held.job.id)
            assert store.finish(held, OK, None).held

    on_threads(db_target, 8, work)
    assert setup.counts()["completed"] == 160
    assert 1 <= most[0] <= 2
    setup.close()


def test_paused_queues_are_sorted_as_the_queue_list_whatever_the_collation(pg_url):
    """PostgreSQL's ORDER BY follows the database's collation (a locale puts "_x" first and
    "B" after "b"); `status` and `queue list` both list names by code point."""
    import psycopg

    store = open_store(pg_url)
    try:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            icu = "SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu'"
            if admin.execute(icu).fetchone() is None:
                pytest.skip("the database server has no ICU collation to test with")
            admin.execute(
                'ALTER TABLE queuectl_queues ALTER COLUMN name TYPE text COLLATE "en-x-icu"'
            )
        names = ["b", "B", "a", "_x", "é"]
        store.pause_queues(names, True)
        assert store.paused_queues() == sorted(names) == [q.name for q in store.queues()]
    finally:
        store.close()


def test_finish_and_claim_in_a_full_limited_queue_takes_the_best_job_of_all(store):
    # The job that ends held the queue's only place: its queue's next job, of a higher
    # priority, is the best one now, not another queue's. (PostgreSQL's one statement saw the
    # queue still full and took the other queue's job.)
    add(store, "j1", queue="lim")
    store.limit_queue("lim", 1)
    held = claim(store)
    add(store, "j2", queue="lim", priority=5)
    add(store, "o1", queue="other")
    request = ClaimRequest("w1", "host-a", None, 60.0)
    assert store.finish(held, OK, None, request).next_claim.job.id == "j2"
    assert claim(store, "w2").job.id == "o1"


def counted_by_hand(store) -> dict[str, dict[str, int]]:
    """Jobs by queue and state, counted one by one from the job list."""
    counts: dict[str, dict[str, int]] = {}
    for job in store.list_jobs():
        queue = counts.setdefault(job.queue, dict.fromkeys(STATES, 0))
        queue[job.state.value] += 1
    return counts


def test_job_counts_stay_exact_through_every_way_a_job_comes_moves_and_goes(db_target):
    """The queue list and `status` read counts the store keeps beside the jobs (SPEC §9 needs
    them quick at a million jobs). Eight threads on connections of their own finish-and-claim
    across two queues at once (on PostgreSQL each change is its own row: none waits on
    another, none deadlocks), then bulk adds, chaining, cancel, a dlq retry and a prune: the
    kept counts equal the jobs counted one by one after each."""
    setup = open_store(db_target)
    add(setup, *[f"a{i}" for i in range(60)], queue="a")
    add(setup, *[f"b{i}" for i in range(60)], queue="b", max_retries=0)

    def work(store, n: int) -> None:
        request = ClaimRequest(f"w{n}", "host-a", None, 60.0)
        held = store.claim(request)
        while held is not None:
            result = EXIT_3 if held.job.queue == "b" and n % 2 else OK
            held = store.finish(held, result, None, then_claim=request).next_claim

    on_threads(db_target, 8, work)

    def check() -> None:
        by_hand = counted_by_hand(setup)
        kept = {q.name: q.jobs for q in setup.queues() if sum(q.jobs.values())}
        assert kept == by_hand
        totals = {state: sum(q[state] for q in by_hand.values()) for state in STATES}
        assert setup.counts() == totals

    check()
    assert counted_by_hand(setup)["a"]["completed"] == 60
    add(setup, "first", queue="c")
    add(setup, "then", queue="c", after=["first"])  # waiting
    add(setup, *[f"c{i}" for i in range(100)], queue="c")  # one bulk statement or more
    check()
    held = claim(setup, queues=["c"])
    assert held.job.id == "first"
    assert setup.finish(held, OK, None).held  # releases `then`: waiting -> pending
    setup.cancel("c0")
    setup.cancel("c1")
    check()
    assert setup.retry_dead(None)  # the failed runs of queue b
    check()
    assert setup.prune_finished(0, [JobState.COMPLETED, JobState.CANCELED]) > 0
    check()
    setup.fold_job_counts()  # idempotent: twice in a row changes nothing
    setup.fold_job_counts()
    check()
    setup.close()


def test_counts_are_read_where_the_store_may_only_be_read(pg_url):
    """A standby server, or a monitoring role that may only read: the fold of the job count
    changes is a write, refused there; the queue list and status add the changes up unfolded
    instead of failing (PostgreSQL: every transaction of this connection is read-only)."""
    writer = open_store(pg_url)
    add(writer, "r1", "r2", queue="r")
    assert writer.finish(claim(writer), OK, None).held
    writer.close()
    read_only = "-cdefault_transaction_read_only%3Don"
    if "options=" in pg_url:  # the test's own schema is chosen through options too
        reader_url = pg_url.replace("options=", f"options={read_only}%20", 1)
    else:
        reader_url = pg_url + ("&" if "?" in pg_url else "?") + f"options={read_only}"
    reader = open_store(reader_url)
    try:
        with pytest.raises(StoreReadOnly):
            add(reader, "refused")
        (listed,) = reader.queues()
        assert listed.jobs == {**dict.fromkeys(STATES, 0), "pending": 1, "completed": 1}
        assert reader.counts()["completed"] == 1
    finally:
        reader.close()


def test_an_upgrade_counts_the_jobs_an_older_worker_changes_meanwhile(pg_url, monkeypatch):
    """A store from before the job counts, upgraded while an older worker (here a session of
    its own) holds a job's change uncommitted: the migration waits for it, then counts, so the
    kept counts are exact from the start (they are never recounted)."""
    import psycopg

    from queuectl.store import postgres_schema

    counts = next(
        i for i, m in enumerate(postgres_schema.MIGRATIONS) if "queuectl_job_counts (" in m
    )
    older = postgres_schema.MIGRATIONS[: counts - 1]  # before the histogram's, which locks too
    monkeypatch.setattr(postgres_schema, "MIGRATIONS", older)
    old = open_store(pg_url)
    add(old, "j0", "j1", "j2", queue="u")
    old.close()
    monkeypatch.undo()

    with psycopg.connect(pg_url) as worker:
        worker.execute("UPDATE queuectl_jobs SET state = 'completed' WHERE id = 'j0'")
        upgraded: list = []
        upgrade = threading.Thread(target=lambda: upgraded.append(open_store(pg_url)))
        upgrade.start()

        def waits_for_a_lock() -> bool:
            with psycopg.connect(pg_url, autocommit=True) as probe:
                query = (
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return probe.execute(query).fetchone()[0] > 0

        wait_for(waits_for_a_lock)
        worker.commit()  # the older worker's change lands while the upgrade waits
    upgrade.join(timeout=30)
    (store,) = upgraded
    try:
        (listed,) = store.queues()
        assert listed.jobs == {**dict.fromkeys(STATES, 0), "pending": 2, "completed": 1}
        assert store.counts()["completed"] == 1
    finally:
        store.close()
