"""Crash points: a worker SIGKILLed at each point of its cycle, again and again (issue #5).

`QUEUECTL_CRASH_AT` (queuectl/faults.py) makes a worker kill itself at one exact point: inside
the claim's transaction, right after the claim commits, after the command exits, or inside the
outcome's transaction. Each test loops over fresh stores; in each, the crash is armed at a
random moment (by deleting the QUEUECTL_CRASH_ONCE file), the supervisor replaces the dead
worker, and afterwards every job must be in the right final state, the run history must tell
the truth, no job may have run twice at the same time, and the database must pass
`PRAGMA integrity_check`. A last test kills random workers with `kill -9` at random moments.

Linux only: processes are found and checked through /proc.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest
from clikit import enqueue_many
from conftest import wait_for
from faultkit import (
    Marks,
    completed,
    counts,
    fresh_cli,
    integrity,
    jobs_and_runs,
    marked_command,
    stop_pool,
    wait_workers,
    worker_pids,
)
from workerkit import DEADLINE, FAST, speed_up

from queuectl.store import open_store

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="kills and inspects processes through /proc"
)

ITERATIONS = 3
JOBS = 12
WORKERS = 2


def run_with_one_crash(folder, point: str, pools, rng: random.Random) -> tuple[str, int]:
    """One iteration: JOBS marked jobs through a pool whose next worker to reach `point`
    after a random number of completed jobs kills itself. Returns (db path, crashed pid)."""
    cli = fresh_cli(folder, FAST)
    evidence = folder / "evidence"
    command = marked_command(evidence)
    specs = [{"id": f"j{n:02d}", "command": command} for n in range(JOBS)]
    # The crash comes after a random number of jobs: those run first, the rest after arming.
    arm_after = rng.randrange(0, JOBS // 2)
    enqueue_many(cli, specs[:arm_after])
    once = folder / "crashed"
    once.touch()  # disarmed: a worker crashes only if it can create this file
    pool = pools.start(
        cli,
        "--count",
        str(WORKERS),
        env={"QUEUECTL_CRASH_AT": point, "QUEUECTL_CRASH_ONCE": str(once)},
    )
    first = set(wait_workers(pool, cli.db, WORKERS))
    wait_for(lambda: completed(cli.db) == arm_after, timeout=DEADLINE)
    once.unlink()  # armed: the next worker to reach the point dies there
    enqueue_many(cli, specs[arm_after:])
    wait_for(once.exists, timeout=DEADLINE)
    pool.wait_output("died (killed by SIGKILL)")
    wait_for(lambda: counts(cli.db).get("completed", 0) == JOBS, timeout=DEADLINE)
    # The replacement is running before we stop the pool, so the stop reaches it too.
    now = set(wait_workers(pool, cli.db, WORKERS))
    crashed = first - now
    assert len(crashed) == 1, (first, now, pool.output())
    # A worker that died unexpectedly makes the pool exit 1 (SPEC §4), after a graceful stop.
    assert stop_pool(pool) == 1, pool.output()
    assert "Traceback" not in pool.output()
    return cli.db, crashed.pop()


def check_common(db: str, folder) -> tuple[dict, dict, Marks]:
    jobs, runs = jobs_and_runs(db)
    assert sorted(jobs) == [f"j{n:02d}" for n in range(JOBS)]
    assert {job["state"] for job in jobs.values()} == {"completed"}
    marks = Marks(folder / "evidence")
    assert marks.overlaps == [] and marks.interleaved() == [], "two runs of a job overlapped"
    assert set(marks.ends) == set(jobs), "every job ran to its end at least once"
    for job_id, job in jobs.items():
        history = runs[job_id]
        assert len(history) == job["attempts"], (job_id, history)
        assert [run["attempt"] for run in history] == list(range(1, job["attempts"] + 1))
        assert history[-1]["outcome"] == "exited" and history[-1]["exit_code"] == 0
        assert all(run["finished_at"] is not None for run in history), history
    assert integrity(db) == [("ok",)]
    return jobs, runs, marks


@pytest.mark.parametrize("point", ["claim-before-commit"])
def test_crash_inside_the_claim_transaction_leaves_no_trace_of_the_claim(tmp_path, pools, point):
    rng = random.Random(1)
    for iteration in range(ITERATIONS):
        folder = tmp_path / f"round-{iteration}"
        db, _crashed = run_with_one_crash(folder, point, pools, rng)
        jobs, runs, marks = check_common(db, folder)
        # The claim rolled back with the worker: no attempt counted, no run opened, nothing lost.
        assert {job["attempts"] for job in jobs.values()} == {1}, jobs
        assert all(len(history) == 1 for history in runs.values())
        assert all(count == 1 for count in marks.starts.values()), marks.starts


@pytest.mark.parametrize(
    "point, command_ran",
    [
        ("after-claim", False),  # claimed and committed; the command never started
        ("after-exit", True),  # the command ran to its end; its outcome was never written
        ("finish-before-commit", True),  # the outcome's transaction died with the worker
    ],
)
def test_crash_while_holding_a_job_costs_one_lost_run_and_a_retry(
    tmp_path, pools, point, command_ran
):
    rng = random.Random(point)
    for iteration in range(ITERATIONS):
        folder = tmp_path / f"round-{iteration}"
        db, crashed_pid = run_with_one_crash(folder, point, pools, rng)
        jobs, runs, marks = check_common(db, folder)
        retried = [job_id for job_id, job in jobs.items() if job["attempts"] != 1]
        assert len(retried) == 1, {job_id: job["attempts"] for job_id, job in jobs.items()}
        victim = retried[0]
        lost, last = runs[victim]
        assert jobs[victim]["attempts"] == 2
        assert lost["outcome"] == "lost" and "lease expired" in lost["error"], lost
        assert f"-{crashed_pid}-" in lost["worker_id"], (crashed_pid, lost)
        assert last["worker_id"] != lost["worker_id"]
        # At-least-once: the command ran again only if the crash came after it ran.
        expected = [1, 2] if command_ran else [2]
        assert marks.attempts_started(victim) == expected, marks.lines
        others = set(jobs) - {victim}
        assert all(marks.starts[job_id] == 1 for job_id in others), marks.starts


def test_kill_9_of_random_workers_at_random_moments_loses_nothing(tmp_path, pools):
    """Five SIGKILLs of random workers while a few hundred jobs run: every job completes;
    only jobs whose run was lost ran more than once, and never two runs at the same time."""
    rng = random.Random(5)
    total, kills, workers = 300, 5, 3
    cli = fresh_cli(tmp_path / "store", FAST)
    evidence = tmp_path / "evidence"
    command = marked_command(evidence, work="sleep 0.0$((QUEUECTL_ATTEMPT * 3))")
    enqueue_many(cli, [{"id": f"k{n:03d}", "command": command} for n in range(total)])
    pool = pools.start(cli, "--count", str(workers))
    wait_workers(pool, cli.db, workers)
    thresholds = sorted(rng.sample(range(10, total * 2 // 3), kills))
    killed = []
    for threshold in thresholds:
        wait_for(lambda t=threshold: completed(cli.db) >= t, timeout=60, interval=0.01)
        victims = worker_pids(pool.pid)
        if not victims:
            continue
        victim = rng.choice(victims)
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
    assert len(killed) >= kills - 1, "the pool must be killable while it runs"
    wait_for(lambda: completed(cli.db) == total, timeout=120, interval=0.1)
    wait_workers(pool, cli.db, workers)  # the replacements are up before the stop
    # A worker that died unexpectedly makes the pool exit 1 (SPEC §4), after a graceful stop.
    assert stop_pool(pool) == 1, pool.output()
    assert "Traceback" not in pool.output()

    jobs, runs = jobs_and_runs(cli.db)
    assert len(jobs) == total and {job["state"] for job in jobs.values()} == {"completed"}
    marks = Marks(evidence)
    assert marks.overlaps == [], "a run started while a killed run's command still ran"
    assert set(marks.ends) == set(jobs)
    lost_runs = 0
    for job_id, job in jobs.items():
        history = runs[job_id]
        assert [run["outcome"] for run in history] == ["lost"] * (len(history) - 1) + ["exited"]
        assert len(history) == job["attempts"]
        lost_runs += len(history) - 1
        # Ran more than once only if a run was lost, and never more often than it was claimed.
        assert marks.starts[job_id] <= job["attempts"], (job_id, history, marks.starts[job_id])
    # Each kill costs at most the one run its worker held.
    assert lost_runs <= len(killed), (lost_runs, killed)
    assert integrity(cli.db) == [("ok",)]


# ---------------------------------------------------------------------------------------------
# power loss: what the guarantees rest on


def wal_syncs(cli, args: list[str], trace, env: dict | None = None) -> int:
    """Run `queuectl ARGS` under strace; how many times it flushed the store's WAL to disk."""
    result = subprocess.run(
        ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace)]
        + [sys.executable, "-m", "queuectl", *args],
        capture_output=True,
        text=True,
        cwd=cli.cwd,
        env={**cli.env, **(env or {})},
        timeout=DEADLINE * 2,
    )
    assert result.returncode == 0, result.stderr
    return sum(f"{cli.db}-wal>" in line for line in trace.read_text().splitlines())


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_cli_commits_are_flushed_before_they_are_acknowledged_and_worker_commits_are_not(
    sqlite_cli, tmp_path
):
    """A power cut can only undo what never reached the disk. The CLI commits with SQLite's
    synchronous=FULL: its WAL is flushed before `enqueue` prints the id. Workers commit with
    NORMAL: their claims and outcomes reach the disk at the next checkpoint, so a power cut may
    undo the last ones (those jobs run again). QUEUECTL_SQLITE_SYNCHRONOUS overrides both."""
    cli = speed_up(sqlite_cli)
    cli.ok("status")  # create the store
    trace = tmp_path / "trace"
    if subprocess.run(["strace", "-o", os.devnull, "true"], check=False).returncode != 0:
        pytest.skip("strace cannot trace here (ptrace not allowed)")
    # Another connection stays open, as workers' do: closing the last connection checkpoints
    # (and flushes) whatever the mode, which would hide the difference.
    keeper = sqlite3.connect(cli.db)
    keeper.execute("SELECT count(*) FROM jobs").fetchall()
    try:
        spec = '{"id": "durable", "command": "true"}'
        assert wal_syncs(cli, ["enqueue", spec], trace) >= 1
        spec = '{"id": "not-flushed", "command": "true"}'
        nosync = {"QUEUECTL_SQLITE_SYNCHRONOUS": "NORMAL"}
        assert wal_syncs(cli, ["enqueue", spec], trace, nosync) == 0
        jobs = 20
        enqueue_many(cli, [{"id": f"w{n}", "command": "true"} for n in range(jobs)])
        # A burst worker: about one commit per job (an outcome and the next claim together),
        # none flushed one by one.
        assert wal_syncs(cli, ["worker", "start", "--burst"], trace) < jobs // 4
        enqueue_many(cli, [{"id": f"f{n}", "command": "true"} for n in range(jobs)])
        full = {"QUEUECTL_SQLITE_SYNCHRONOUS": "FULL"}
        assert wal_syncs(cli, ["worker", "start", "--burst"], trace, full) >= jobs
    finally:
        keeper.close()
    assert counts(cli.db) == {"completed": 2 * jobs + 2}


def test_store_connections_use_the_documented_synchronous_modes(tmp_path, monkeypatch):
    monkeypatch.delenv("QUEUECTL_SQLITE_SYNCHRONOUS", raising=False)
    path = str(tmp_path / "queue.db")
    expected = {"FULL": 2, "NORMAL": 1}
    for default in ("FULL", "NORMAL"):  # the CLI's default, and what workers ask for
        store = open_store(path, synchronous=default)
        try:
            mode = store._conn.execute("PRAGMA synchronous").fetchone()[0]
        finally:
            store.close()
        assert mode == expected[default]
    monkeypatch.setenv("QUEUECTL_SQLITE_SYNCHRONOUS", "full")
    store = open_store(path, synchronous="NORMAL")
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        store.close()
