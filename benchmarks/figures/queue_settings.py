"""Figure 9: what queue settings (SPEC §8) cost the claim. In-process through the store API, as
claim_scale does: claim() then finish() in a loop, on one store per backend holding jobs spread
over 50 queues, measured with (b) 10 queues paused and 10 limited, against (a) the same store
with no setting at all (the claim's one walk of the ready index), in the same run.

The store (built untimed through store.add, so the product's insert path and triggers run):
- q00–q09, paused in (b): a backlog of QS_BACKLOG jobs each, the oldest of the store, so in
  age order they come before every job a claim may take: a walk that passed over them would
  read them all.
- q10–q14, limited to 2 in (b) and full all the time: the harness holds 2 claims of each open
  (never finished, lease of days), and their backlog (QS_BACKLOG each) is as old as the paused
  ones'.
- q15–q19, limited to 1 in (b), not held: a single claimer never finds them full; 4 claimers
  do, whenever one of them runs a job of that queue. On PostgreSQL a claim of a limited queue
  takes a second transaction that locks the queue's row (postgres_claim_sql.py).
- q20–q49, open: QS_READY jobs each, as q15–q19, enqueued round-robin after the backlogs.

Both sides claim the same number of jobs per round (QS_CLAIMS): in (a) they come from the old
backlogs, in (b) from q15–q49 (the harness checks that (b) never takes a paused or full
queue's job). After each pass the jobs it completed are put back to pending with SQL (their
run_at and seq unchanged, so the order stays). Passes: a single claimer, then 4 claimer
processes at once, each with its own store connection (forked, timed from a common start to
the last one's end). An untimed warm-up pass of each side, then rounds alternate the sides in
ABBA order. Value: median claim+finish per second with the settings; baseline: the same
without. Target: within 1.2×, i.e. ratio (b)/(a) ≥ 1/1.2.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass

from queuectl.specs import build_spec
from queuectl.store import ClaimRequest, open_store

from ..bench import Bench
from ..report import Row, Target, median
from .claim_scale import RESULT, open_as_worker

NAME = "queue_settings"
TARGET = Target("min_ratio", 1 / 1.2, "≥ 0.83× (within 1.2×)")
QUEUES = [f"q{index:02d}" for index in range(50)]
PAUSED = QUEUES[0:10]
FULL = QUEUES[10:15]  # limit 2, both places held by the harness
ROOM = QUEUES[15:20]  # limit 1, reached only when claimers run one of its jobs at once
OPEN = QUEUES[20:]
FULL_LIMIT = 2
ROOM_LIMIT = 1
LEASE = 30.0
HELD_LEASE = 10 * 86400.0
DEFAULTS = {"max-retries": 0, "job-timeout": 300.0}
CLAIMERS = (1, 4)


@dataclass
class Pass:
    """One pass: claim+finish per second, and which queues the claims took from."""

    rate: float
    claim_us: float  # mean µs of one claim (single claimer; 4 claimers: each one's mean)
    finish_us: float
    queues: Counter
    cpu_us: float | None = None  # single claimer: CPU per claim+finish (see cpu_ns)


def run(bench: Bench, backend) -> list[Row]:
    target = build(bench, backend)
    try:
        return measure(bench, backend, target)
    finally:
        backend.drop(target)


def build(bench: Bench, backend) -> str:
    """The store of the module doc, its settings off, with the full queues' places held."""
    backlog, ready = bench.size("qs_backlog"), bench.size("qs_ready")
    bench.log(
        f"building a {backend.name} store: {len(PAUSED) + len(FULL)} queues × {backlog:,} old "
        f"jobs, {len(ROOM) + len(OPEN)} × {ready:,}"
    )
    target = backend.new_target("queue_settings")
    store = open_store(target)
    try:
        # Oldest first: the paused and full queues' backlogs (one add per queue, so that
        # their run_at, too, is older than everything after them).
        for queue in PAUSED + FULL:
            store.add([_spec(f"{queue}-{n:05d}", queue) for n in range(backlog)])
        store.add(
            [_spec(f"{q}-{n:05d}", q) for n in range(ready + FULL_LIMIT) for q in ROOM + OPEN]
        )
        host = socket.gethostname()
        for queue in FULL:  # running "forever": these queues stay full in (b)
            for _ in range(FULL_LIMIT):
                held = store.claim(ClaimRequest("bench-holder", host, [queue], HELD_LEASE))
                if held is None or held.job.queue != queue:
                    raise RuntimeError(f"could not hold a place in {queue}")
    finally:
        store.close()
    if backend.name == "postgres":
        _pg_execute(target, "VACUUM ANALYZE queuectl_jobs", autocommit=True)
    os.sync()
    return target


