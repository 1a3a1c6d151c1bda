"""Figure 9: prune (SPEC §8, retention) while a worker claims. A store holds N completed jobs,
each with its run, finished two days ago (N = 1 000 000, quick: 100 000; built with SQL as in
history.py, after queuectl made the schema). A claimer process, on a connection of its own as a
worker opens it, claims and completes jobs of its own in a loop (refilling its queue in batches,
untimed), timing each claim. After 10 s of that alone (quick: 4 s; the baseline), the installed
`queuectl prune --older-than 1d` deletes the N jobs, start-up included, while the claimer goes
on. Values: prune jobs/s (for information) and the longest claim during the prune, against the
longest claim of the seconds before it. Target: a claim never waits more than 100 ms behind a
prune (SPEC §8: batches "small enough never to hold up a claim noticeably").
"""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import time

from queuectl.models import Outcome, RunResult
from queuectl.specs import build_spec
from queuectl.store import ClaimRequest, open_store

from ..bench import Bench
from ..report import Row, Target, percentile

NAME = "prune"
TARGET = Target("max", 100.0, "≤ 100 ms")
RESULT = RunResult(Outcome.EXITED, 0, None, "", None)
DEFAULTS = {"max-retries": 0, "job-timeout": 300.0}
REFILL = 500  # jobs the claimer adds when its queue is empty (not timed)
AGE = 2 * 86400  # the N jobs finished this long ago; prune takes those older than a day

_JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, "
    "created_at, updated_at, exit_code"
)
_RUN_COLUMNS = (
    "job_seq, attempt, worker_id, host, pid, started_at, finished_at, outcome, exit_code, "
    "output_tail"
)
_RUN_SELECT = "seq, 1, 'bench-worker', 'bench-host', 4242, run_at, run_at + 0.01, 'exited', 0, ''"


def run(bench: Bench, backend) -> list[Row]:
    jobs = bench.size("prune_jobs")
    target = backend.new_target(f"prune_{jobs}")
    try:
        bench.log(f"  building a store with {jobs:,} completed jobs")
        build_seconds = build(backend, target, jobs)
        return measure(bench, backend, target, jobs, build_seconds)
    finally:
        backend.drop(target)


def measure(bench: Bench, backend, target: str, jobs: int, build_seconds: float) -> list[Row]:
    baseline_seconds = bench.size("prune_baseline_seconds")
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    ready = context.Event()
    receive, send = context.Pipe(duplex=False)
    claimer = context.Process(target=claim_loop, args=(target, stop, ready, send), daemon=True)
    claimer.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the claimer did not start")
        time.sleep(1.0)  # warm-up: connection, caches, the first refill
        baseline_from = time.monotonic()
        time.sleep(baseline_seconds)
        started = time.monotonic()
        out = bench.run(bench.queuectl(target, "prune", "--older-than", "1d"), timeout=3600)
        ended = time.monotonic()
        stop.set()
        samples = receive.recv()
        claimer.join(30)
    finally:
        stop.set()
        if claimer.is_alive():
            claimer.kill()
    printed = out.stdout.decode().strip()
    if printed != f"pruned {jobs} jobs":
        raise RuntimeError(f"prune printed {printed!r}, expected 'pruned {jobs} jobs'")
    store = open_store(target)
    try:
        left = store.counts()  # the claimer's own jobs stay: they finished just now
    finally:
        store.close()
    before = [s for s in samples if baseline_from <= s[0] < started]
    during = [s for s in samples if started <= s[0] < ended]
    if not before or not during:
        raise RuntimeError(f"too few claims: {len(before)} before, {len(during)} during")
    claim_ms = [s[1] * 1e3 for s in during]
    finish_ms = [s[2] * 1e3 for s in during]
    base_ms = [s[1] * 1e3 for s in before]
    seconds = ended - started
    bench.log(
        f"  pruned {jobs:,} jobs in {seconds:.1f} s; longest claim {max(claim_ms):.1f} ms "
        f"during, {max(base_ms):.1f} ms before"
    )
    details = {
        "jobs": jobs,
        "prune_seconds": round(seconds, 2),
        "claims_during": len(during),
        "claims_per_s_before": round(len(before) / (started - baseline_from)),
        "claims_per_s_during": round(len(during) / seconds),
        # On a shared machine the longest claims are the scheduler's and the disk's as much
        # as the prune's: how many claims waited that long, and the high percentiles, say
        # which it was.
        "claim_ms_p50_p99_p999_max_during": spread(claim_ms),
        "claim_ms_p50_p99_p999_max_before": spread(base_ms),
        "claims_over_100ms_during": sum(1 for ms in claim_ms if ms > 100),
        "claims_over_100ms_before": sum(1 for ms in base_ms if ms > 100),
        "finish_ms_max_during": round(max(finish_ms), 3),
        "build_seconds": round(build_seconds, 1),
        "completed_left": left["completed"],
    }
    return [
        Row(
            figure=NAME,
            label=f"longest claim while pruning {jobs:,} jobs",
            backend=backend.name,
            value=max(claim_ms),
            unit="ms",
            baseline=max(base_ms),
            baseline_label=f"longest claim, {baseline_seconds} s without prune",
            target=TARGET,
            details=details,
        ),
        Row(
            figure=NAME,
            label=f"prune of {jobs:,} jobs (a claimer beside it)",
            backend=backend.name,
            value=jobs / seconds,
            unit="jobs/s",
            details={"prune_seconds": round(seconds, 2)},
        ),
    ]


