"""Crashes: workers and whole pools killed with SIGKILL mid-run (SPEC §5, at-least-once).

Linux only: commands are found and checked through /proc.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from clikit import enqueue, enqueue_many
from conftest import wait_for
from workerkit import DEADLINE, alive, show, speed_up, status, wait_gone, wait_int, wait_state

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="kills and inspects processes through /proc"
)


def test_kill_9_of_a_worker_mid_job_reruns_the_job_and_its_command_does_not_run_on(cli, pools):
    speed_up(cli)
    job = enqueue(
        cli,
        id="survivor",
        command=(
            "echo $$ > shell.$QUEUECTL_ATTEMPT;"
            ' if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 60 & echo $! > child.1; wait; fi;'
            " echo finished-$QUEUECTL_ATTEMPT"
        ),
        max_retries=3,
    )
    pool = pools.start(cli)  # one worker: the supervisor must replace it
    shell = wait_int(cli.cwd / "shell.1")
    child = wait_int(cli.cwd / "child.1")
    holders = [w for w in status(cli)["workers"] if w["current_job"] == job]
    assert len(holders) == 1, status(cli)
    victim = holders[0]["pid"]

    os.kill(victim, signal.SIGKILL)
    # The killed worker's command, and what that command started, die with it.
    wait_gone(shell, timeout=5)
    wait_gone(child, timeout=5)

    shown = wait_state(cli, job, "completed", timeout=DEADLINE)
    assert shown["attempts"] == 2
    first, second = shown["runs"]
    assert first["finished_at"] is not None, "the lost run is closed"
    assert first["worker_id"] != second["worker_id"]
    assert second["exit_code"] == 0
    assert not (cli.cwd / "child.2").exists()
    assert read_text(cli.cwd / "shell.2")
    logs = cli("logs", job)
    assert "finished-2" in logs.stdout
    assert "finished-1" not in logs.stdout
    assert not alive(shell) and not alive(child)
    assert pool.proc.poll() is None, "the supervisor survives the loss of a worker"
    assert [w["pid"] for w in status(cli)["workers"]] != [victim]


def read_text(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_kill_9_of_the_whole_pool_loses_no_job_and_keeps_the_store_intact(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    total = 300
    command = "sleep 0.05; echo $QUEUECTL_JOB_ID >> ran.txt"
    # One job waits for a gate opened only after the kill: the run cannot end before it (on a
    # loaded machine a `status` call can take longer than the other 299 jobs).
    gated = f"while [ ! -e gate ]; do sleep 0.05; done; {command}"
    specs = [{"id": f"j{n:03d}", "command": command} for n in range(1, total)]
    ids = enqueue_many(cli, [{"id": "j000", "command": gated, "priority": 1}, *specs])
    pool = pools.start(cli, "--count", "4")
    wait_for(lambda: len(status(cli)["workers"]) == 4, timeout=DEADLINE)
    wait_for(lambda: status(cli)["jobs"]["completed"] >= 40, timeout=60, interval=0.05)

    # The workers run in sessions of their own: a signal to the supervisor alone would not
    # reach them, so every process of the pool is killed by pid.
    doomed = [pool.pid] + [w["pid"] for w in status(cli)["workers"]]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pool.proc.wait(timeout=DEADLINE)
    for pid in doomed:
        wait_gone(pid)
    after_kill = status(cli)["jobs"]
    assert after_kill["completed"] < total, "the pool was killed after the run, not during it"
    in_flight = after_kill["processing"]
    assert in_flight >= 1  # the gated job at least
    (cli.cwd / "gate").touch()

    # Once the dead workers' leases run out, a new burst pool requeues and finishes everything.
    wait_for(lambda: status(cli)["workers"] == [], timeout=DEADLINE)
    result = cli("worker", "start", "--burst", "--count", "2", timeout=120)
    assert result.returncode == 0, result.stderr

    counts = status(cli)["jobs"]
    assert counts == {
        "waiting": 0,
        "pending": 0,
        "processing": 0,
        "completed": total,
        "failed": 0,
        "dead": 0,
        "canceled": 0,
    }
    ran = collections.Counter((cli.cwd / "ran.txt").read_text().split())
    assert set(ran) == set(ids), "every job ran"
    # At-least-once: only the runs cut short by the kill may have happened twice.
    twice = [job for job, times in ran.items() if times > 1]
    assert len(twice) <= in_flight, (twice, in_flight)
    assert max(ran.values()) <= 2
    retried = [job for job in cli.json("list", "--limit", "0") if job["attempts"] != 1]
    assert len(retried) <= in_flight
    assert {job["attempts"] for job in retried} <= {2}
    assert set(twice) <= {job["id"] for job in retried}

    with contextlib.closing(sqlite3.connect(cli.db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for job in ids[:3]:
        assert show(cli, job)["state"] == "completed"


def test_cancel_after_the_whole_pool_was_killed_kills_the_command_left_running(cli, pools):
    """With its pool killed outright, nothing is left to kill a running job's command; a
    `cancel` on the same host does it, and says so only once the command is gone."""
    speed_up(cli)
    job = enqueue(cli, id="orphan", command="sleep 300 & echo $! > child.pid; wait")
    pool = pools.start(cli)
    child = wait_int(cli.cwd / "child.pid")
    # `cancel` finds the command through the pid recorded at the run's first heartbeat, when
    # its log file is also given its name.
    wait_for(lambda: os.path.exists(show(cli, job)["runs"][-1]["log_path"]), timeout=DEADLINE)
    doomed = [pool.pid] + [w["pid"] for w in status(cli)["workers"]]
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    pool.proc.wait(timeout=DEADLINE)
    for pid in doomed:
        wait_gone(pid)
    assert alive(child), "the command outlived its pool, as it does on a kill -9 of both"

    result = cli("cancel", job, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "canceled orphan, was processing (its command was killed)\n"
    wait_gone(child, timeout=5)
    assert show(cli, job)["state"] == "canceled"


def test_a_run_orphaned_before_its_pid_was_recorded_is_killed_before_its_retry(cli, pools):
    """A worker dies (here: on its own, with no supervisor to kill its command, as when the
    whole pool is killed) right after starting a command, before the first heartbeat records
    its pid. The worker that requeues the job finds the command through /proc and kills it,
    so the retry never overlaps with it (README, Guarantees)."""
    speed_up(cli)
    job = enqueue(
        cli,
        id="early",
        command='if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 300 & echo $! > bg.1; wait; fi',
    )
    crashed = subprocess.run(
        [sys.executable, "-m", "queuectl.worker", "--db", cli.db, "--burst", "--quiet"],
        env={**cli.env, "QUEUECTL_CRASH_AT": "after-start"},
        cwd=cli.cwd,
        timeout=DEADLINE,
    )
    assert crashed.returncode == -signal.SIGKILL
    orphan = wait_int(cli.cwd / "bg.1")
    assert alive(orphan)
    group = os.getpgid(orphan)
    try:
        pool = pools.start(cli)
        wait_state(cli, job, "completed", timeout=DEADLINE)
        wait_gone(orphan, timeout=5)
        assert "killed the commands its lost run left behind" in pool.output()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # whatever the test's outcome
    runs = show(cli, job)["runs"]
    assert [run["outcome"] for run in runs] == ["lost", "exited"]