def _spec(job_id: str, queue: str):
    return build_spec({"id": job_id, "command": "true", "queue": queue}, DEFAULTS)


def measure(bench: Bench, backend, target: str) -> list[Row]:
    claims = bench.size("qs_claims")
    rounds = bench.size("qs_rounds")
    passes: dict[tuple[int, bool], list[Pass]] = {
        (n, on): [] for n in CLAIMERS for on in (False, True)
    }
    for on in (False, True):  # untimed: caches, plans, connections
        one_pass(backend, target, on, 1, claims)
    for index in range(rounds):
        for claimers in CLAIMERS:
            # ABBA: whichever side runs first in a round, both do equally often.
            for on in (False, True) if index % 2 == 0 else (True, False):
                passes[claimers, on].append(one_pass(backend, target, on, claimers, claims))
        bench.log(
            f"  round {index + 1}: "
            + ", ".join(
                f"{n} claimer{'s' if n > 1 else ''} {passes[n, False][-1].rate:,.0f} → "
                f"{passes[n, True][-1].rate:,.0f}/s"
                for n in CLAIMERS
            )
        )
    for claimers in CLAIMERS:
        taken = sum((p.queues for p in passes[claimers, True]), Counter())
        wrong = sorted(q for q in taken if q in PAUSED or q in FULL)
        if wrong:
            raise RuntimeError(f"with the settings, claims took jobs of {wrong}")
    return [_row(backend, passes, claims, claimers) for claimers in CLAIMERS]


def _row(backend, passes: dict, claims: int, claimers: int) -> Row:
    off, on = passes[claimers, False], passes[claimers, True]
    taken = sum((p.queues for p in on), Counter())
    limited = sum(count for queue, count in taken.items() if queue in ROOM)
    return Row(
        figure=NAME,
        label=f"claim+finish, {claimers} claimer{'s' if claimers > 1 else ''}, "
        f"{len(PAUSED)} paused + {len(FULL) + len(ROOM)} limited of {len(QUEUES)} queues",
        backend=backend.name,
        value=median([p.rate for p in on]),
        unit="jobs/s",
        baseline=median([p.rate for p in off]),
        baseline_label="no settings",
        target=TARGET,
        details={
            "claims_per_pass": claims,
            "rates_with_settings": [round(p.rate) for p in on],
            "rates_without": [round(p.rate) for p in off],
            "paired_ratio_median": round(
                median([b.rate / a.rate for a, b in zip(off, on, strict=True)]), 3
            ),
            "us_claim_finish_with": [
                round(median([p.claim_us for p in on])),
                round(median([p.finish_us for p in on])),
            ],
            "us_claim_finish_without": [
                round(median([p.claim_us for p in off])),
                round(median([p.finish_us for p in off])),
            ],
            **_cpu_details(off, on),
            "share_of_claims_in_limited_queues": round(limited / max(1, sum(taken.values())), 3),
        },
    )


def _cpu_details(off: list[Pass], on: list[Pass]) -> dict:
    """CPU per claim+finish with and without the settings, and their paired ratio (as the
    rates': without / with), when every pass measured it (single claimer)."""
    if any(p.cpu_us is None for p in off + on):
        return {}
    return {
        "cpu_us_with_without": [
            round(median([p.cpu_us for p in on])),
            round(median([p.cpu_us for p in off])),
        ],
        "cpu_ratio_median": round(
            median([a.cpu_us / b.cpu_us for a, b in zip(off, on, strict=True)]), 3
        ),
    }


def settings(target: str, on: bool) -> None:
    """Pause and limit the queues of (b), or lift every setting for (a)."""
    store = open_store(target)
    try:
        store.pause_queues(PAUSED, on)
        for queue in FULL:
            store.limit_queue(queue, FULL_LIMIT if on else 0)
        for queue in ROOM:
            store.limit_queue(queue, ROOM_LIMIT if on else 0)
    finally:
        store.close()


