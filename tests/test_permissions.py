"""Privacy of what queuectl writes and hands on (issue #5, SPEC §5).

Every file and folder queuectl creates is its owner's only, whatever the umask: the store and its
-wal/-shm, the logs folder and each run's log file, and the folder of named pipes that wakes idle
workers. A job sees QUEUECTL_JOB_ID and QUEUECTL_ATTEMPT, and nothing queuectl uses internally
(such as the store target the supervisor hands its workers, which may hold a password).
test_cli_store.py covers the files the CLI creates; these tests start from `worker start`.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for
from faultkit import worker_pids
from workerkit import DEADLINE, FAST

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and named pipes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_everything_a_pool_creates_is_owner_only_even_with_umask_000(sqlite_cli, tmp_path):
    cli = sqlite_cli
    cli.env.update(FAST)
    db = Path(cli.db)
    gate = tmp_path / "gate"
    # A brand-new store, made by `worker start` itself under umask 000.
    pool = subprocess.Popen(
        ["/bin/sh", "-c", 'umask 000 && exec "$@"', "sh"]
        + [sys.executable, "-m", "queuectl", "worker", "start", "--count", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=cli.env,
    )
    try:
        wake = Path(f"{db}-wake")
        # Each idle worker listens on a named pipe of its own in the wake folder.
        wait_for(lambda: len(list(wake.glob("*.fifo"))) == 2, timeout=DEADLINE)
        command = f"echo secret-output; while [ ! -e {gate} ]; do sleep 0.05; done"
        cli.ok("enqueue", "--id", "secret", "--command", command)
        logs = tmp_path / "logs"
        wait_for(lambda: any(logs.glob("secret.*.log")), timeout=DEADLINE)
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        assert mode(logs) == 0o700
        assert mode(wake) == 0o700
        for pipe in wake.iterdir():
            assert stat.S_ISFIFO(pipe.lstat().st_mode), pipe
            assert mode(pipe) == 0o600, pipe
        for log in logs.iterdir():
            assert mode(log) == 0o600, log
        gate.touch()
        wait_for(lambda: cli.json("show", "secret")["state"] == "completed", timeout=DEADLINE)
        assert "secret-output" in cli.ok("logs", "secret")
        for log in logs.iterdir():
            assert mode(log) == 0o600, log
    finally:
        gate.touch()
        pool.terminate()
        try:
            pool.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pool.kill()
            pool.wait()
    assert pool.returncode == 0
    assert mode(db) == 0o600


def test_a_job_sees_its_id_and_attempt_but_no_queuectl_internals(sqlite_cli, tmp_path):
    cli = sqlite_cli
    target = cli.env.pop("QUEUECTL_DB")  # the store given on the command line only
    cli.env.update(FAST)
    dump = tmp_path / "env"
    # Fails on its first run, so the second run shows QUEUECTL_ATTEMPT counting.
    command = f'env -0 > {dump}.$QUEUECTL_ATTEMPT; [ "$QUEUECTL_ATTEMPT" -gt 1 ]'
    cli.ok("--db", target, "enqueue", "--id", "nosy", "--command", command, "--max-retries", "1")
    pool = subprocess.Popen(
        [sys.executable, "-m", "queuectl", "--db", target, "worker", "start"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=cli.env,
    )
    try:
        wait_for(lambda: Path(f"{dump}.2").exists(), timeout=DEADLINE)
        # Nor does the store target show in any worker's argv (`ps` shows argv to every user)
        # or environment (a job reads its worker's as /proc/$PPID/environ).
        pids = worker_pids(pool.pid)
        assert pids
        for pid in pids:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            assert target not in argv, argv
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            assert target not in environ, f"the target is in worker {pid}'s environment"
    finally:
        pool.terminate()
        pool.wait(timeout=DEADLINE)
    for attempt in (1, 2):
        text = wait_for(lambda a=attempt: Path(f"{dump}.{a}").read_text(), timeout=DEADLINE)
        variables = dict(item.split("=", 1) for item in text.split("\0") if "=" in item)
        assert variables["QUEUECTL_JOB_ID"] == "nosy"
        assert variables["QUEUECTL_ATTEMPT"] == str(attempt)
        # The job's only QUEUECTL_ variables are its own, plus the settings the user exported.
        ours = {name for name in variables if name.startswith("QUEUECTL_")}
        assert ours == {"QUEUECTL_JOB_ID", "QUEUECTL_ATTEMPT", *FAST}, ours
        leaks = [name for name, value in variables.items() if target in value]
        assert leaks == [], f"the store target leaked into the job's environment: {leaks}"
