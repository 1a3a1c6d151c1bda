"""The store contract: the worker registry, forgetting silent workers, stop requests.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

from storekit import (
    EPS,
    OK,
    add,
    claim,
    fixed_delay,
)

from queuectl.store import worker_row_kept

# ---------------------------------------------------------------------------------------------
# forgetting silent workers, and their return


def test_rescue_forgets_silent_workers(timed):
    store, unit = timed.store, timed.unit
    # Kept well past the lease (worker stop reports it as not reached), then forgotten.
    lease = unit / 5
    store.register_worker("silent", "host-a", 1)
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.register_worker("alive", "host-b", 2)
    store.rescue_expired(fixed_delay(0.0), 20 * lease)
    assert sorted(w.id for w in store.live_workers(1000 * unit)) == ["alive", "silent"]
    store.rescue_expired(fixed_delay(0.0), lease)
    assert [w.id for w in store.live_workers(1000 * unit)] == ["alive"]


def test_heartbeat_brings_back_a_worker_forgotten_during_a_stall(timed):
    # A worker silent for longer than the lease (a long GC pause, a suspended VM) is pruned by
    # the rescuer; when it heartbeats again it must be listed again, or `worker stop` and
    # `status` would never see it.
    store, unit = timed.store, timed.unit
    lease = unit / 5
    store.register_worker("w1", "host-a", 7)
    [registered] = store.live_workers(1000 * unit)
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.rescue_expired(fixed_delay(0.0), lease)
    assert store.live_workers(1000 * unit) == []
    store.heartbeat("w1", lease, None)
    # Listed again (its row was gone: see above). The window is wide, not `lease`: on
    # PostgreSQL the lease is 50 ms of real time, which a loaded machine can exceed here.
    [worker] = store.live_workers(1000 * unit)
    assert (worker.id, worker.host, worker.pid) == ("w1", "host-a", 7)
    # `status` shows when it started, not when it came back.
    assert worker.started_at == registered.started_at < worker.last_heartbeat
    assert sorted(store.request_stop(1000 * unit)) == ["w1"]


def test_a_worker_registering_again_keeps_its_start_time(timed):
    # A worker that registers again after a reconnect (or after being pruned) is the same
    # worker: its start time stays the first one.
    store, unit = timed.store, timed.unit
    lease = unit / 5
    store.register_worker("w1", "host-a", 7)
    [first] = store.live_workers(lease)
    timed.advance(unit)
    store.register_worker("w1", "host-a", 7)  # the row is still there
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.rescue_expired(fixed_delay(0.0), lease)
    store.register_worker("w1", "host-a", 7)  # pruned meanwhile
    [worker] = store.live_workers(lease)
    assert worker.started_at == first.started_at < worker.last_heartbeat


def test_a_worker_back_after_being_pruned_obeys_a_stop_asked_while_it_was_away(timed):
    store, unit = timed.store, timed.unit
    lease = unit / 5
    store.register_worker("away", "host-a", 7)
    timed.advance(worker_row_kept(lease) + unit / 2)
    store.rescue_expired(fixed_delay(0.0), lease)
    assert store.live_workers(1000 * unit) == []
    assert store.request_stop(lease) == []  # nobody to ask now, but the request is kept
    timed.advance(unit / 2)
    store.register_worker("later", "host-b", 8)  # started after the stop: not affected
    assert store.heartbeat("away", lease, None).stop_requested is True
    assert store.heartbeat("later", lease, None).stop_requested is False


# ---------------------------------------------------------------------------------------------
# workers


def test_worker_registry(timed):
    store, unit = timed.store, timed.unit
    lease = 4 * unit
    before = store.now()
    store.register_worker("w1", "host-a", 101)
    store.register_worker("w2", "host-b", 202)
    live = {w.id: w for w in store.live_workers(lease)}
    assert set(live) == {"w1", "w2"}
    w1 = live["w1"]
    assert (w1.host, w1.pid, w1.current_job) == ("host-a", 101, None)
    assert before - EPS <= w1.started_at <= w1.last_heartbeat <= store.now() + EPS

    add(store, "a")
    held = claim(store, "w1")
    assert {w.id: w.current_job for w in store.live_workers(lease)} == {"w1": "a", "w2": None}
    assert store.finish(held, OK, None).held
    assert {w.id: w.current_job for w in store.live_workers(lease)} == {"w1": None, "w2": None}

    store.unregister_worker("w2")
    assert [w.id for w in store.live_workers(lease)] == ["w1"]
    assert store.heartbeat("w1", lease, None).stop_requested is False


def test_live_workers_leaves_out_silent_ones_and_heartbeat_keeps_them(timed):
    store, unit = timed.store, timed.unit
    lease = 4 * unit
    store.register_worker("beating", "h", 1)
    store.register_worker("silent", "h", 2)
    timed.advance(3 * unit)
    store.heartbeat("beating", lease, None)
    timed.advance(2 * unit)  # "silent" is now 5 units quiet, "beating" 2
    assert [w.id for w in store.live_workers(lease)] == ["beating"]


def test_request_stop_asks_live_workers_and_reaches_those_away_when_they_return(timed):
    store, unit = timed.store, timed.unit
    lease = 4 * unit
    store.register_worker("stale", "h", 1)
    timed.advance(5 * unit)
    store.register_worker("w1", "h", 2)
    store.register_worker("w2", "h", 3)
    assert sorted(store.request_stop(lease)) == ["w1", "w2"]
    store.register_worker("late", "h", 4)  # started after the request: not affected

    assert store.heartbeat("w1", lease, None).stop_requested is True
    assert store.heartbeat("w2", lease, None).stop_requested is True
    assert store.heartbeat("late", lease, None).stop_requested is False
    # Silent past its lease when the stop was asked (SPEC §5): it obeys when it comes back.
    assert store.heartbeat("stale", lease, None).stop_requested is True

    add(store, "a")
    held = claim(store, "w1")
    beat = store.heartbeat("w1", lease, held)
    assert beat.held is True and beat.stop_requested is True
