"""Stores with a long history, built directly with SQL (a million jobs through the CLI would
take minutes): finished jobs of every kind, each with its run, then a few retries waiting,
a few jobs processing, and the pending jobs the claim figure takes, newest of all.

The schema is always made by opening the store with queuectl itself first, so the rows land
in whatever tables, indexes and migrations the product has now.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

from queuectl.store import open_store

from .bench import Bench

WAITING_RETRIES = 100
PROCESSING = 10

# Shared by both dialects: {n} is the row number, {start}/{step} spread created_at over the past,
# {mod} is the modulo operator (psycopg wants it doubled).
_STATE = (
    "CASE WHEN {n} {mod} 100 < 94 THEN 'completed' WHEN {n} {mod} 100 < 98 THEN 'dead' "
    "ELSE 'canceled' END"
)
_FINISHED_SELECT = f"""
    {{id}}, 'echo job ' || {{n}}, {_STATE},
    CASE WHEN {{n}} {{mod}} 100 < 94 THEN 1 WHEN {{n}} {{mod}} 100 < 98 THEN 4 ELSE 0 END,
    3, 0, CASE WHEN {{n}} {{mod}} 10 = 0 THEN 'reports' ELSE 'default' END,
    {{start}} + {{n}} * {{step}}, 300,
    {{start}} + {{n}} * {{step}}, {{start}} + {{n}} * {{step}} + 1,
    CASE WHEN {{n}} {{mod}} 100 < 94 THEN 0 WHEN {{n}} {{mod}} 100 < 98 THEN 1 END,
    CASE WHEN {{n}} {{mod}} 100 < 94 THEN NULL WHEN {{n}} {{mod}} 100 < 98 THEN 'exited with code 1'
         ELSE 'canceled' END
"""
_JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, "
    "created_at, updated_at, exit_code, last_error"
)
_RUN_SELECT = """
    seq, CASE WHEN attempts > 1 THEN attempts ELSE 1 END, 'bench-worker', 'bench-host', 4242,
    run_at, run_at + 0.01, CASE state WHEN 'canceled' THEN 'canceled' ELSE 'exited' END,
    exit_code, last_error, ''
"""
_RUN_COLUMNS = (
    "job_seq, attempt, worker_id, host, pid, started_at, finished_at, outcome, exit_code, "
    "error, output_tail"
)


@dataclass
class History:
    target: str
    finished: int
    pending_ids: list[str]
    build_seconds: float


def get(bench: Bench, backend, finished: int) -> History:
    """The store with `finished` finished jobs for this backend, built once per run."""
    key = f"history:{backend.name}:{finished}"
    if key not in bench.cache:
        bench.log(f"building a {backend.name} store with {finished:,} finished jobs")
        start = time.perf_counter()
        target = backend.new_target(f"history_{finished}")
        pending = [f"pending-{index:06d}" for index in range(bench.size("claim_jobs"))]
        if backend.name == "sqlite":
            _build_sqlite(target, finished, pending)
        else:
            _build_postgres(target, finished, pending)
        os.sync()  # settle the build's writes before anything is timed
        bench.cache[key] = History(target, finished, pending, time.perf_counter() - start)
    return bench.cache[key]


def _extra_rows(now: float, pending: list[str]) -> list[tuple]:
    """Waiting retries, running jobs and the pending jobs: (id, state, attempts, run_at, lease)."""
    rows = [(f"retry-{i:04d}", "failed", 1, now + 3600, None) for i in range(WAITING_RETRIES)]
    rows += [(f"running-{i:03d}", "processing", 1, now - 5, now + 86400) for i in range(PROCESSING)]
    rows += [(job_id, "pending", 0, now - 60, None) for job_id in pending]
    return rows


def _build_sqlite(target: str, finished: int, pending: list[str]) -> None:
    now = time.time()
    step = 3600.0 / max(finished, 1)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # build speed only; the product sets its own
        conn.execute("BEGIN IMMEDIATE")
        select = _FINISHED_SELECT.format(
            id="lower(hex(randomblob(8)))", n="i", start=":start", step=":step", mod="%"
        )
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
            f"INSERT INTO jobs ({_JOB_COLUMNS}) SELECT {select} FROM n",
            {"count": finished, "start": now - 7200, "step": step},
        )
        conn.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) SELECT {_RUN_SELECT} FROM jobs")
        conn.executemany(
            "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, queue, "
            "run_at, timeout, created_at, updated_at, worker_id, lease_until) "
            "VALUES (?, 'true', ?, ?, 3, 0, 'default', ?, 300, ?, ?, "
            "CASE WHEN ? IS NULL THEN NULL ELSE 'bench-ghost' END, ?)",
            [
                (i, s, a, r, now, now, lease, lease)
                for i, s, a, r, lease in _extra_rows(now, pending)
            ],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _build_postgres(target: str, finished: int, pending: list[str]) -> None:
    import psycopg

    now = time.time()
    step = 3600.0 / max(finished, 1)
    with psycopg.connect(target, autocommit=True) as conn:
        with conn.transaction():
            select = _FINISHED_SELECT.format(
                id="substr(md5(random()::text || i::text), 1, 16)",
                n="i",
                start="%(start)s::float8",
                step="%(step)s::float8",
                mod="%%",
            )
            conn.execute(
                f"INSERT INTO queuectl_jobs ({_JOB_COLUMNS}) SELECT {select} "
                "FROM generate_series(1, %(count)s) AS i",
                {"count": finished, "start": now - 7200, "step": step},
            )
            conn.execute(
                f"INSERT INTO queuectl_runs ({_RUN_COLUMNS}) SELECT {_RUN_SELECT} "
                "FROM queuectl_jobs"
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO queuectl_jobs (id, command, state, attempts, max_retries, "
                    "priority, queue, run_at, timeout, created_at, updated_at, worker_id, "
                    "lease_until) VALUES (%s, 'true', %s, %s, 3, 0, 'default', %s, 300, %s, %s, "
                    "CASE WHEN %s::float8 IS NULL THEN NULL ELSE 'bench-ghost' END, %s)",
                    [
                        (i, s, a, r, now, now, lease, lease)
                        for i, s, a, r, lease in _extra_rows(now, pending)
                    ],
                )
        # A server in steady state has had autovacuum analyze its tables.
        conn.execute("VACUUM ANALYZE queuectl_jobs")
        conn.execute("VACUUM ANALYZE queuectl_runs")


def reset_pending(backend, history: History) -> None:
    """Put the claimed jobs back to pending (due now), so every round claims the same work."""
    past = time.time() - 60
    rows = [(past, job_id) for job_id in history.pending_ids]
    if backend.name == "sqlite":
        conn = sqlite3.connect(history.target, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE jobs SET state = 'pending', attempts = 0, worker_id = NULL, "
                "lease_until = NULL, exit_code = NULL, run_at = ? WHERE id = ?",
                rows,
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(history.target) as conn, conn.cursor() as cur:
        cur.executemany(
            "UPDATE queuectl_jobs SET state = 'pending', attempts = 0, worker_id = NULL, "
            "lease_until = NULL, exit_code = NULL, run_at = %s WHERE id = %s",
            rows,
        )


def check_store(target: str) -> dict[str, int]:
    """Job counts through the product (also proves the hand-built rows are readable)."""
    store = open_store(target)
    try:
        return store.counts()
    finally:
        store.close()
