"""Two runs of one job never overlap across hosts when one host goes silent (SPEC §5).

Host h1 is a network namespace of the test's own that reaches PostgreSQL through a forwarder
(tests/netkit.py); a silent partition drops its packets, no reset. Host h0 is a pool in the root
namespace under another host name, so it can only rescue: it cannot kill h1's commands. The
commands keep their own evidence: each run writes its start time and then the time every 50 ms
into files named after its job and attempt. The gap between the first run's last mark and the
rerun's first is what the fence leaves; it must be positive.

The default suite partitions a few times; `--soak` (or QUEUECTL_SOAK) runs 20 partitions and
prints the worst-case gap.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from clikit import enqueue
from conftest import CLI, wait_for
from workerkit import DEADLINE, alive

from queuectl.lease import fencing

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces"),
]

# Marks its start, then the time every 50 ms; the rerun (attempt 2) ends at once.
# Each mark is written aside and renamed into place: a run killed mid-write leaves its previous
# mark whole.
MARKING = (
    'f="$QUEUECTL_JOB_ID.$QUEUECTL_ATTEMPT"; echo $$ > "pid.$f";'
    ' date +%s.%N > "tmp.$f" && mv "tmp.$f" "start.$f";'
    ' if [ "$QUEUECTL_ATTEMPT" -gt 1 ]; then exit 0; fi;'
    ' while :; do date +%s.%N > "tmp.$f" && mv "tmp.$f" "last.$f"; sleep 0.05; done'
)


class Hosts:
    """h1 inside the namespace, h0 outside; every pool is killed at the end."""

    def __init__(self, ns, url: str, home: Path, lease: str) -> None:
        self.ns, self.url, self.home = ns, url, home
        self.cli = CLI(url, home)  # enqueues from h0, outside the namespace
        self.cli.env.update(
            QUEUECTL_LEASE_SECONDS=lease, QUEUECTL_POLL_INTERVAL="0.1", QUEUECTL_BACKOFF_BASE="0"
        )
        self.env = self.cli.env
        self.procs: list = []

    def start(self, host: str, *args: str):
        log = open(self.home / f"{host}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        argv = [sys.executable, "-m", "queuectl", "worker", "start", *args]
        env = {**self.env, "QUEUECTL_HOSTNAME": host}
        if host == "h1":
            env["QUEUECTL_DB"] = self.ns.url(self.url)
            proc = self.ns.popen(argv, env=env, cwd=self.home, stdout=log, stderr=log)
        else:
            proc = subprocess.Popen(
                argv, env=env, cwd=self.home, stdout=log, stderr=log, start_new_session=True
            )
        proc.log = log.name
        self.procs.append(proc)
        return proc

    def stop(self, proc) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=DEADLINE)

    def sql(self, statement: str, params=()) -> list:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()

    def mark(self, name: str) -> float | None:
        try:
            return float((self.home / name).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def state(self, job_id: str) -> tuple[str, int]:
        [row] = self.sql("SELECT state, attempts FROM queuectl_jobs WHERE id = %s", (job_id,))
        return row


@pytest.fixture
def hosts(ns, pg_url, tmp_path):
    made = []

    def make(lease: str) -> Hosts:
        made.append(Hosts(ns, pg_url, tmp_path, lease))
        return made[-1]

    yield make
    for each in made:
        each.kill_all()


def partition_cycles(hosts, cycles: int, lease: float, per_cycle: int = 2) -> list[float]:
    """Each cycle: h1 runs `per_cycle` jobs, is partitioned; h0 starts, rescues and reruns
    them; the network heals. Returns the gaps (rerun start - first run's last mark)."""
    h = hosts(str(lease))
    h1 = h.start("h1", "--count", str(per_cycle), "--queue", "q")
    gaps: list[float] = []
    for cycle in range(cycles):
        jobs = [f"c{cycle}j{n}" for n in range(per_cycle)]
        for job in jobs:
            enqueue(h.cli, id=job, command=MARKING, queue="q", max_retries=1)
        for job in jobs:
            wait_for(lambda j=job: h.mark(f"last.{j}.1"), timeout=DEADLINE)
        time.sleep(0.3)  # a renewal or two on the way
        h.ns.partition()
        try:
            h0 = h.start("h0", "--count", str(per_cycle), "--queue", "q")
            for job in jobs:
                wait_for(lambda j=job: h.mark(f"start.{j}.2"), timeout=DEADLINE)
                wait_for(lambda j=job: h.state(j) == ("completed", 2), timeout=DEADLINE)
            h.stop(h0)
        finally:
            h.ns.heal()
        for job in jobs:
            pid = int((h.home / f"pid.{job}.1").read_text())
            assert not alive(pid), "the first run still runs beside its rerun"
            gaps.append(h.mark(f"start.{job}.2") - h.mark(f"last.{job}.1"))
    assert h1.poll() is None, Path(h1.log).read_text()  # h1 rides through and carries on
    return gaps


def test_a_silent_partition_longer_than_the_lease_never_gives_overlapping_runs(hosts):
    gaps = partition_cycles(hosts, cycles=2, lease=2.0)
    assert min(gaps) > 0, gaps


@pytest.mark.slow
def test_twenty_partitions_worst_case_gap(hosts):
    gaps = partition_cycles(hosts, cycles=20, lease=2.0)
    print(
        f"\n20 partitions, {len(gaps)} runs: worst-case gap {min(gaps):.3f}s, "
        f"median {sorted(gaps)[len(gaps) // 2]:.3f}s, fence {fencing(2.0)}"
    )
    assert min(gaps) > 0, gaps


def test_a_partition_of_40_percent_of_the_lease_is_ridden_through(hosts):
    # 40 % of a 10 s lease, partitioned just after h1 started the job: it renews again within
    # about a second of the heal (a fresh connection), well before its fence at 7.95 s.
    lease = 10.0
    h = hosts(str(lease))
    h1 = h.start("h1", "--queue", "q")
    enqueue(h.cli, id="long", command="sleep 8; echo done > long.done", queue="q", max_retries=0)
    wait_for(lambda: h.state("long") == ("processing", 1), timeout=DEADLINE)
    h0 = h.start("h0", "--queue", "q")  # would rescue the job if its lease ran out
    time.sleep(0.5)
    h.ns.partition()
    time.sleep(0.4 * lease)
    h.ns.heal()
    wait_for(lambda: h.state("long")[0] != "processing", timeout=DEADLINE)
    assert h.state("long") == ("completed", 1), Path(h1.log).read_text()
    assert (h.home / "long.done").exists()
    outcomes = h.sql(
        "SELECT r.outcome FROM queuectl_runs r JOIN queuectl_jobs j ON j.seq = r.job_seq"
        " WHERE j.id = 'long'"
    )
    assert outcomes == [("exited",)], outcomes  # one run: no rescue, no rerun
    assert h1.poll() is None and h0.poll() is None


def slow_job(hosts, host: str) -> tuple[Hosts, int]:
    """A job with a 2 s timeout that would run a minute, running on `host`; and its pid."""
    h = hosts("30")
    h.start(host, "--queue", "q")
    enqueue(
        h.cli,
        id="slow",
        command="echo $$ > pid.slow; exec sleep 60",
        queue="q",
        timeout=2,
        max_retries=0,
    )
    pid = wait_for(
        lambda: (h.home / "pid.slow").exists() and int((h.home / "pid.slow").read_text())
    )
    return h, pid


def test_a_timeout_is_enforced_during_a_partition(hosts):
    h, pid = slow_job(hosts, "h1")
    started = time.monotonic()
    h.ns.partition()
    try:
        wait_for(lambda: not alive(pid), timeout=DEADLINE)
        killed = time.monotonic() - started
    finally:
        h.ns.heal()
    assert killed < 2 + 2.0 + 1.0, killed  # the timeout, its kill grace, slack
    wait_for(lambda: h.state("slow")[0] == "dead", timeout=DEADLINE)


def test_a_timeout_is_enforced_while_the_jobs_table_is_locked(hosts):
    h, pid = slow_job(hosts, "h0")
    started = time.monotonic()
    with psycopg.connect(h.url) as conn:  # one transaction, held until the block ends
        conn.execute("LOCK TABLE queuectl_jobs IN ACCESS EXCLUSIVE MODE")
        wait_for(lambda: not alive(pid), timeout=DEADLINE)
        killed = time.monotonic() - started
    assert killed < 2 + 2.0 + 1.0, killed
    wait_for(lambda: h.state("slow")[0] == "dead", timeout=DEADLINE)


def test_status_during_a_table_lock_is_a_clear_error_never_a_partial_list(hosts):
    # Before, status listed 2 of 6 live workers while the jobs table was locked.
    h = hosts("30")
    status = [sys.executable, "-m", "queuectl", "status", "--json"]
    env = {**h.env, "QUEUECTL_BUSY_TIMEOUT": "2"}

    def listed() -> int:
        result = subprocess.run(status, env=env, cwd=h.home, capture_output=True, text=True)
        return len(json.loads(result.stdout)["workers"])

    h.start("h0", "--count", "3", "--queue", "q")
    wait_for(lambda: listed() == 3, timeout=DEADLINE)
    with psycopg.connect(h.url) as conn:
        conn.execute("LOCK TABLE queuectl_jobs IN ACCESS EXCLUSIVE MODE")
        during = subprocess.run(status, env=env, cwd=h.home, capture_output=True, text=True)
    assert during.returncode == 1 and during.stdout == "", during
    assert "locked by another session" in during.stderr and "Traceback" not in during.stderr
    assert listed() == 3
