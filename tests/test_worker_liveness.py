"""Dead workers disappear at once on their own host, elsewhere when their lease runs out
(SPEC §4 `status`, `worker stop`).

A pool killed with kill -9 leaves its workers' rows behind; `status` listed them for the whole
lease (30 s) and `worker stop` waited for them and failed, or counted a replaced worker as
stopped. The lease here is 30 s, so anything these tests see sooner comes from the process
table, not from the lease.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from conftest import wait_for
from workerkit import DEADLINE, speed_up, status

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")

LEASE = "30"


def live_pids(cli) -> set[int]:
    return {worker["pid"] for worker in status(cli)["workers"]}


def wait_workers(cli, count: int, pool=None) -> set[int]:
    """The pids of exactly `count` listed workers, once there are. The deadline is the loaded
    machine's (a CI run once took more than 20 s to list one new worker); a miss shows what
    the pool said."""
    try:
        return wait_for(
            lambda: (pids := live_pids(cli)) and len(pids) == count and pids, timeout=DEADLINE
        )
    except AssertionError as missed:
        listed = status(cli)["workers"]
        said = pool.output() if pool is not None else "(no pool given)"
        raise AssertionError(f"{missed}\nlisted: {listed}\npool said:\n{said}") from None


def test_a_pool_killed_with_sigkill_leaves_no_worker_listed_and_nothing_to_stop(cli, pools):
    cli = speed_up(cli, QUEUECTL_LEASE_SECONDS=LEASE)
    pool = pools.start(cli, "--count", "2")
    wait_workers(cli, 2, pool)
    pool.kill()  # supervisor and workers, SIGKILL: nobody unregisters
    assert live_pids(cli) == set()
    started = time.monotonic()
    result = cli("worker", "stop", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no workers are running"
    assert time.monotonic() - started < 10


def test_a_dead_worker_of_another_host_stays_listed_until_its_lease_runs_out(cli, pools):
    # Another host's processes cannot be looked at from here: only the lease tells.
    cli = speed_up(cli, QUEUECTL_LEASE_SECONDS=LEASE)
    pool = pools.start(cli, env={"QUEUECTL_HOSTNAME": "elsewhere.example"})
    (elsewhere,) = wait_workers(cli, 1, pool)
    pool.kill()
    workers = status(cli)["workers"]
    assert [(w["pid"], w["host"]) for w in workers] == [(elsewhere, "elsewhere.example")]
    # It goes when the lease runs out: seen here with a 1 s lease rather than waiting 30 s.
    wait_for(
        lambda: cli.json("status", env={"QUEUECTL_LEASE_SECONDS": "1"})["workers"] == [],
        timeout=DEADLINE,
    )
    assert len(status(cli)["workers"]) == 1  # still inside the 30 s lease


def test_worker_stop_counts_only_live_workers_after_one_was_replaced(cli, pools):
    cli = speed_up(cli, QUEUECTL_LEASE_SECONDS=LEASE)
    pool = pools.start(cli, "--count", "2")
    first = wait_workers(cli, 2, pool)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    pool.wait_output(f"worker pid {victim} died")
    now = wait_for(lambda: (p := live_pids(cli)) and len(p) == 2 and victim not in p and p)
    assert victim not in now
    started = time.monotonic()
    result = cli("worker", "stop", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "asked 2 worker(s) to stop; waiting up to 20s",
        "2 worker(s) stopped",
    ]
    assert time.monotonic() - started < 10
    # The pool stopped, and says a worker died unexpectedly on its way.
    assert pool.wait_exit() == 1
    assert status(cli)["workers"] == []


def test_worker_stop_names_a_frozen_worker_unreachable_and_it_obeys_once_back(sqlite_cli, pools):
    cli = speed_up(sqlite_cli, QUEUECTL_LEASE_SECONDS=LEASE)
    pool = pools.start(cli)
    (pid,) = wait_workers(cli, 1, pool)
    os.kill(pid, signal.SIGSTOP)  # a suspended host, as far as the store can tell
    try:
        result = cli("worker", "stop", "--timeout", "4")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == 1, result.stderr
    assert "1 worker(s) still running after 4s; 1 of them unreachable" in result.stderr
    # Back, it finds the stop that was asked for while it was away, and stops.
    assert pool.wait_exit() == 0, pool.output()
    assert "asked to stop through the store" in pool.output()


def test_a_worker_away_past_its_lease_is_reported_and_obeys_the_stop_when_back(cli, pools):
    cli = speed_up(cli, QUEUECTL_LEASE_SECONDS="2")
    away = pools.start(cli)
    (pid,) = wait_workers(cli, 1, away)
    present = pools.start(cli)  # keeps rescuing (and, before, pruning) while the other is away
    wait_workers(cli, 2, present)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: pid not in live_pids(cli), timeout=DEADLINE)  # its lease ran out
        time.sleep(1.5)  # several rescues by the present pool meanwhile
        result = cli("worker", "stop", "--timeout", "20")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1 worker(s) could not be reached (lease ran out"), lines
    assert lines[1:] == ["asked 1 worker(s) to stop; waiting up to 20s", "1 worker(s) stopped"]
    assert present.wait_exit() == 0
    # Back, the worker finds the stop asked for while it was away (its row may have gone).
    assert away.wait_exit() == 0, away.output()
    assert "asked to stop through the store" in away.output()
