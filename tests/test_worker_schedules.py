"""Schedules fired by real workers, in real time (SPEC §8): three pools on one store, each fire
time of an every-minute schedule enqueued once, within two seconds of it, while the workers
are idle and while every one of them is busy running a job.

It waits for real fire times (two or three whole minutes), so it is the one slow test of the
schedules; the rules it rests on are tested without waiting in test_contract_schedules.py.
It mostly sleeps: SQLite and PostgreSQL run side by side in the same minutes, one test.
"""

from __future__ import annotations

import time

import pytest
from clikit import assert_ok, enqueue, job_ids
from conftest import CLI, wait_for
from workerkit import epoch, show, status

from queuectl import cron
from queuectl.schedules import job_id

POOLS = 3
ON_TIME = 2.0  # SPEC §8: a fire time's job appears within two seconds of it


class Setup:
    """One store with its three pools and an every-minute schedule `tick`."""

    def __init__(self, cli: CLI, pools) -> None:
        self.cli = cli
        self.pools = [pools.start(cli, "--count", "1") for _ in range(POOLS)]

    def next_fire(self) -> float:
        return epoch(self.cli.json("schedule", "show", "tick")["next_run_at"])

    def appears(self, fire_time: float) -> dict:
        """Wait (on the store, not a fixed sleep) for the fire time's job; its `show --json`."""
        job = job_id("tick", fire_time)
        left = fire_time + ON_TIME - time.time()
        wait_for(lambda: job in job_ids(self.cli), timeout=max(0.0, left) + 10, interval=0.1)
        return show(self.cli, job)

    def processing(self) -> int:
        return status(self.cli)["jobs"]["processing"]


def stores(sqlite_cli: CLI, request, tmp_path) -> list[CLI]:
    """The SQLite store, and a PostgreSQL one when a server answers."""
    try:
        pg_url = request.getfixturevalue("pg_url")
    except pytest.skip.Exception:
        return [sqlite_cli]
    folder = tmp_path / "pg"
    folder.mkdir()
    return [sqlite_cli, CLI(pg_url, folder)]


def test_pools_enqueue_each_fire_time_once_and_on_time_idle_or_busy(
    sqlite_cli, request, tmp_path, pools
):
    setups = [Setup(cli, pools) for cli in stores(sqlite_cli, request, tmp_path)]
    for setup in setups:
        wait_for(lambda s=setup: len(status(s.cli)["workers"]) == POOLS, timeout=30)
        assert_ok(setup.cli("schedule", "add", "tick", "* * * * *", "--command", "true"))

    # Idle: every worker waits for work; one of them enqueues the fire time's job.
    firsts = [setup.next_fire() for setup in setups]
    for setup, first in zip(setups, firsts, strict=True):
        idle = setup.appears(first)
        assert epoch(idle["created_at"]) - first <= ON_TIME, (setup.cli.db, idle)
        assert epoch(idle["run_at"]) == first

    # Busy: every worker runs a long job; one of them enqueues from its lease thread.
    for setup in setups:
        for n in range(POOLS):
            enqueue(setup.cli, id=f"busy-{n}", command="sleep 300", priority=10)
    for setup in setups:
        wait_for(lambda s=setup: s.processing() == POOLS, timeout=30, interval=0.1)
    seconds = [setup.next_fire() for setup in setups]  # all busy: a busy worker fires it
    for setup, second in zip(setups, seconds, strict=True):
        busy = setup.appears(second)
        assert epoch(busy["created_at"]) - second <= ON_TIME, (setup.cli.db, busy)
        assert setup.processing() == POOLS  # still all busy with the sleeps

    # Each fire time from the first to the second has exactly one job, and exactly one worker
    # of the three pools says it enqueued it.
    for setup, first, second in zip(setups, firsts, seconds, strict=True):
        expected = [
            job_id("tick", moment)
            for moment in [first, *cron.next_times("* * * * *", "UTC", first, 10)]
            if moment <= second
        ]
        fired = sorted(job for job in job_ids(setup.cli) if job.startswith("tick@"))
        assert fired == expected, setup.cli.db
        logs = "".join(pool.output() for pool in setup.pools)
        for job in expected:
            assert logs.count(f"{job}: enqueued by its schedule") == 1, logs
        assert "could not look for due schedules" not in logs, logs
