"""Figure 1: end-to-end no-op jobs through worker pools vs the raw spawn rate.

Queue: a store pre-filled with N `true` jobs (`enqueue -`, not timed), then
`queuectl worker start --count 2 --burst --quiet` timed from start to exit, nothing
subtracted (interpreter start-up, store opening and worker spawning included). PostgreSQL
also runs 2 and 4 such pools at once, as if on several hosts.
Baseline: `subprocess.run("true", shell=True)` from as many processes as there are workers
(spawn_baseline.py), timed the same way. Rounds alternate baseline and queue; medians.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from queuectl.store import open_store

from ..bench import Bench
from ..procs import Pool
from ..report import Row, Target, median

NAME = "throughput"
WORKERS_PER_POOL = 2
TARGET = Target("min_ratio", 0.85, "≥ 0.85×")
SPAWN_SCRIPT = Path(__file__).resolve().parent.parent / "spawn_baseline.py"


def run(bench: Bench, backend) -> list[Row]:
    pool_counts = [1] if backend.name == "sqlite" else [1, 2, 4]
    return [measure(bench, backend, pools) for pools in pool_counts]


def measure(bench: Bench, backend, pools: int) -> Row:
    jobs = bench.size("throughput_jobs")
    rounds = bench.size("throughput_rounds")
    workers = pools * WORKERS_PER_POOL
    lines = bench.tmp / f"noop-{jobs}.jsonl"
    lines.write_text('{"command": "true"}\n' * jobs)
    raw, queued = [], []
    for index in range(rounds):
        raw.append(jobs / spawn_rate_seconds(bench, jobs, workers))
        queued.append(jobs / queue_seconds(bench, backend, lines, jobs, pools, index))
        bench.log(f"  round {index + 1}: raw {raw[-1]:,.0f}/s, queue {queued[-1]:,.0f}/s")
    label = f"throughput, {WORKERS_PER_POOL} workers"
    if pools > 1:
        label = f"throughput, {pools} pools × {WORKERS_PER_POOL} workers"
    return Row(
        figure=NAME,
        label=label,
        backend=backend.name,
        value=median(queued),
        unit="jobs/s",
        baseline=median(raw),
        baseline_label=f"raw spawn, {workers} procs",
        target=TARGET,
        details={
            "jobs": jobs,
            "workers": workers,
            "pools": pools,
            "queue_rates": [round(rate) for rate in queued],
            "raw_rates": [round(rate) for rate in raw],
            "paired_ratio_median": round(
                median([q / r for q, r in zip(queued, raw, strict=True)]), 3
            ),
        },
    )


def spawn_rate_seconds(bench: Bench, jobs: int, procs: int) -> float:
    command = [str(bench.venv.python), str(SPAWN_SCRIPT), str(jobs), str(procs)]
    return bench.timed(command, timeout=max(120, jobs / 50))


def queue_seconds(bench: Bench, backend, lines: Path, jobs: int, pools: int, index: int) -> float:
    target = backend.new_target(f"throughput_{pools}_{index}")
    try:
        with open(lines, "rb") as stdin:
            bench.run(
                bench.queuectl(target, "enqueue", "-"), stdin=stdin, stdout=subprocess.DEVNULL
            )
        start = time.perf_counter()
        started = [Pool(bench, target, WORKERS_PER_POOL, burst=True) for _ in range(pools)]
        try:
            codes = [pool.wait(timeout=max(120, jobs / 20)) for pool in started]
            elapsed = time.perf_counter() - start
        finally:
            for pool in started:
                pool.stop()
        if any(codes):
            failed = next(pool for pool, code in zip(started, codes, strict=True) if code)
            raise RuntimeError(f"worker pools exited {codes}: {failed.output()}")
        store = open_store(target)
        try:
            counts = store.counts()
        finally:
            store.close()
        if counts["completed"] != jobs:
            raise RuntimeError(f"expected {jobs} completed jobs, the store says {counts}")
        return elapsed
    finally:
        backend.drop(target)