def spread(values: list[float]) -> list[float]:
    """p50, p99, p99.9 and the largest of `values`, rounded."""
    return [round(percentile(values, pct), 3) for pct in (50, 99, 99.9)] + [round(max(values), 3)]


def claim_loop(target: str, stop, ready, send) -> None:
    """The claimer (a child process): claim and complete jobs until told to stop; sends back
    (monotonic time of the claim, its seconds, the finish's seconds) per claim."""
    store = open_store(target, synchronous="NORMAL")
    request = ClaimRequest("bench-claimer", socket.gethostname(), ["claimer"], 30.0)
    samples: list[tuple[float, float, float]] = []
    made = 0
    ready.set()
    try:
        while not stop.is_set():
            start = time.monotonic()
            claim = store.claim(request)
            middle = time.monotonic()
            if claim is None:
                specs = [
                    build_spec(
                        {"id": f"c{made + n}", "command": "true", "queue": "claimer"}, DEFAULTS
                    )
                    for n in range(REFILL)
                ]
                store.add(specs)
                made += REFILL
                continue
            if not store.finish(claim, RESULT, None).held:
                raise RuntimeError(f"finish() lost the claim on {claim.job.id}")
            samples.append((start, middle - start, time.monotonic() - middle))
    finally:
        send.send(samples)
        store.close()


def build(backend, target: str, jobs: int) -> float:
    """Fill the store with `jobs` completed jobs (one run each) finished AGE seconds ago."""
    start = time.perf_counter()
    finished = time.time() - AGE
    if backend.name == "sqlite":
        conn = sqlite3.connect(target, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = OFF")  # build speed only
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
                f"INSERT INTO jobs ({_JOB_COLUMNS}) SELECT lower(hex(randomblob(8))), "
                "'echo job ' || i, 'completed', 1, 0, 0, 'default', :at - 1, 300, :at - 2, :at, 0 "
                "FROM n",
                {"count": jobs, "at": finished},
            )
            conn.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) SELECT {_RUN_SELECT} FROM jobs")
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO queuectl_jobs ({_JOB_COLUMNS}) SELECT "
                    "substr(md5(random()::text || i::text), 1, 16), 'echo job ' || i, "
                    "'completed', 1, 0, 0, 'default', %(at)s::float8 - 1, 300, "
                    "%(at)s::float8 - 2, %(at)s::float8, 0 "
                    "FROM generate_series(1, %(count)s) AS i",
                    {"count": jobs, "at": finished},
                )
                conn.execute(
                    f"INSERT INTO queuectl_runs ({_RUN_COLUMNS}) SELECT {_RUN_SELECT} "
                    "FROM queuectl_jobs"
                )
            conn.execute("VACUUM ANALYZE queuectl_jobs")
            conn.execute("VACUUM ANALYZE queuectl_runs")
    store = open_store(target)
    try:
        counts = store.counts()
    finally:
        store.close()
    if counts["completed"] != jobs:
        raise RuntimeError(f"the store holds {counts['completed']} completed jobs, not {jobs}")
    return time.perf_counter() - start
