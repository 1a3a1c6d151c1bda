"""Schedules fired by real workers, in real time (SPEC §8): three pools on one store, each fire
time of an every-minute schedule enqueued once, within two seconds of it, while the workers
are idle and while every one of them is busy running a job.

It waits for real fire times (two or three whole minutes), so it is the one slow test of the
schedules; the rules it rests on are tested without waiting in test_contract_schedules.py.
"""

from __future__ import annotations

import time

from clikit import assert_ok, enqueue, job_ids
from conftest import wait_for
from workerkit import epoch, show, status

from queuectl import cron

POOLS = 3
ON_TIME = 2.0  # SPEC §8: a fire time's job appears within two seconds of it


def appears(cli, name: str, fire_time: float) -> dict:
    """Wait (on the store, not a fixed sleep) for the fire time's job; its `show --json`."""
    job = cron_job_id(name, fire_time)
    left = fire_time + ON_TIME - time.time()
    wait_for(lambda: job in job_ids(cli), timeout=max(0.0, left) + 10, interval=0.1)
    return show(cli, job)


def cron_job_id(name: str, fire_time: float) -> str:
    from queuectl.schedules import job_id

    return job_id(name, fire_time)


def next_fire(cli, name: str) -> float:
    return epoch(cli.json("schedule", "show", name)["next_run_at"])


def test_pools_enqueue_each_fire_time_once_and_on_time_idle_or_busy(cli, pools):
    started = [pools.start(cli, "--count", "1") for _ in range(POOLS)]
    wait_for(lambda: len(status(cli)["workers"]) == POOLS, timeout=30)
    assert_ok(cli("schedule", "add", "tick", "* * * * *", "--command", "true"))

    # Idle: every worker waits for work; one of them enqueues the fire time's job.
    first = next_fire(cli, "tick")
    idle = appears(cli, "tick", first)
    assert epoch(idle["created_at"]) - first <= ON_TIME, idle
    assert epoch(idle["run_at"]) == first

    # Busy: every worker runs a long job; one of them enqueues from its lease thread.
    for n in range(POOLS):
        enqueue(cli, id=f"busy-{n}", command="sleep 300", priority=10)
    wait_for(lambda: status(cli)["jobs"]["processing"] == POOLS, timeout=30, interval=0.1)
    second = next_fire(cli, "tick")
    assert second > time.time(), "fired while the workers were being made busy"
    busy = appears(cli, "tick", second)
    assert epoch(busy["created_at"]) - second <= ON_TIME, busy
    assert status(cli)["jobs"]["processing"] == POOLS  # still all busy with the sleeps

    # Each fire time from the first to the second has exactly one job, and exactly one worker
    # of the three pools says it enqueued it.
    expected = [
        cron_job_id("tick", moment)
        for moment in [first, *cron.next_times("* * * * *", "UTC", first, 10)]
        if moment <= second
    ]
    fired = sorted(job for job in job_ids(cli) if job.startswith("tick@"))
    assert fired == expected
    logs = "".join(pool.output() for pool in started)
    for job in expected:
        assert logs.count(f"{job}: enqueued by its schedule") == 1, logs
    assert "could not look for due schedules" not in logs, logs
