"""Helpers for the fault tests (test_crash_points.py, test_storage_faults.py, test_soak.py): jobs
that leave evidence of every run, reading an SQLite store directly, and watching the workers of a
pool through /proc (Linux). Not a test module itself.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from conftest import CLI, wait_for
from workerkit import DEADLINE, alive

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# jobs that leave evidence


def marked_command(evidence: Path, work: str = "sleep 0.02") -> str:
    """A command that appends `start ID ATTEMPT` and `end ID ATTEMPT` to evidence/marks around
    `work`, holding an flock on evidence/locks/ID meanwhile. Another run of the same job that
    starts while any process of an earlier run still lives (a leftover the crash did not take
    down) cannot get the lock, and says so in evidence/overlaps."""
    (evidence / "locks").mkdir(parents=True, exist_ok=True)
    folder = shlex.quote(str(evidence))
    return (
        f"exec 9>>{folder}/locks/$QUEUECTL_JOB_ID;"
        f" flock -n 9 || echo $QUEUECTL_JOB_ID >> {folder}/overlaps;"
        f" echo start $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT >> {folder}/marks;"
        f" {work};"
        f" echo end $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT >> {folder}/marks"
    )


class Marks:
    """What the marked commands of one store wrote."""

    def __init__(self, evidence: Path) -> None:
        self.lines = _lines(evidence / "marks")
        self.overlaps = _lines(evidence / "overlaps")
        self.starts = collections.Counter(line[1] for line in self.lines if line[0] == "start")
        self.ends = collections.Counter(line[1] for line in self.lines if line[0] == "end")

    def attempts_started(self, job_id: str) -> list[int]:
        return [int(line[2]) for line in self.lines if line[:2] == ["start", job_id]]

    def interleaved(self) -> list[str]:
        """Jobs with a run that started while another run of theirs had started and not ended
        (a run killed midway never writes its end; the flock catches those)."""
        open_runs: dict[str, int] = {}
        bad = []
        for kind, job_id, _attempt in self.lines:
            if kind == "start":
                if open_runs.get(job_id):
                    bad.append(job_id)
                open_runs[job_id] = 1
            else:
                open_runs[job_id] = 0
        return bad


def _lines(path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------------------------------------
# the store, read directly (cheap enough to poll while hundreds of jobs run)


@contextlib.contextmanager
def reader(db: str):
    # mode=rw: never creates a missing store (a test may have deleted it on purpose), and can
    # open a WAL store whose -shm is missing, which read-only connections cannot.
    conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def counts(db: str) -> dict[str, int]:
    with reader(db) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())


def completed(db: str) -> int:
    return counts(db).get("completed", 0)


def jobs_and_runs(db: str) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Every job (id -> row) and every job's runs (id -> rows, oldest first)."""
    with reader(db) as conn:
        conn.row_factory = sqlite3.Row
        jobs = {row["id"]: dict(row) for row in conn.execute("SELECT * FROM jobs")}
        runs: dict[str, list[dict]] = {job_id: [] for job_id in jobs}
        for row in conn.execute(
            "SELECT jobs.id AS job_id, runs.* FROM runs JOIN jobs ON jobs.seq = runs.job_seq"
            " ORDER BY runs.run_id"
        ):
            runs[row["job_id"]].append(dict(row))
    return jobs, runs


def integrity(db: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


# ---------------------------------------------------------------------------------------------
# the processes of a pool


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(text) for text in handle.read().split()]
    except OSError:
        return []


def worker_pids(supervisor: int) -> list[int]:
    """The live worker processes of a pool (children of its supervisor running the worker)."""
    found = []
    for pid in children(supervisor):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if b"queuectl.worker" in argv and alive(pid):
            found.append(pid)
    return found


def wait_workers(pool, db: str, count: int, timeout: float = DEADLINE) -> list[int]:
    """Wait until the pool has `count` live workers registered in the store: past their
    start-up, so a stop reaches them as a request rather than killing them mid-start."""

    def ready():
        try:
            with reader(db) as conn:
                registered = {row[0] for row in conn.execute("SELECT pid FROM workers")}
        except sqlite3.Error:  # not created yet
            return False
        pids = [pid for pid in worker_pids(pool.pid) if pid in registered]
        return len(pids) == count and pids

    try:
        return wait_for(ready, timeout=timeout)
    except AssertionError:
        raise AssertionError(
            f"{count} workers not up within {timeout}s: children {worker_pids(pool.pid)}\n"
            + pool.output()[-3000:]
        ) from None


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time used so far by these processes (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def cpu_share(pids: list[int], seconds: float) -> float:
    """The CPU the processes used over the next `seconds`, as a share of one core each."""
    before, started = cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / (time.monotonic() - started) / max(1, len(pids))


def stop_pool(pool, timeout: float = DEADLINE) -> int:
    """SIGTERM the supervisor (it relays) and wait for the pool to exit; returns its status."""
    pool.proc.terminate()
    return pool.wait_exit(timeout)


def fresh_cli(folder: Path, env: dict[str, str]) -> CLI:
    """A CLI for a new SQLite store in its own folder (several stores in one test)."""
    folder.mkdir(parents=True, exist_ok=True)
    cli = CLI(str(folder / "queue.db"), folder)
    cli.env.update(env)
    return cli