def one_pass(backend, target: str, on: bool, claimers: int, claims: int) -> Pass:
    settings(target, on)
    try:
        if claimers == 1:
            store = open_as_worker(target)  # the connection is not part of the figure
            try:
                cpu = cpu_ns(store)
                start, end, claim_s, finish_s, queues = claim_loop(store, claims, "claimer-0")
                after = cpu_ns(store)
                cpu_us = None if None in (cpu, after) else (after - cpu) / claims / 1e3
            finally:
                store.close()
            rate = claims / (end - start)
            return Pass(rate, claim_s / claims * 1e6, finish_s / claims * 1e6, queues, cpu_us)
        return _concurrent(target, claimers, claims)
    finally:
        reset(backend, target)


def cpu_ns(store) -> int | None:
    """CPU spent so far by this process and, on PostgreSQL, by the store's server backend
    (its /proc schedstat: a server on this host, readable by this user), or None. On a
    shared machine, CPU moves much less than wall time with what else runs, so the details
    give its ratio beside the rates'."""
    own = time.process_time_ns()
    conn = getattr(store, "_conn", None)  # the harness's peek: PostgresStoreBase's connection
    if not hasattr(conn, "info"):  # SQLite: every step is this process's
        return own
    try:
        with open(f"/proc/{conn.info.backend_pid}/schedstat") as handle:
            return own + int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def claim_loop(store, claims: int, worker: str) -> tuple[float, float, float, float, Counter]:
    """Claim then finish `claims` jobs: (start, end, seconds claiming, seconds finishing,
    claims by queue)."""
    request = ClaimRequest(worker, socket.gethostname(), None, LEASE)
    claim_s = finish_s = 0.0
    queues: Counter = Counter()
    first = time.perf_counter()
    for _ in range(claims):
        start = time.perf_counter()
        claim = store.claim(request)
        middle = time.perf_counter()
        if claim is None:
            raise RuntimeError(f"{worker} found nothing to claim")
        if not store.finish(claim, RESULT, None).held:
            raise RuntimeError(f"finish() lost the claim on {claim.job.id}")
        claim_s += middle - start
        finish_s += time.perf_counter() - middle
        queues[claim.job.queue] += 1
    return first, time.perf_counter(), claim_s, finish_s, queues


def _claimer(target: str, claims: int, worker: str, barrier, results) -> None:
    """A forked claimer: its own connection, opened before the common start, then the loop."""
    try:
        store = open_as_worker(target)
        try:
            barrier.wait(timeout=60)
            start, end, claim_s, finish_s, queues = claim_loop(store, claims, worker)
        finally:
            store.close()
        results.put((start, end, claims, claim_s, finish_s, dict(queues), None))
    except Exception as exc:  # reported by the parent
        results.put((0.0, 0.0, 0, 0.0, 0.0, {}, f"{worker}: {exc}"))


def _concurrent(target: str, claimers: int, claims: int) -> Pass:
    """`claimers` processes claim `claims` jobs between them; the clock runs from the first
    one's start to the last one's end (perf_counter is CLOCK_MONOTONIC, one clock for all)."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(claimers)
    results = context.Queue()
    share = claims // claimers
    procs = [
        context.Process(target=_claimer, args=(target, share, f"claimer-{n}", barrier, results))
        for n in range(claimers)
    ]
    for proc in procs:
        proc.start()
    try:
        answers = [results.get(timeout=600) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [answer[6] for answer in answers if answer[6]]
    if errors:
        raise RuntimeError("; ".join(errors))
    seconds = max(a[1] for a in answers) - min(a[0] for a in answers)
    done = sum(a[2] for a in answers)
    queues: Counter = Counter()
    for answer in answers:
        queues.update(answer[5])
    return Pass(
        done / seconds,
        sum(a[3] for a in answers) / done * 1e6,
        sum(a[4] for a in answers) / done * 1e6,
        queues,
    )


RESET = (
    "UPDATE {table} SET state = 'pending', attempts = 0, worker_id = NULL, lease_until = NULL, "
    "exit_code = NULL, last_error = NULL WHERE state = 'completed'"
)


def reset(backend, target: str) -> None:
    """Every job a pass completed back to pending, with its run_at and seq: the next pass
    finds the same store (its runs and run counts aside)."""
    if backend.name == "postgres":
        _pg_execute(target, RESET.format(table="queuectl_jobs"))
        return
    import sqlite3

    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(RESET.format(table="jobs"))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _pg_execute(target: str, statement: str, autocommit: bool = False) -> None:
    import psycopg

    with psycopg.connect(target, autocommit=autocommit) as conn:
        conn.execute(statement)
