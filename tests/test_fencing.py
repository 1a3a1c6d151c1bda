"""A job's deadlines hold whatever the store is doing, and two runs of one job never overlap
(SPEC §5): the timeout while the store is locked, fencing when the lease cannot be renewed, and
a worker frozen past its lease (SIGSTOP), whose command the rescuer kills before the rerun.

The commands keep their own evidence: each run writes its start time, and then the time every
50 ms, into files named after its attempt; an overlap would show as a run starting before the
previous run's last mark.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from clikit import enqueue
from conftest import wait_for
from workerkit import DEADLINE, alive, show, speed_up, wait_int, wait_state

from queuectl.lease import fencing

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")

# Marks its start, then the time every 50 ms, until killed; the second attempt ends at once.
# Each mark is written aside and renamed into place: a run killed mid-write leaves its previous
# mark whole.
MARKING = (
    "echo $$ > pid.$QUEUECTL_ATTEMPT;"
    " date +%s.%N > tmp.$QUEUECTL_ATTEMPT && mv tmp.$QUEUECTL_ATTEMPT start.$QUEUECTL_ATTEMPT;"
    ' if [ "$QUEUECTL_ATTEMPT" -gt 1 ]; then exit 0; fi;'
    " while :; do date +%s.%N > tmp.1 && mv tmp.1 last.1; sleep 0.05; done"
)


def mark(folder: Path, name: str) -> float:
    return float((folder / name).read_text())


def hold_write_lock(db: str) -> sqlite3.Connection:
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_fencing_leaves_a_margin_and_rides_through_outages_of_40_percent():
    for lease in (1, 3, 10, 30, 300):
        times = fencing(lease)
        assert times.fence_after + times.grace + times.margin == pytest.approx(lease)
        assert times.margin >= 0.05 * lease  # clock rates may differ by 5 %
        assert times.grace <= 2.0
        # An outage that starts just after a renewal and lasts 40 % of the lease, plus one
        # heartbeat interval and a second to reconnect, ends before the fence.
        interval = min(lease / 3, 1.0)
        assert times.fence_after > 0.4 * lease + interval + (1.0 if lease >= 10 else 0.0)


def test_a_timeout_is_enforced_while_the_store_is_locked(sqlite_cli, pools):
    # Before, the heartbeat waited for the lock (30 s busy timeout) and the timeout with it.
    cli = speed_up(sqlite_cli, QUEUECTL_LEASE_SECONDS="30")
    job = enqueue(cli, id="slow", command="echo $$ > pid; sleep 60", timeout=1, max_retries=0)
    pools.start(cli)
    pid = wait_int(cli.cwd / "pid")
    holder = hold_write_lock(cli.db)
    try:
        locked = time.monotonic()
        wait_for(lambda: not alive(pid), timeout=DEADLINE)
        assert time.monotonic() - locked < 3.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    done = wait_state(cli, job, "dead")
    assert done["last_error"] == "timed out after 1s"


def test_a_worker_that_cannot_renew_its_lease_kills_its_command_before_it_runs_out(
    sqlite_cli, pools
):
    lease = 3.0
    cli = speed_up(sqlite_cli, QUEUECTL_LEASE_SECONDS="3", QUEUECTL_BUSY_TIMEOUT="0.2")
    job = enqueue(cli, id="fenced", command=MARKING, max_retries=1)
    pool = pools.start(cli)
    pid = wait_int(cli.cwd / "pid.1")
    wait_for(lambda: show(cli, job)["runs"][-1].get("started_at"))
    holder = hold_write_lock(cli.db)  # every renewal fails from now on
    try:
        locked = time.monotonic()
        wait_for(lambda: not alive(pid), timeout=DEADLINE)
        killed = time.monotonic()
        # The last renewal was sent before the lock was taken: the command is gone within the
        # lease minus its margin, counted from then.
        assert killed - locked < lease - fencing(lease).margin
        time.sleep(lease)  # past the lease: nothing may restart the job while the lock holds
        assert not (cli.cwd / "start.2").exists()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    done = wait_state(cli, job, "completed")
    assert done["attempts"] == 2
    assert mark(cli.cwd, "last.1") < mark(cli.cwd, "start.2")
    assert "lease not renewed" in pool.output()


def test_a_frozen_worker_s_command_is_killed_before_the_rerun_starts(sqlite_cli, pools):
    cli = speed_up(sqlite_cli, QUEUECTL_LEASE_SECONDS="2")
    job = enqueue(cli, id="frozen", command=MARKING, max_retries=1)
    first = pools.start(cli)
    wait_int(cli.cwd / "pid.1")
    (worker,) = wait_for(lambda: cli.json("status")["workers"])
    wait_for(lambda: show(cli, job)["runs"][-1].get("started_at"))
    # Let the pid be recorded (the first heartbeat, 50 ms in), then freeze the worker.
    wait_for(lambda: (cli.cwd / "last.1").exists())
    time.sleep(0.2)
    os.kill(worker["pid"], signal.SIGSTOP)
    try:
        # A second pool rescues the job once the lease has run out; with three workers, one may
        # claim the rerun between the rescue and the kill of what the frozen run left behind.
        pools.start(cli, "--count", "3")
        done = wait_state(cli, job, "completed")
    finally:
        os.kill(worker["pid"], signal.SIGCONT)
    assert done["attempts"] == 2
    assert done["runs"][0]["outcome"] == "lost"
    # The first run was killed (its marks stopped) before the second started.
    assert mark(cli.cwd, "last.1") < mark(cli.cwd, "start.2")
    assert first.proc.poll() is None  # the thawed pool carries on
