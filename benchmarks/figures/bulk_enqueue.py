"""Figure 2: bulk enqueue, `queuectl enqueue -` of N JSON lines into an existing empty store.

Value: N / wall time of the whole CLI call (start-up included). Target: ≥ 50 000 jobs/s.
Baseline (for scale, no target): the same N rows inserted straight into the store's jobs table
in one transaction (SQLite executemany with the product's synchronous=NORMAL; PostgreSQL COPY),
from already-built tuples: the database's own speed without parsing or validation.
"""

from __future__ import annotations

import sqlite3
import time

from queuectl.store import open_store

from ..bench import Bench
from ..report import Row, Target, median

NAME = "bulk_enqueue"
TARGET = Target("min", 50_000, "≥ 50,000/s")
COLUMNS = (
    "id, command, state, max_retries, priority, queue, run_at, timeout, created_at, updated_at"
)


def run(bench: Bench, backend) -> list[Row]:
    jobs = bench.size("bulk_jobs")
    lines = bench.tmp / f"bulk-{jobs}.jsonl"
    with open(lines, "w") as handle:
        handle.writelines(f'{{"command": "echo {index}"}}\n' for index in range(jobs))
    cli, raw = [], []
    for index in range(bench.size("bulk_rounds")):
        raw.append(jobs / raw_insert_seconds(backend, jobs, index))
        cli.append(jobs / cli_seconds(bench, backend, lines, jobs, index))
        bench.log(f"  round {index + 1}: raw {raw[-1]:,.0f}/s, enqueue - {cli[-1]:,.0f}/s")
    return [
        Row(
            figure=NAME,
            label=f"bulk enqueue of {jobs:,}",
            backend=backend.name,
            value=median(cli),
            unit="jobs/s",
            baseline=median(raw),
            baseline_label="raw insert",
            target=TARGET,
            details={
                "jobs": jobs,
                "cli_rates": [round(rate) for rate in cli],
                "raw_rates": [round(rate) for rate in raw],
            },
        )
    ]


def cli_seconds(bench: Bench, backend, lines, jobs: int, index: int) -> float:
    target = backend.new_target(f"bulk_{index}")
    try:
        with open(lines, "rb") as stdin:
            seconds = bench.timed(bench.queuectl(target, "enqueue", "-"), stdin=stdin)
        store = open_store(target)
        try:
            pending = store.counts()["pending"]
        finally:
            store.close()
        if pending != jobs:
            raise RuntimeError(f"expected {jobs} pending jobs, found {pending}")
        return seconds
    finally:
        backend.drop(target)


def raw_insert_seconds(backend, jobs: int, index: int) -> float:
    target = backend.new_target(f"bulk_raw_{index}")
    now = time.time()
    rows = [
        (f"{number:016x}", f"echo {number}", "pending", 3, 0, "default", now, 300.0, now, now)
        for number in range(jobs)
    ]
    try:
        if backend.name == "sqlite":
            conn = sqlite3.connect(target, isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
                start = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT INTO jobs ({COLUMNS}) VALUES ({marks})", rows)
                conn.execute("COMMIT")
                return time.perf_counter() - start
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(target) as conn:
            start = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY queuectl_jobs ({COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            return time.perf_counter() - start
    finally:
        backend.drop(target)
