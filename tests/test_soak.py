"""Soak: many jobs through 4 workers with random failures, timeouts and worker kills (issue #5).

Each job's id says what its command does, so its final state is known in advance:
  ok-…     succeeds                                   -> completed
  flaky-…  fails with a random exit code on its first run, then succeeds -> completed
  fail-…   always fails with a random exit code (2 retries)            -> dead after 3 runs
  slow-…   outlives its 0.3 s timeout (no retries)                     -> dead, timed out
Meanwhile a random worker is SIGKILLed every so often (the supervisor replaces it). At the end
every job must be accounted for exactly, with a run history that explains it (a killed worker's
run shows as `lost`, at most one per kill); worker memory must stay flat; and the database
size per job is reported.

The short version runs in the default suite. The long one (100 000 jobs unless QUEUECTL_SOAK
says how many) runs with `pytest --soak tests/test_soak.py -s` or `QUEUECTL_SOAK=N`.
Linux only: workers are found, measured and killed through /proc.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import time

import pytest
from clikit import enqueue_many
from faultkit import counts, fresh_cli, integrity, reader, stop_pool, wait_workers, worker_pids
from workerkit import FAST, pool_cleanup, rss_kib

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="kills and measures processes through /proc"
)

WORKERS = 4
# Retries for jobs that should complete: enough to absorb runs lost to kills.
SAFE_RETRIES = 5
FAIL_RETRIES = 2
TIMEOUT = 0.3


def job_specs(total: int, rng: random.Random) -> list[dict]:
    specs = []
    for n in range(total):
        roll = rng.random()
        code = rng.randrange(1, 126)
        if roll < 0.80:
            spec = {"id": f"ok-{n:06d}", "command": "true", "max_retries": SAFE_RETRIES}
        elif roll < 0.90:
            command = f'[ "$QUEUECTL_ATTEMPT" -gt 1 ] || exit {code}'
            spec = {"id": f"flaky-{n:06d}", "command": command, "max_retries": SAFE_RETRIES}
        elif roll < 0.99:
            spec = {"id": f"fail-{n:06d}", "command": f"exit {code}", "max_retries": FAIL_RETRIES}
        else:
            spec = {"id": f"slow-{n:06d}", "command": "sleep 30", "timeout": TIMEOUT}
            spec["max_retries"] = 0
        specs.append(spec)
    return specs


def finished(db: str) -> int:
    done = counts(db)
    return done.get("completed", 0) + done.get("dead", 0)


# One row per job: its state, attempts, and a summary of its run history.
HISTORY = """
SELECT j.id, j.state, j.attempts, j.max_retries,
       count(r.run_id),
       sum(r.outcome = 'lost'),
       sum(r.outcome = 'exited' AND r.exit_code = 0),
       sum(r.outcome = 'exited' AND r.exit_code <> 0),
       sum(r.outcome = 'timed_out'),
       sum(r.finished_at IS NULL),
       (SELECT outcome FROM runs WHERE job_seq = j.seq ORDER BY run_id DESC LIMIT 1)
