"""Storage faults under running workers (issue #5, SPEC §5), on SQLite with real faults: a full
disk (a small tmpfs), a file-size limit, a store made read-only (`chattr +i`), a write lock held
past the busy timeout, the store file deleted or replaced, the logs folder unwritable.

Each case: the CLI fails with a one-line error and exit status 1, never a traceback; no job it
acknowledged is lost; workers neither die nor spin (their CPU use is measured while the fault
lasts) and carry on by themselves once the fault is gone.

Linux and root only for the faults that need mount/chattr (skipped with the reason otherwise).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from clikit import assert_error, enqueue_many
from conftest import CLI, wait_for
from faultkit import (
    completed,
    counts,
    cpu_share,
    fresh_cli,
    integrity,
    jobs_and_runs,
    stop_pool,
    wait_workers,
    worker_pids,
)
from workerkit import DEADLINE, FAST, Pools

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="builds faults with Linux tools, reads /proc"
)

# An idle or waiting worker uses a few percent of a core at most; one that spins uses it all.
SPIN_SHARE = 0.15
# How long the CPU use of waiting workers is measured.
MEASURE_SECONDS = 1.5


class Faults:
    """Worker pools plus the faults a test builds; everything is undone at the end, pools first
    (so no process keeps a mount busy), then the faults in reverse order."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.pools = Pools()
        self._undo: list[list[str]] = []

    def run(self, *argv: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise OSError(f"{' '.join(argv)}: {result.stderr.strip()}")

    def tmpfs(self, folder: Path, size: str) -> Path:
        """Mount a tmpfs of `size` on `folder`; skip the test where mounting is not allowed."""
        folder.mkdir()
        try:
            self.run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder))
        except OSError as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc}")
        self._undo.append(["umount", "-l", str(folder)])
        return folder

    def read_only_bind(self, folder: Path) -> None:
        """Make `folder` read-only for everyone (root included) with a read-only bind mount."""
        try:
            self.run("mount", "--bind", str(folder), str(folder))
        except OSError as exc:
            pytest.skip(f"cannot bind-mount here: {exc}")
        self._undo.append(["umount", "-l", str(folder)])
        self.run("mount", "-o", "remount,bind,ro", str(folder))

    def writable_again(self, folder: Path) -> None:
        # Lazy: a worker may hold the folder open through the mount; it must cope with that.
        self.run("umount", "-l", str(folder))
        self._undo.remove(["umount", "-l", str(folder)])

    def immutable(self, *paths: Path) -> None:
        """`chattr +i`: writes through file descriptors already open fail too (ext4, xfs)."""
        try:
            self.run("chattr", "+i", *map(str, paths))
        except OSError as exc:
            pytest.skip(f"cannot make files immutable here: {exc}")
        self._undo.append(["chattr", "-i", *map(str, paths)])

    def mutable(self, *paths: Path) -> None:
        self.run("chattr", "-i", *map(str, paths))
        self._undo.remove(["chattr", "-i", *map(str, paths)])

    def undo(self) -> None:
        self.pools.kill_all()
        for argv in reversed(self._undo):
            subprocess.run(argv, capture_output=True, check=False)


