"""A store that cannot be used for a while: the worker says so once, carries on as soon as it
is back, and a stop meanwhile is obeyed at once (SPEC §5).

The outages are real: on SQLite another process holds the write lock past the workers' busy
timeout; on PostgreSQL the server refuses new connections to the test's own database
(`ALTER DATABASE … ALLOW_CONNECTIONS false`) and the worker's sessions are terminated. The
shared server itself is never restarted or reconfigured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest
from clikit import enqueue
from conftest import CLI, postgres_admin_url, wait_for
from workerkit import DEADLINE, speed_up, wait_state

from queuectl.worker import STORE_CALL_SECONDS


@pytest.fixture(params=["sqlite", "postgres"])
def outage_db(request, tmp_path) -> Iterator[tuple[CLI, object]]:
    """A store of this test's own, and a switch that takes it away and brings it back."""
    if request.param == "sqlite":
        yield from _sqlite_outage(tmp_path)
    else:
        yield from _postgres_outage(tmp_path)


def _sqlite_outage(tmp_path) -> Iterator[tuple[CLI, object]]:
    cli = CLI(str(tmp_path / "queue.db"), tmp_path)
    cli.env["QUEUECTL_BUSY_TIMEOUT"] = "0.2"  # a held lock is an error after 0.2 s
    cli.ok("status")  # creates the store
    holder = sqlite3.connect(cli.db, isolation_level=None, timeout=30)

    def available(yes: bool) -> None:
        holder.execute("COMMIT" if yes else "BEGIN EXCLUSIVE")

    try:
        yield cli, available
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


def _postgres_outage(tmp_path) -> Iterator[tuple[CLI, object]]:
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("PostgreSQL server not reachable")
    import psycopg

    name = f"queuectl_outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def available(yes: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(yes).lower()}')
            if not yes:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    try:
        yield CLI(admin.rsplit("/", 1)[0] + "/" + name, tmp_path), available
    finally:
        with contextlib.suppress(psycopg.Error):
            available(True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_outage_is_said_once_ridden_through_and_a_stop_during_it_is_prompt(outage_db, pools):
    cli, available = outage_db
    cli = speed_up(cli)
    pool = pools.start(cli)
    pool.wait_output("queues: all)")
    available(False)
    pool.wait_output("store error, retrying")
    time.sleep(2.0)  # several retries, each of which may not print again
    assert pool.output().count("store error, retrying") <= 2, pool.output()

    available(True)
    back = time.monotonic()
    pool.wait_output("store reachable again")
    # Retries are at most MAX_STORE_RETRY_SECONDS (1 s) apart, not 5 s.
    assert time.monotonic() - back < 3.0, pool.output()
    job = enqueue(cli, id="after", command="true")
    assert wait_state(cli, job, "completed")["attempts"] == 1

    available(False)
    failures = pool.output().count("store error, retrying")
    wait_for(lambda: pool.output().count("store error, retrying") > failures, timeout=DEADLINE)
    asked = time.monotonic()
    os.kill(pool.pid, signal.SIGTERM)
    pool.wait_exit()
    # The back-off sleeps in short slices: the stop ends it at once, not after the pause. On
    # PostgreSQL a call in flight may take the worker's whole call limit (STORE_CALL_SECONDS)
    # first, and a connection attempt in it may overrun that by up to 2 s (libpq's
    # connect_timeout: whole seconds, 2 at least); a worker stopping in an outage does not wait
    # to unregister.
    bound = 3.0 if cli.db.endswith(".db") else STORE_CALL_SECONDS + 2.0 + 2.0
    assert time.monotonic() - asked < bound, pool.output()


def test_a_graceful_stop_waits_to_record_an_outcome_and_says_so_a_second_gives_up(tmp_path, pools):
    # The job has run; while the store is locked its outcome cannot be recorded. Leaving it
    # unrecorded would have the job requeued as lost and run again, so the first stop waits
    # (and says why), and a second stop gives that up.
    from workerkit import show

    cli = speed_up(CLI(str(tmp_path / "queue.db"), tmp_path), QUEUECTL_BUSY_TIMEOUT="0.2")
    job = enqueue(cli, id="ran", command="while [ ! -e go ]; do sleep 0.05; done")
    pool = pools.start(cli)
    wait_for(lambda: show(cli, job)["state"] == "processing", timeout=DEADLINE)
    holder = sqlite3.connect(cli.db, isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        (tmp_path / "go").touch()  # the command ends; its outcome waits for the lock
        pool.wait_output("store error, retrying")
        os.kill(pool.pid, signal.SIGTERM)
        pool.wait_output("stopping once the store takes the outcome")
        time.sleep(1.0)
        assert pool.proc.poll() is None  # still waiting, on purpose
        os.kill(pool.pid, signal.SIGTERM)  # the second request
        assert pool.wait_exit(timeout=10) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert show(cli, job)["state"] == "processing"  # left to the lease, as a lost run
