"""Which workers are alive, away or out of reach, and asking them to stop (`status`, `worker
stop`): the store's worker rows read against the lease and against this host's processes.
Behind Queue's methods of the same names; not on `enqueue`'s path."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .liveness import host_name, process_alive
from .models import MAX_SECONDS, heartbeat_interval
from .store import Store, WorkerInfo


def live_workers(store: Store, lease_seconds: float) -> list[WorkerInfo]:
    """Workers whose lease is current, less those on this host whose process is gone (a
    pool killed with kill -9 leaves its rows behind until the lease runs out)."""
    workers = store.live_workers(lease_seconds)
    dead = dead_here(workers)
    return [worker for worker in workers if worker.id not in dead]


def request_stop(store: Store, lease_seconds: float) -> list[str]:
    """Ask every live worker to stop; returns the ids asked. The row of a worker whose
    process is gone is flagged too (harmless) but not returned: nobody is to wait for it."""
    dead = dead_here(store.live_workers(lease_seconds))
    return [worker_id for worker_id in store.request_stop(lease_seconds) if worker_id not in dead]


def wait_for_exit(
    store: Store, worker_ids: Sequence[str], timeout: float, lease_seconds: float
) -> list[str]:
    """Wait until the given workers are gone; returns those still running at the timeout."""
    deadline = time.monotonic() + timeout
    waiting = set(worker_ids)
    while True:
        live = {worker.id for worker in live_workers(store, lease_seconds)}
        waiting &= live
        if not waiting or time.monotonic() >= deadline:
            return sorted(waiting)
        time.sleep(0.1)


def away_workers(store: Store, lease_seconds: float) -> dict[str, float]:
    """Workers whose lease ran out but whose row is still there (not known to be dead): cut
    off, frozen, or died on another host. With how long each has been silent."""
    rows = store.live_workers(MAX_SECONDS)  # every registered worker, however silent
    dead = dead_here(rows)
    silent = silent_for(store, rows, [w.id for w in rows if w.id not in dead])
    return {worker_id: seconds for worker_id, seconds in silent.items() if seconds > lease_seconds}


def unreachable(store: Store, worker_ids: Sequence[str], lease_seconds: float) -> dict[str, float]:
    """Of these workers, those not heard from for several heartbeats (a partition, a frozen
    host), with how many seconds each has been silent."""
    silent = silent_for(store, live_workers(store, lease_seconds), worker_ids)
    limit = 3 * heartbeat_interval(lease_seconds)
    return {worker_id: seconds for worker_id, seconds in silent.items() if seconds > limit}


def silent_for(store: Store, workers: Sequence[WorkerInfo], ids: Sequence[str]) -> dict[str, float]:
    """How long each worker of `ids` among `workers` has not been heard from, in seconds."""
    now = store.now()
    return {w.id: now - w.last_heartbeat for w in workers if w.id in ids}


def dead_here(workers: Sequence[WorkerInfo]) -> set[str]:
    """The ids of the workers on this host whose process has gone."""
    here = host_name()
    return {w.id for w in workers if w.host == here and process_alive(w.pid) is False}