@pytest.fixture
def faults(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("building storage faults (mount, chattr) needs root")
    built = Faults(tmp_path)
    try:
        yield built
    finally:
        built.undo()


def start_pool(faults: Faults, cli: CLI, count: int = 2, env: dict | None = None):
    pool = faults.pools.start(cli, "--count", str(count), env=env)
    pids = wait_workers(pool, cli.db, count)
    return pool, pids


def assert_waiting_not_spinning(pool, pids: list[int]) -> None:
    share = cpu_share(pids, MEASURE_SECONDS)
    assert share < SPIN_SHARE, f"workers used {share:.0%} of a core each while waiting"
    assert worker_pids(pool.pid) == pids, "no worker died"
    assert pool.proc.poll() is None


def assert_clean_end(pool, pids: list[int]) -> str:
    """The same workers are still there (none died and was replaced); stop them; no trace."""
    assert sorted(worker_pids(pool.pid)) == sorted(pids), pool.output()
    assert stop_pool(pool) == 0, pool.output()
    output = pool.output()
    assert "Traceback" not in output, output
    assert "died" not in output, output
    return output


def spec_lines(specs: list[dict]) -> str:
    return "".join(json.dumps(spec) + "\n" for spec in specs)


# ---------------------------------------------------------------------------------------------
# a write lock held past the busy timeout


def test_lock_held_past_the_busy_timeout(tmp_path, faults):
    cli = fresh_cli(tmp_path / "store", {**FAST, "QUEUECTL_BUSY_TIMEOUT": "0.3"})
    pool, pids = start_pool(faults, cli)
    # Due in a moment, so the workers find them while the lock is held.
    enqueue_many(cli, [{"id": f"due{n}", "command": "true", "delay": 1} for n in range(3)])
    holder = sqlite3.connect(cli.db, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = cli("enqueue", "-", input=spec_lines([{"id": "refused", "command": "true"}]))
        message = assert_error(result, 1, mentions=["lock"])
        assert cli.db in message
        assert_waiting_not_spinning(pool, pids)
        assert counts(cli.db) == {"pending": 3}
        pool.wait_output("is locked by another process")
    finally:
        holder.rollback()
        holder.close()
    wait_for(lambda: completed(cli.db) == 3, timeout=DEADLINE)
    jobs, _runs = jobs_and_runs(cli.db)
    assert sorted(jobs) == ["due0", "due1", "due2"], "the refused enqueue wrote nothing"
    assert_clean_end(pool, pids)


def test_a_lock_met_while_opening_the_store_is_waited_for(sqlite_cli):
    """Opening a store reads its schema, which another process can have locked (one recovering
    the WAL as it opens the store, or holding an exclusive lock): that wait counts against the
    busy timeout like any other, instead of failing at once with a false "gave up after 30s"
    (which made workers of a pool starting together die now and then)."""
    cli = sqlite_cli
    enqueue_many(cli, [{"id": "kept", "command": "true"}])
    holder = sqlite3.connect(cli.db, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")  # in exclusive locking mode nobody else may even read
    release = threading.Timer(1.0, holder.close)
    started = time.monotonic()
    release.start()
    try:
        result = cli("list", env={"QUEUECTL_BUSY_TIMEOUT": "20"})
    finally:
        release.join()
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout
    assert time.monotonic() - started >= 0.9, "it waited for the lock"


# ---------------------------------------------------------------------------------------------
# the store made read-only


def test_store_made_read_only_while_workers_run(tmp_path, faults):
    cli = fresh_cli(tmp_path / "store", FAST)
    enqueue_many(cli, [{"id": "before", "command": "true"}])
    pool, pids = start_pool(faults, cli)
    wait_for(lambda: completed(cli.db) == 1)
    enqueue_many(cli, [{"id": f"due{n}", "command": "true", "delay": 1} for n in range(3)])
    db = Path(cli.db)
    files = [db, Path(f"{db}-wal")]
    assert all(path.exists() for path in files)
    # Not the -shm: SQLite maps it into memory, and a write fault there is a SIGBUS.
    faults.immutable(*files)
    result = cli("enqueue", "-", input=spec_lines([{"id": "refused", "command": "true"}]))
    message = assert_error(result, 1, mentions=[cli.db])
    assert "read-only" in message
    assert_waiting_not_spinning(pool, pids)
    pool.wait_output("store error, retrying")
    faults.mutable(*files)
    wait_for(lambda: completed(cli.db) == 4, timeout=DEADLINE)
    jobs, _runs = jobs_and_runs(cli.db)
    assert sorted(jobs) == ["before", "due0", "due1", "due2"]
    assert_clean_end(pool, pids)
    assert integrity(cli.db) == [("ok",)]


# ---------------------------------------------------------------------------------------------
# the logs folder unwritable or gone


def test_logs_folder_unwritable(tmp_path, faults):
    """Runs that cannot create their log file fail as "could not start" and are retried; once
    the folder is writable again the job runs and its output is kept (the worker opened the
    folder while it was read-only, so it must not keep using that stale handle)."""
    cli = fresh_cli(tmp_path / "store", {**FAST, "QUEUECTL_BACKOFF_BASE": "1"})
    logs = Path(cli.db).parent / "logs"
    logs.mkdir(mode=0o700)
    faults.read_only_bind(logs)
    enqueue_many(cli, [{"id": "blocked", "command": "echo blocked", "max_retries": 20}])
    pool, pids = start_pool(faults, cli, count=1)

    def failed_to_start():
        _jobs, runs = jobs_and_runs(cli.db)
        return [run for run in runs["blocked"] if run["outcome"] == "not_started"]

    first_failure = wait_for(failed_to_start)[0]
    error = first_failure["error"]
    assert error.startswith(f"could not start: cannot write log file {logs}/"), error
    assert "Read-only file system" in error and "\n" not in error
    assert first_failure["exit_code"] is None
    assert cli.json("show", "blocked")["state"] in ("failed", "processing")
    assert_waiting_not_spinning(pool, pids)
    faults.writable_again(logs)
    wait_for(lambda: completed(cli.db) == 1, timeout=DEADLINE)
    assert "blocked" in cli.ok("logs", "blocked")
    kept = list(logs.glob("blocked.*.log"))
    assert len(kept) == 1 and kept[0].read_text() == "blocked\n", kept
    assert_clean_end(pool, pids)


def test_logs_folder_deleted_while_workers_run(tmp_path, faults):
    cli = fresh_cli(tmp_path / "store", FAST)
    enqueue_many(cli, [{"id": "first", "command": "echo first"}])
    pool, pids = start_pool(faults, cli, count=1)  # one worker: the one that wrote there
    wait_for(lambda: completed(cli.db) == 1)
    logs = Path(cli.db).parent / "logs"
    shutil.rmtree(logs)
    enqueue_many(cli, [{"id": "after", "command": "echo after", "max_retries": 0}])
    wait_for(lambda: counts(cli.db).get("completed", 0) + counts(cli.db).get("dead", 0) == 2)
    shown = cli.json("show", "after")
    assert shown["state"] == "completed", shown
    assert "after" in cli.ok("logs", "after")
    assert (logs.stat().st_mode & 0o777) == 0o700
    assert_clean_end(pool, pids)


# ---------------------------------------------------------------------------------------------
# a full disk, a file-size limit


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError:
                break
        while True:  # the last partial chunk
            try:
                handle.write(b"\0" * 512)
            except OSError:
                break
    return filler


def big_spec(job_id: str, size: int, **extra) -> dict:
    """A job whose command is `size` bytes (a shell comment), so writing it needs room."""
    return {"id": job_id, "command": ": " + "x" * size + "; true", **extra}


def test_disk_full_while_workers_run(tmp_path, faults):
    disk = faults.tmpfs(tmp_path / "disk", "2m")
    cli = fresh_cli(disk, FAST)
    enqueue_many(cli, [{"id": f"before{n}", "command": "true"} for n in range(3)])
    pool, pids = start_pool(faults, cli)
    wait_for(lambda: completed(cli.db) == 3)
    # Claiming these rewrites their big rows: the workers meet the full disk when they are due.
    acknowledged = enqueue_many(cli, [big_spec(f"due{n}", 100_000, delay=2) for n in range(2)])
    acknowledged += ["before0", "before1", "before2"]
    filler = fill(disk)

    refused = cli("enqueue", "-", input=spec_lines([big_spec("refused", 120_000)]))
    message = assert_error(refused, 1, mentions=[cli.db])
    assert "disk is full" in message
    small = cli("enqueue", "-", input=spec_lines([{"id": "small", "command": "true"}]))
    if small.returncode == 0:  # it may still fit in space SQLite had already
        assert small.stdout == "small\n"
        acknowledged.append("small")
    else:
        assert "disk is full" in assert_error(small, 1, mentions=[cli.db])
    assert_waiting_not_spinning(pool, pids)
    pool.wait_output("the disk is full")

    filler.unlink()
    wait_for(lambda: completed(cli.db) == len(acknowledged), timeout=DEADLINE)
    jobs, _runs = jobs_and_runs(cli.db)
    assert sorted(jobs) == sorted(acknowledged), "acknowledged jobs kept, refused ones absent"
    assert_clean_end(pool, pids)
    assert integrity(cli.db) == [("ok",)]


def _limit_file_size(limit: int):
    def preexec() -> None:
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of
        # killing the process.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_file_size_limit_reached_mid_write(sqlite_cli):
    cli = sqlite_cli
    acknowledged = enqueue_many(cli, [{"id": f"kept{n}", "command": "true"} for n in range(3)])
    result = subprocess.run(
        [sys.executable, "-m", "queuectl", "enqueue", "-"],
        input=spec_lines([big_spec("too-big", 120_000)]),
        capture_output=True,
        text=True,
        cwd=cli.cwd,
        env=cli.env,
        timeout=60,
        preexec_fn=_limit_file_size(64 * 1024),
    )
    message = assert_error(result, 1, mentions=[cli.db])
    assert "disk I/O error" in message and "file-size limit" in message, message
    # The store is intact and usable: nothing acknowledged is lost, nothing refused is there.
    assert integrity(cli.db) == [("ok",)]
    assert [job["id"] for job in cli.json("list", "--limit", "0")] == acknowledged
    assert enqueue_many(cli, [big_spec("fits-now", 120_000)]) == ["fits-now"]
    assert integrity(cli.db) == [("ok",)]


# ---------------------------------------------------------------------------------------------
# the store file deleted or replaced


def gated_job(cli: CLI, job_id: str) -> tuple[Path, Path]:
    """A job that runs until its gate file appears; returns (gate, file with its shell pid)."""
    gate, pid_file = cli.cwd / f"{job_id}.gate", cli.cwd / f"{job_id}.pid"
    command = f"echo $$ > {pid_file}; while [ ! -e {gate} ]; do sleep 0.05; done"
    enqueue_many(cli, [{"id": job_id, "command": command}])
    return gate, pid_file


def pid_in(path: Path) -> int:
    return int(wait_for(lambda: path.exists() and path.read_text().strip()))


def workers_say(pool, pids: list[int], text: str) -> bool:
    lines = [line for line in pool.output().splitlines() if text in line]
    return all(any(f"-{pid}-" in line for line in lines) for pid in pids)


def test_store_deleted_with_its_wal_while_workers_run(tmp_path, faults):
    """`rm queue.db*` while a job runs: the next CLI call makes a new, empty store; the workers
    notice within a heartbeat, let go of the deleted one (killing the job that belonged to it)
    and work for the new one."""
    cli = fresh_cli(tmp_path / "store", FAST)
    gate, pid_file = gated_job(cli, "orphaned")
    pool, pids = start_pool(faults, cli)
    shell = pid_in(pid_file)
    for suffix in ("", "-wal", "-shm"):
        os.unlink(cli.db + suffix)
    assert enqueue_many(cli, [{"id": "fresh", "command": "echo fresh"}]) == ["fresh"]
    wait_for(lambda: completed(cli.db) == 1, timeout=DEADLINE)
    wait_for(lambda: not _alive(shell), timeout=DEADLINE)  # its store is gone: it was stopped
    wait_for(lambda: workers_say(pool, pids, "was deleted or replaced while in use"))
    jobs, _runs = jobs_and_runs(cli.db)
    assert sorted(jobs) == ["fresh"]
    assert "fresh" in cli.ok("logs", "fresh")
    assert_waiting_not_spinning(pool, pids)
    assert_clean_end(pool, pids)
    assert integrity(cli.db) == [("ok",)]
    gate.touch()


def test_a_job_of_a_deleted_store_is_stopped_even_before_there_is_a_new_store(tmp_path, faults):
    """`rm queue.db*` while a job runs, and nothing makes a new store: the job belonged to the
    deleted store, so its command is stopped within a heartbeat or two, not left to run
    unowned; the workers then wait, without spinning, for a store."""
    cli = fresh_cli(tmp_path / "store", FAST)
    gate, pid_file = gated_job(cli, "unowned")
    pool, pids = start_pool(faults, cli)
    shell = pid_in(pid_file)
    try:
        for suffix in ("", "-wal", "-shm"):
            os.unlink(cli.db + suffix)
        wait_for(lambda: not _alive(shell), timeout=DEADLINE)
        wait_for(lambda: workers_say(pool, pids, "was deleted while in use; waiting"))
        assert not os.path.exists(cli.db), "workers never create a store"
        assert_waiting_not_spinning(pool, pids)
    finally:
        gate.touch()
    assert enqueue_many(cli, [{"id": "fresh", "command": "echo fresh"}]) == ["fresh"]
    wait_for(lambda: completed(cli.db) == 1, timeout=DEADLINE)
    assert_clean_end(pool, pids)


def test_store_file_deleted_while_its_wal_is_still_in_use(tmp_path, faults):
    """`rm queue.db` alone: its -wal and -shm stay behind, still open. A new store beside them
    would read the deleted store's pages from them, so the CLI refuses (clearly) until no
    process uses them; then it removes them and starts afresh. Workers let go of the deleted
    store by themselves and wait, without spinning, for the new one."""
    cli = fresh_cli(tmp_path / "store", FAST)
    enqueue_many(cli, [{"id": "old", "command": "true"}])
    pool, pids = start_pool(faults, cli)
    wait_for(lambda: completed(cli.db) == 1)
    # Another process that still has the deleted store open (an older worker, a long query).
    holder = sqlite3.connect(cli.db)
    holder.execute("SELECT count(*) FROM jobs").fetchall()
    try:
        os.unlink(cli.db)
        refused = cli("enqueue", "-", input=spec_lines([{"id": "refused", "command": "true"}]))
        message = assert_error(refused, 1, mentions=[cli.db])
        assert "was deleted while processes still use it" in message
        assert not os.path.exists(cli.db), "nothing created beside the orphaned -wal"
        wait_for(lambda: workers_say(pool, pids, "was deleted while in use; waiting"))
        assert_waiting_not_spinning(pool, pids)
    finally:
        holder.close()
    assert enqueue_many(cli, [{"id": "fresh", "command": "true"}]) == ["fresh"]
    wait_for(lambda: completed(cli.db) == 1, timeout=DEADLINE)
    jobs, _runs = jobs_and_runs(cli.db)
    assert sorted(jobs) == ["fresh"]
    assert_clean_end(pool, pids)
    assert integrity(cli.db) == [("ok",)]


def test_store_replaced_while_workers_run(tmp_path, faults):
    """A backup restored over the store (the file replaced, its old -wal/-shm removed) while
    workers run: they switch to the restored store and run its jobs."""
    cli = fresh_cli(tmp_path / "store", FAST)
    enqueue_many(cli, [{"id": "old", "command": "true"}])
    pool, pids = start_pool(faults, cli)
    wait_for(lambda: completed(cli.db) == 1)
    backup = fresh_cli(tmp_path / "backup", FAST)
    restored = enqueue_many(backup, [{"id": f"restored{n}", "command": "true"} for n in range(3)])
    assert not os.path.exists(backup.db + "-wal"), "a closed store is one file"
    os.replace(backup.db, cli.db)
    for suffix in ("-wal", "-shm"):
        os.unlink(cli.db + suffix)
    wait_for(lambda: completed(cli.db) == 3, timeout=DEADLINE)
    jobs, _runs = jobs_and_runs(cli.db)
    assert sorted(jobs) == restored
    wait_for(lambda: workers_say(pool, pids, "was deleted or replaced while in use"))
    assert_clean_end(pool, pids)
    assert integrity(cli.db) == [("ok",)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
