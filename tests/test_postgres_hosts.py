"""Several hosts sharing one PostgreSQL store (issue 4): pools with distinct host names, a pool
killed outright, `worker stop` across hosts, a server restarted mid-run, and server time.

"Hosts" are worker pools on this machine with distinct QUEUECTL_HOSTNAME values: separate
processes with separate connections, as far as the store can tell separate machines. Tests
against the shared server use a schema of their own; the restart test starts a private cluster
with the PostgreSQL binaries so that the shared server is never disturbed. PostgreSQL only
(skipped, loudly, when no server is reachable); Linux only (processes are checked through /proc).
"""

from __future__ import annotations

import collections
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from clikit import enqueue, enqueue_many
from conftest import CLI, wait_for
from storekit import add
from workerkit import (
    DEADLINE,
    alive,
    epoch,
    pool_cleanup,
    show,
    speed_up,
    status,
    wait_gone,
    wait_int,
    wait_state,
)

from queuectl.models import Outcome, RunResult
from queuectl.store import ClaimRequest, open_store

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="kills and inspects processes through /proc"
    ),
]

HOSTS = ("host-a", "host-b", "host-c")


@pytest.fixture
def pg_cli(pg_url: str, tmp_path: Path) -> CLI:
    return speed_up(CLI(pg_url, tmp_path))


@pytest.fixture
def pools(pg_cli):
    # Depends on pg_cli so that the pools are killed before their schema is dropped.
    with pool_cleanup() as started:
        yield started


def on_host(host: str) -> dict[str, str]:
    return {"QUEUECTL_HOSTNAME": host}


def workers_by_host(cli: CLI) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = collections.defaultdict(list)
    for worker in status(cli)["workers"]:
        found[worker["host"]].append(worker)
    return dict(found)


