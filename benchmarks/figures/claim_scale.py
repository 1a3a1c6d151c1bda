"""Figure 5: claim time with a long history: 1 000 claim()+finish() pairs, in-process through
the store API, in a store holding 1 000 000 finished jobs (quick: 100 000) vs one holding
1 000. Both stores also hold 100 retries waiting, 10 jobs processing and the 1 000 pending
jobs being claimed (see history.py). After an untimed warm-up round, rounds alternate small
and large store (ABBA order); before each round the claimed jobs are put back to pending with
SQL. Value: median µs per claim+finish. Target: ratio ≤ 1.2. The store is opened as a worker
opens it (SQLite synchronous=NORMAL).
"""

from __future__ import annotations

import inspect
import socket
import time

from queuectl.models import Outcome, RunResult
from queuectl.store import ClaimRequest, open_store

from .. import history
from ..bench import Bench
from ..report import Row, Target, median

NAME = "claim_scale"
TARGET = Target("max_ratio", 1.2, "≤ 1.2×")
LEASE = 30.0
RESULT = RunResult(Outcome.EXITED, 0, None, "", None)
# What `python -m queuectl.worker` passes to open_store (the CLI's default is FULL).
WORKER_SYNCHRONOUS = "NORMAL"


def run(bench: Bench, backend) -> list[Row]:
    large = history.get(bench, backend, bench.size("history_jobs"))
    small = history.get(bench, backend, bench.size("history_small"))
    for store_history in (small, large):  # an untimed round: caches, connections, plans
        claim_all(store_history)
    timings: dict[int, list[tuple[float, float]]] = {small.finished: [], large.finished: []}
    for index in range(bench.size("claim_rounds")):
        # ABBA order: whatever the first store of a round pays, both pay it equally often.
        for store_history in (small, large) if index % 2 == 0 else (large, small):
            history.reset_pending(backend, store_history)
            timings[store_history.finished].append(claim_all(store_history))
        bench.log(
            f"  round {index + 1}: "
            + ", ".join(f"{n:,}: {t[-1][0] + t[-1][1]:.0f} µs" for n, t in timings.items())
        )

    def per_job(finished: int) -> float:
        return median([claim + complete for claim, complete in timings[finished]])

    return [
        Row(
            figure=NAME,
            label=f"claim+finish, {large.finished:,} done",
            backend=backend.name,
            value=per_job(large.finished),
            unit="µs",
            baseline=per_job(small.finished),
            baseline_label=f"{small.finished:,} done",
            target=TARGET,
            details={
                "jobs_claimed_per_round": len(large.pending_ids),
                "rounds_us_claim_complete": {
                    str(n): [[round(c), round(f)] for c, f in t] for n, t in timings.items()
                },
                "build_seconds": {
                    str(small.finished): round(small.build_seconds, 1),
                    str(large.finished): round(large.build_seconds, 1),
                },
            },
        )
    ]


def open_as_worker(target: str):
    """Open the store the way a worker process does (on SQLite: its `synchronous` setting)."""
    if "synchronous" in inspect.signature(open_store).parameters:
        return open_store(target, synchronous=WORKER_SYNCHRONOUS)
    return open_store(target)


def claim_all(store_history: history.History) -> tuple[float, float]:
    """Claim and complete every pending job; mean µs of one claim and of one complete."""
    store = open_as_worker(store_history.target)
    host = socket.gethostname()
    claim_s = complete_s = 0.0
    count = 0
    try:
        while True:
            start = time.perf_counter()
            claim = store.claim(ClaimRequest("bench-claimer", host, None, LEASE))
            middle = time.perf_counter()
            if claim is None:
                break
            if not store.finish(claim, RESULT, None).held:
                raise RuntimeError(f"finish() lost the claim on {claim.job.id}")
            claim_s += middle - start
            complete_s += time.perf_counter() - middle
            count += 1
    finally:
        store.close()
    expected = len(store_history.pending_ids)
    if count != expected:
        raise RuntimeError(f"claimed {count} jobs, expected {expected}")
    return claim_s / count * 1e6, complete_s / count * 1e6