FROM jobs j LEFT JOIN runs r ON r.job_seq = j.seq
GROUP BY j.seq
"""


def check_every_job(db: str, total: int, kills: int) -> dict[str, int]:
    """Every job in the state its script dictates, its runs explaining it; returns totals."""
    problems = []
    lost_total = 0
    seen = 0
    with reader(db) as conn:
        for row in conn.execute(HISTORY):
            job_id, state, attempts, max_retries, runs, lost, ok, failed, timed, open_, last = row
            seen += 1
            lost_total += lost
            kind = job_id.split("-", 1)[0]
            if runs != attempts or open_:
                problems.append(f"{job_id}: {runs} runs for {attempts} attempts, {open_} open")
            if kind in ("ok", "flaky"):
                expected = state == "completed" and ok == 1 and last == "exited"
                expected &= timed == 0
                if kind == "ok":
                    expected &= failed == 0
                else:  # its first run fails, unless a kill lost that run
                    expected &= failed <= 1 and failed + lost >= 1
            elif kind == "fail":
                expected = state == "dead" and ok == 0 and timed == 0
                expected &= attempts == max_retries + 1 and failed + lost == attempts
            else:  # slow
                expected = state == "dead" and attempts == 1 and timed + lost == 1
            if not expected:
                problems.append(f"{job_id}: {state}, runs {row[4:]}")
    assert seen == total, f"{seen} jobs in the store, {total} enqueued"
    assert not problems, f"{len(problems)} jobs wrong, e.g.:\n" + "\n".join(problems[:20])
    assert lost_total <= kills, f"{lost_total} lost runs from {kills} kills"
    return {"lost": lost_total}


def soak(tmp_path, total: int, kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    cli = fresh_cli(tmp_path / "store", FAST)
    specs = job_specs(total, rng)
    assert enqueue_many(cli, specs, timeout=300) == [spec["id"] for spec in specs]
    kill_at = sorted(rng.sample(range(total // 10, total * 9 // 10), kills))
    samples: dict[int, list[tuple[int, int]]] = {}  # pid -> [(jobs finished, VmRSS KiB)]
    killed = []
    started = time.monotonic()
    with pool_cleanup() as pools:
        pool = pools.start(cli, "--count", str(WORKERS), "--quiet")
        wait_workers(pool, cli.db, WORKERS)
        done = 0
        while done < total:
            done = finished(cli.db)
            for pid in worker_pids(pool.pid):
                rss = rss_kib(pid)
                if rss is not None:
                    samples.setdefault(pid, []).append((done, rss))
            if kill_at and done >= kill_at[0]:
                kill_at.pop(0)
                victims = worker_pids(pool.pid)
                if victims:
                    victim = rng.choice(victims)
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)
            assert pool.proc.poll() is None, pool.output()
            assert time.monotonic() - started < max(120, total / 50), (
                f"only {done} of {total} jobs finished\n{pool.output()[-3000:]}"
            )
            time.sleep(0.1)
        seconds = time.monotonic() - started
        wait_workers(pool, cli.db, WORKERS)
        # Workers were killed: the pool says so with exit 1 (SPEC §4), after a clean stop.
        assert stop_pool(pool) == (1 if killed else 0), pool.output()[-3000:]
        assert "Traceback" not in pool.output()
    assert len(killed) == kills
    totals = check_every_job(cli.db, total, len(killed))
    assert integrity(cli.db) == [("ok",)]

    # Memory: for each worker that ran long enough, its resident size late in its life against
    # early on (after warm-up). A leak of a few hundred bytes per job would show here.
    growth = []
    for history in samples.values():
        if len(history) < 10:
            continue
        third = len(history) // 3
        early = statistics.median(rss for _done, rss in history[third : 2 * third])
        late = max(rss for _done, rss in history[2 * third :])
        jobs_between = history[-1][0] - history[third][0]
        growth.append((late - early, jobs_between))
    assert growth, "no worker was sampled long enough"
    worst = max(kib for kib, _jobs in growth)
    assert worst < 4096, f"worker memory grew by {worst} KiB: {growth}"

    files = [cli.db + suffix for suffix in ("", "-wal", "-shm")]
    size = sum(os.path.getsize(path) for path in files if os.path.exists(path))
    with sqlite3.connect(cli.db) as conn:
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    per_job = size / total
    report = {
        "jobs": total,
        "runs": runs,
        "seconds": round(seconds, 1),
        "jobs_per_second": round(total / seconds),
        "kills": len(killed),
        "lost_runs": totals["lost"],
        "worst_rss_growth_kib": worst,
        "database_bytes": size,
        "bytes_per_job": round(per_job),
    }
    print(f"\nsoak report: {json.dumps(report)}")
    # Sane: a job row, its runs and their index entries, not kilobytes of slack per job.
    assert per_job < 2048, report
    return report


def test_short_soak_every_job_accounted_for(tmp_path):
    soak(tmp_path, total=2000, kills=3, seed=11)


@pytest.mark.slow
def test_long_soak_every_job_accounted_for(tmp_path):
    total = int(os.environ.get("QUEUECTL_SOAK") or 100_000)
    soak(tmp_path, total=total, kills=max(2, total // 5000), seed=12)