def sql_rows(url: str, statement: str) -> list[tuple]:
    """Rows of one query against the store's own schema (for facts the CLI does not show)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement).fetchall()


# -- (a) several hosts drain one queue -----------------------------------------------------------


def test_pools_on_three_hosts_run_thousands_of_jobs_each_exactly_once(pg_cli, pools):
    # A lease that a busy machine cannot miss: a rescued job would legitimately run twice.
    cli, total = speed_up(pg_cli, QUEUECTL_LEASE_SECONDS="5"), 3000
    started = [pools.start(cli, "--count", "2", env=on_host(host)) for host in HOSTS]
    wait_for(lambda: sorted(workers_by_host(cli)) == sorted(HOSTS), timeout=DEADLINE)

    command = 'echo "$QUEUECTL_JOB_ID" >> ran.txt'
    # One job waits for a gate, so the run cannot end before status has looked at it (on a
    # loaded machine one `status` can take longer than the other 2 999 jobs).
    held = f"while [ ! -e gate ]; do sleep 0.05; done; {command}"
    specs = [{"id": f"j{n:04d}", "command": command} for n in range(total - 1)]
    ids = enqueue_many(cli, [{"id": "held", "command": held, "priority": 1}, *specs])
    assert len(ids) == total

    # While the jobs run, status lists the workers of every host.
    during = wait_for(
        lambda: (doc := status(cli))["jobs"]["completed"] > 0 and doc, timeout=DEADLINE
    )
    assert during["jobs"]["completed"] < total
    assert sorted({worker["host"] for worker in during["workers"]}) == sorted(HOSTS)
    assert len(during["workers"]) == 2 * len(HOSTS)
    (cli.cwd / "gate").touch()

    wait_for(lambda: status(cli)["jobs"]["completed"] == total, timeout=90, interval=0.2)
    counts = status(cli)["jobs"]
    assert counts == dict.fromkeys(counts, 0) | {"completed": total}

    ran = collections.Counter((cli.cwd / "ran.txt").read_text().split())
    assert set(ran) == set(ids), "every job ran"
    assert [job for job, times in ran.items() if times != 1] == [], "no job ran twice"
    assert {job["attempts"] for job in cli.json("list", "--limit", "0")} == {1}
    # Every host took part, and each run is recorded under the host that ran it.
    per_host = dict(sql_rows(cli.db, "SELECT host, count(*) FROM queuectl_runs GROUP BY host"))
    assert sorted(per_host) == sorted(HOSTS)
    assert sum(per_host.values()) == total

    for pool in started:
        assert pool.proc.poll() is None, pool.output()


# -- (b) a whole pool killed outright --------------------------------------------------------------


def test_kill_9_of_a_whole_pool_mid_job_another_host_reruns_the_job_after_the_lease(pg_cli, pools):
    lease = 2.0
    cli = speed_up(pg_cli, QUEUECTL_LEASE_SECONDS=str(lease))
    doomed = pools.start(cli, "--count", "2", env=on_host("doomed"))
    wait_for(lambda: len(workers_by_host(cli).get("doomed", [])) == 2, timeout=DEADLINE)
    job = enqueue(
        cli,
        id="survivor",
        command=(
            "echo $$ > shell.$QUEUECTL_ATTEMPT;"
            ' if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 30; fi; echo finished-$QUEUECTL_ATTEMPT'
        ),
        max_retries=3,
    )
    first_shell = wait_int(cli.cwd / "shell.1")
    try:
        rescuer = pools.start(cli, env=on_host("rescuer"))
        wait_for(lambda: "rescuer" in workers_by_host(cli), timeout=DEADLINE)
        holders = [w for w in status(cli)["workers"] if w["current_job"] == job]
        assert [w["host"] for w in holders] == ["doomed"]

        # The host dies: its supervisor and its workers (pids from status, by host) are frozen,
        # so that none can react to the others' deaths, then killed.
        victims = [doomed.pid] + [w["pid"] for w in workers_by_host(cli)["doomed"]]
        for pid in victims:
            os.kill(pid, signal.SIGSTOP)
        # Frozen, the dead host can no longer extend its lease: this is when it runs out.
        [(lease_until,)] = sql_rows(cli.db, "SELECT lease_until FROM queuectl_jobs")
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        doomed.proc.wait(timeout=DEADLINE)
        for pid in victims:
            wait_gone(pid)

        shown = wait_state(cli, job, "completed", timeout=DEADLINE)
        assert shown["attempts"] == 2
        lost, rerun = shown["runs"]
        assert (lost["host"], lost["outcome"]) == ("doomed", "lost")
        assert "lease expired" in lost["error"]
        assert lost["finished_at"] is not None
        assert (rerun["host"], rerun["outcome"], rerun["exit_code"]) == ("rescuer", "exited", 0)
        # Not before the lease ran out (times from show are rounded to the millisecond).
        assert epoch(rerun["started_at"]) >= lease_until - 0.001
        assert epoch(lost["finished_at"]) >= lease_until - 0.001
        assert "finished-2" in cli.ok("logs", job)
        # Another host cannot reach the dead host's processes: its command runs on (a real
        # dead machine takes it down with it).
        assert alive(first_shell)
        wait_for(lambda: sorted(workers_by_host(cli)) == ["rescuer"], timeout=DEADLINE)
        assert rescuer.proc.poll() is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first_shell, signal.SIGKILL)


# -- (c) worker stop across hosts --------------------------------------------------------------


def test_worker_stop_stops_the_workers_of_every_host(pg_cli, pools):
    cli = speed_up(pg_cli, QUEUECTL_LEASE_SECONDS="3")
    started = [pools.start(cli, env=on_host(host)) for host in HOSTS]
    wait_for(lambda: sorted(workers_by_host(cli)) == sorted(HOSTS), timeout=DEADLINE)
    # One job per worker that waits for a go-ahead, and more waiting behind them.
    blocking = "touch started.$QUEUECTL_JOB_ID; while [ ! -e go ]; do sleep 0.02; done"
    busy = enqueue_many(
        cli, [{"id": f"busy-{n}", "command": blocking, "priority": 10} for n in range(3)]
    )
    later = enqueue_many(cli, [{"id": f"later-{n}", "command": "true"} for n in range(3)])
    wait_for(lambda: all((cli.cwd / f"started.{job}").exists() for job in busy), timeout=DEADLINE)
    assert sorted(w["current_job"] for w in status(cli)["workers"]) == busy

    stopper = subprocess.Popen(
        [sys.executable, "-m", "queuectl", "worker", "stop", "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cli.cwd,
        env=cli.env,
    )
    try:
        for pool in started:  # every host heard it while its job was still running
            pool.wait_output("stopping after the current job")
        (cli.cwd / "go").touch()
        out, err = stopper.communicate(timeout=DEADLINE)
    finally:
        if stopper.poll() is None:
            stopper.kill()
    assert stopper.returncode == 0, err
    assert "asked 3 worker(s) to stop" in out
    assert "3 worker(s) stopped" in out
    for pool in started:
        assert pool.wait_exit() == 0, pool.output()
    assert status(cli)["workers"] == []
    assert [show(cli, job)["state"] for job in busy] == ["completed"] * 3
    assert [show(cli, job)["state"] for job in later] == ["pending"] * 3


# -- (d) the server restarted mid-run ----------------------------------------------------------


def find_pg_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian's layout, else PATH)."""

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/bin$", path)
        return tuple(int(part) for part in match.group(1).split(".")) if match else (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if all(os.access(Path(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateCluster:
    """A throw-away PostgreSQL cluster on a free port, TCP only, trust authentication.

    initdb and pg_ctl refuse to run as root: as root they run as the `postgres` OS user, in a
    folder of its own under the system temp folder (pytest's tmp_path is private to root)."""

    def __init__(self, bindir: Path, root: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self.run_as = run_as
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _tool(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            server_log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise AssertionError(f"{tool} {args} failed:\n{result.stderr}\n{server_log[-3000:]}")
        return result

    def _options(self) -> str:
        # fsync off: only an OS crash could lose data, and this cluster lives for one test.
        return (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c full_page_writes=off -c shared_buffers=16MB"
        )

    def init(self) -> None:
        self._tool("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._tool("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(),
                   "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._tool("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self._tool("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(),
                   "-m", "fast", "-w", "-t", "60", "restart")  # fmt: skip

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._tool("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # pg_ctl could not stop it
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_cluster(tmp_path: Path):
    """A private cluster for this test only; always stopped and removed at the end."""
    pytest.importorskip("psycopg", reason="PostgreSQL backend unavailable: psycopg is missing")
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: cannot start a cluster")
    run_as = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run initdb as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing: cannot run initdb as postgres")
        root = Path(tempfile.mkdtemp(prefix="queuectl-pgcluster-"))
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = "postgres"
    else:
        root = tmp_path / "pgcluster"
        root.mkdir()
    cluster = PrivateCluster(bindir, root, run_as)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def marked(command: str) -> str:
    """The command between a start and an end mark: job id, shell pid, time."""
    mark = 'echo "{} $QUEUECTL_JOB_ID $$ $(date +%s.%N)" >> marks.txt'
    return f"{mark.format('S')}; {command}; {mark.format('E')}"


def run_intervals(marks: Path) -> dict[str, list[tuple[float, float]]]:
    """Per job, the [start, end] of each run from its marks (a run without an end: +inf)."""
    starts: dict[tuple[str, str], float] = {}
    ends: dict[tuple[str, str], float] = {}
    for line in marks.read_text().splitlines():
        kind, job, shell, stamp = line.split()
        (starts if kind == "S" else ends)[job, shell] = float(stamp)
    intervals: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for (job, shell), begun in starts.items():
        intervals[job].append((begun, ends.get((job, shell), float("inf"))))
    return {job: sorted(runs) for job, runs in intervals.items()}


def overlapping(intervals: dict[str, list[tuple[float, float]]]) -> list[str]:
    return [
        job
        for job, runs in intervals.items()
        if any(later[0] < earlier[1] for earlier, later in zip(runs, runs[1:], strict=False))
    ]


def test_server_restarted_mid_run_loses_nothing_and_runs_nothing_twice_at_once(
    private_cluster, tmp_path
):
    import psycopg

    with psycopg.connect(private_cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE queuectl_restart")
    url = private_cluster.url.rsplit("/", 1)[0] + "/queuectl_restart"
    # A lease longer than the outage: workers ride it out holding their jobs. (With a shorter
    # lease the jobs running during the outage are rescued when the server is back.)
    cli = speed_up(CLI(url, tmp_path), QUEUECTL_LEASE_SECONDS="10")
    total = 240
    marks = tmp_path / "marks.txt"
    ids = enqueue_many(
        cli, [{"id": f"r{n:03d}", "command": marked("sleep 0.05")} for n in range(total)]
    )

    def finished() -> int:
        text = marks.read_text() if marks.exists() else ""
        return text.count("\nE ") + text.startswith("E ")

    with pool_cleanup() as pools:
        started = [pools.start(cli, "--count", "2", env=on_host(host)) for host in ("east", "west")]
        wait_for(lambda: finished() >= 30, timeout=DEADLINE)
        private_cluster.restart()
        after_restart = finished()
        wait_for(lambda: finished() >= after_restart + 30, timeout=DEADLINE)
        assert finished() < total, "the run ended before the outage"

        # Two long jobs run through the whole outage, their heartbeats failing meanwhile.
        spanning = [
            {"id": f"long-{n}", "command": marked("sleep 5"), "priority": 9} for n in (1, 2)
        ]
        ids += enqueue_many(cli, spanning)
        wait_for(lambda: all(f"S {job['id']} " in marks.read_text() for job in spanning))
        private_cluster.stop()
        down = cli("status")
        assert down.returncode == 1
        assert "cannot connect to PostgreSQL" in down.stderr
        assert "Traceback" not in down.stderr
        time.sleep(3)  # the outage itself, not a wait for a condition
        private_cluster.start()

        wait_for(lambda: status(cli)["jobs"]["completed"] == len(ids), timeout=60, interval=0.2)
        for pool in started:
            assert pool.proc.poll() is None, pool.output()
            assert "Traceback" not in pool.output()
            assert "died" not in pool.output(), "a worker died instead of reconnecting"
        cli.ok("worker", "stop", "--timeout", "30")
        for pool in started:
            assert pool.wait_exit() == 0, pool.output()

    counts = status(cli)["jobs"]
    assert counts == dict.fromkeys(counts, 0) | {"completed": len(ids)}
    intervals = run_intervals(marks)
    assert sorted(intervals) == sorted(ids), "every job ran"
    assert overlapping(intervals) == [], "a job ran twice at the same time"
    unfinished = [job for job, runs in intervals.items() if runs[-1][1] == float("inf")]
    assert unfinished == []
    # The lease outlived the outage, and claims and outcomes whose answers were cut off were
    # looked up again: no attempt was wasted.
    assert {job["attempts"] for job in cli.json("list", "--limit", "0")} == {1}
    assert all(len(runs) == 1 for runs in intervals.values())


# -- (e) server time, whatever the host's clock says -------------------------------------------

DEFAULTS = {"max-retries": 0, "job-timeout": 0}


def bury(attempts: int, max_retries: int) -> None:
    return None  # rescued jobs go dead, so that none of them is claimed again here


def skew_host_clock(monkeypatch, skew: float) -> list[str]:
    """Make time.time() an hour off; returns the list of queuectl functions that read it."""
    real_time, reads = time.time, []

    def skewed() -> float:
        caller = sys._getframe(1)
        if caller.f_globals.get("__name__", "").startswith("queuectl"):
            reads.append(caller.f_code.co_name)
        return real_time() + skew

    monkeypatch.setattr(time, "time", skewed)
    return reads


@pytest.mark.parametrize("skew", [3600.0, -3600.0], ids=["host-ahead", "host-behind"])
def test_times_come_from_the_server_clock_not_the_hosts(pg_url, monkeypatch, skew):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:

        def server_now() -> float:
            return admin.execute("SELECT date_part('epoch', clock_timestamp())").fetchone()[0]

        # Opened after the clock is skewed: a clock captured when the store opens is caught too.
        reads = skew_host_clock(monkeypatch, skew)
        store = open_store(pg_url)
        try:
            before, now, after = server_now(), store.now(), server_now()
            assert before <= now <= after

            add(store, "later", command="true", delay=30, defaults=DEFAULTS)
            add(store, "due", command="true", defaults=DEFAULTS)
            delayed = store.get("later")
            assert abs(delayed.run_at - (server_now() + 30)) < 2
            assert abs(delayed.created_at - server_now()) < 2

            # The skewed host neither starts the delayed job early nor misses the due one, and
            # the lease it takes runs out on the server's clock.
            claim = store.claim(ClaimRequest("w1", "skewed-host", None, 5.0))
            assert claim is not None and claim.job.id == "due"
            assert abs(claim.job.lease_until - (server_now() + 5)) < 2
            assert store.claim(ClaimRequest("w2", "skewed-host", None, 5.0)) is None
            assert abs(store.next_run_at(None) - store.now() - 30) < 2

            # A skewed rescuer does not steal the live job; a heartbeat extends its lease by the
            # server's clock; the outcome is stamped with it.
            assert store.rescue_expired(bury, 5.0) == []
            assert store.heartbeat("w1", 5.0, claim).held
            assert abs(store.get("due").lease_until - (server_now() + 5)) < 2
            assert store.finish(claim, RunResult(Outcome.EXITED, 0, None), None).held
            assert abs(store.get("due").updated_at - server_now()) < 2

            # A lease that really ran out is rescued all the same.
            add(store, "short", command="true", defaults=DEFAULTS)
            short = store.claim(ClaimRequest("w1", "skewed-host", None, 0.3))
            assert short is not None and short.job.id == "short"
            assert store.rescue_expired(bury, 5.0) == []
            wait_for(lambda: server_now() > short.job.lease_until + 0.05, timeout=5)
            assert store.rescue_expired(bury, 5.0) == ["short"]
            assert store.runs("short")[-1].outcome == "lost"
        finally:
            store.close()
    assert reads == [], f"queuectl read the host's clock in {sorted(set(reads))}"
