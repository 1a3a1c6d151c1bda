"""Which store the CLI uses (SPEC §1) and how it behaves when the store cannot be used or must
stay private (SPEC §5). SQLite only: these are about files, folders and environment."""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from clikit import (
    assert_error,
    assert_ok,
    each_case,
    enqueue,
    files_under,
    job_ids,
    modes_bind_preexec,
    run_queuectl,
)
from conftest import CLI, wait_for

SPEC = '{"id": "j1", "command": "true"}'


def status_store(cli: CLI, *args: str, **kwargs) -> str:
    return cli.json(*args, "status", **kwargs)["store"]


def without_db_variable(cli: CLI) -> CLI:
    """Let the CLI fall back to .env or the default store for the rest of the test."""
    cli.env.pop("QUEUECTL_DB")
    return cli


# ---------------------------------------------------------------------------------------------
# store selection


def test_db_option_beats_the_environment_variable(sqlite_cli, tmp_path):
    other = tmp_path / "other.db"
    assert sqlite_cli.ok("--db", str(other), "enqueue", SPEC) == "j1\n"
    assert status_store(sqlite_cli, "--db", str(other)) == str(other)
    assert job_ids(sqlite_cli) == []  # nothing went to $QUEUECTL_DB
    assert status_store(sqlite_cli) == sqlite_cli.db
    assert [job["id"] for job in sqlite_cli.json("--db", str(other), "list")] == ["j1"]


def test_dotenv_file_supplies_the_store_but_never_overrides(sqlite_cli, tmp_path):
    (tmp_path / ".env").write_text("QUEUECTL_DB=from-dotenv.db\nQUEUECTL_MAX_RETRIES=6\n")
    # QUEUECTL_DB is already set: it wins; the unset variable still comes from .env.
    assert status_store(sqlite_cli) == sqlite_cli.db
    assert sqlite_cli.ok("config", "get", "max-retries") == "6\n"
    assert sqlite_cli.ok("config", "get", "max-retries", env={"QUEUECTL_MAX_RETRIES": "2"}) == (
        "2\n"
    )
    without_db_variable(sqlite_cli)
    enqueue(sqlite_cli, id="dotenv", command="true")
    assert status_store(sqlite_cli) == str(tmp_path / "from-dotenv.db")
    assert (tmp_path / "from-dotenv.db").is_file()
    assert job_ids(sqlite_cli) == ["dotenv"]
    other = tmp_path / "option.db"
    assert status_store(sqlite_cli, "--db", str(other)) == str(other)  # --db beats .env


def test_sqlite_url_forms(sqlite_cli, tmp_path):
    (tmp_path / "sub").mkdir()
    relative = "sqlite:///sub/rel.db"
    assert sqlite_cli.ok("--db", relative, "enqueue", SPEC) == "j1\n"
    assert (tmp_path / "sub" / "rel.db").is_file()
    assert status_store(sqlite_cli, "--db", relative) == str(tmp_path / "sub" / "rel.db")

    absolute = f"sqlite:///{tmp_path / 'abs.db'}"
    assert absolute.startswith("sqlite:////")
    enqueue(sqlite_cli, id="abs", command="true")  # into $QUEUECTL_DB, not abs.db
    assert sqlite_cli.ok("--db", absolute, "enqueue", '{"id": "a2", "command": "true"}') == "a2\n"
    assert (tmp_path / "abs.db").is_file()
    assert status_store(sqlite_cli, "--db", absolute) == str(tmp_path / "abs.db")
    assert [job["id"] for job in sqlite_cli.json("--db", absolute, "list")] == ["a2"]
    # The environment variable takes URLs too.
    env = {"QUEUECTL_DB": relative}
    assert [job["id"] for job in sqlite_cli.json("list", env=env)] == ["j1"]


def test_bad_sqlite_url_is_a_clear_error(sqlite_cli, tmp_path):
    assert_error(sqlite_cli("--db", "sqlite://x.db", "status"), 1, mentions=["sqlite://x.db"])
    assert not (tmp_path / "x.db").exists()


def test_targets_that_name_no_usable_store_are_refused(sqlite_cli, tmp_path):
    """Not taken for file names: a script's empty --db, other databases' URLs, URL parameters
    and in-memory databases, which no worker could share."""
    cases = {
        "empty --db": ("", ["--db"]),
        "blank --db": ("  ", ["--db"]),
        "another database's URL": ("mysql://host/db", ["mysql://host/db"]),
        "a driver-qualified URL": ("sqlite+pysqlite:///x.db", ["sqlite+pysqlite"]),
        "URL parameters": ("sqlite:///x.db?mode=ro", ["parameters"]),
        "in memory": ("sqlite:///:memory:", ["memory"]),
        "in memory, bare": (":memory:", ["memory"]),
    }
    each_case(
        cases, lambda target, words: assert_error(sqlite_cli("--db", target, "status"), 1, words)
    )
    assert files_under(tmp_path) == set()


def test_an_sqlite_file_of_another_program_is_left_unchanged(sqlite_cli, tmp_path):
    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE jobs (name TEXT)")
        conn.commit()
    before = other.read_bytes()
    for args in (["status"], ["enqueue", SPEC]):
        assert_error(sqlite_cli("--db", str(other), *args), 1, mentions=["another program"])
    assert other.read_bytes() == before
    with contextlib.closing(sqlite3.connect(other)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("jobs",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_dotenv_file_that_cannot_be_read_is_a_clear_error(sqlite_cli, tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"\xff\xfeQUEUECTL_MAX_RETRIES=6\n")
    assert_error(sqlite_cli("status"), 1, mentions=[".env", "UTF-8"])
    if os.geteuid() != 0:  # root reads the file whatever its mode
        dotenv.write_text("QUEUECTL_MAX_RETRIES=6\n")
        dotenv.chmod(0)
        assert_error(sqlite_cli("status"), 1, mentions=[".env"])


def test_help_creates_no_database(sqlite_cli, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    sqlite_cli.env["HOME"] = str(home)
    for args in (["--help"], ["enqueue", "--help"], ["status", "--help"], ["--version"]):
        assert_ok(sqlite_cli(*args))
    assert not Path(sqlite_cli.db).exists()
    without_db_variable(sqlite_cli)
    sqlite_cli.env.pop("XDG_CONFIG_HOME", None)
    for args in (["--help"], ["enqueue", "--help"]):
        assert "Usage" in assert_ok(sqlite_cli(*args))
    assert files_under(tmp_path) == set()
    assert list(home.iterdir()) == []


def test_default_store_is_in_the_user_app_folder(sqlite_cli, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    without_db_variable(sqlite_cli)
    sqlite_cli.env["HOME"] = str(home)
    sqlite_cli.env.pop("XDG_CONFIG_HOME", None)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    expected = Path(click.get_app_dir("queuectl")) / "queuectl.db"
    assert expected.is_relative_to(home)

    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    sqlite_cli.cwd = first
    enqueue(sqlite_cli, id="from-one", command="true")
    assert expected.is_file()
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600
    assert status_store(sqlite_cli) == str(expected)
    # Another folder, same queue (SPEC §1).
    sqlite_cli.cwd = second
    assert status_store(sqlite_cli) == str(expected)
    assert job_ids(sqlite_cli) == ["from-one"]
    assert f"store: {expected}" in sqlite_cli.ok("status")
    assert list(first.iterdir()) == [] and list(second.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# unusable stores: exit 1, one clear line, no traceback, nothing lost


def test_store_in_a_missing_folder(sqlite_cli, tmp_path):
    target = tmp_path / "missing" / "queue.db"
    for args in (["enqueue", SPEC], ["status"], ["list"]):
        assert_error(sqlite_cli("--db", str(target), *args), 1, mentions=[str(target.parent)])
    assert not target.parent.exists()


def test_corrupt_store_file(sqlite_cli):
    garbage = b"not a queue\n" + random.Random(7).randbytes(16384)
    Path(sqlite_cli.db).write_bytes(garbage)
    for args in (["enqueue", SPEC], ["status"], ["list"], ["config", "set", "max-retries", "1"]):
        assert_error(sqlite_cli(*args), 1, mentions=[sqlite_cli.db])
    assert Path(sqlite_cli.db).read_bytes() == garbage  # never "repaired" by overwriting


def test_read_only_store_file(sqlite_cli):
    enqueue(sqlite_cli, id="kept", command="true")
    os.chmod(sqlite_cli.db, 0o400)
    try:
        # Root writes through chmod 0400: the hook takes that power away from the child.
        preexec = modes_bind_preexec()
        result = run_queuectl(["enqueue", SPEC], sqlite_cli.env, sqlite_cli.cwd, preexec=preexec)
        message = assert_error(result, 1, mentions=[sqlite_cli.db])
        assert "read-only" in message or "readonly" in message or "permission" in message
    finally:
        os.chmod(sqlite_cli.db, 0o600)
    assert job_ids(sqlite_cli) == ["kept"]


def test_locked_store_gives_up_and_writes_nothing(sqlite_cli):
    enqueue(sqlite_cli, id="before", command="true")
    holder = sqlite3.connect(sqlite_cli.db, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        env = {"QUEUECTL_BUSY_TIMEOUT": "0.5"}
        for args, stdin in (
            (["enqueue", SPEC], None),
            (["enqueue", "-"], SPEC + "\n"),
            (["cancel", "before"], None),
        ):
            started = time.monotonic()
            result = sqlite_cli(*args, env=env, input=stdin)
            assert_error(result, 1, mentions=["lock"])
            # Gave up after about QUEUECTL_BUSY_TIMEOUT (plus start-up on a loaded machine).
            elapsed = time.monotonic() - started
            assert elapsed < 5, f"{args}: gave up after {elapsed:.1f}s, not about 0.5s"
    finally:
        holder.rollback()
        holder.close()
    assert job_ids(sqlite_cli) == ["before"]
    assert sqlite_cli.json("show", "before")["state"] == "pending"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc")
def test_locked_store_is_waited_for(sqlite_cli):
    """A CLI call waits for a lock that is released within its busy timeout (SPEC §5)."""
    sqlite_cli.ok("status")  # create the store
    holder = sqlite3.connect(sqlite_cli.db, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl", "enqueue", SPEC],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=sqlite_cli.cwd,
        env={**sqlite_cli.env, "QUEUECTL_BUSY_TIMEOUT": "20"},
    )
    try:

        def has_store_open() -> bool:
            try:
                fds = os.listdir(f"/proc/{proc.pid}/fd")
            except FileNotFoundError:
                return True  # already exited: communicate() below tells how
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == sqlite_cli.db:
                        return True
                except OSError:
                    pass
            return False

        wait_for(has_store_open)
        time.sleep(0.5)  # keep the lock a while: the point is that the CLI waits
        assert proc.poll() is None, proc.communicate()
    finally:
        holder.rollback()
        holder.close()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == "j1\n"
    assert job_ids(sqlite_cli) == ["j1"]


# ---------------------------------------------------------------------------------------------
# privacy: owner-only files, whatever the umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_and_logs_are_owner_only(sqlite_cli, tmp_path):
    db = Path(sqlite_cli.db)
    gate = tmp_path / "gate"
    spec = f'{{"id": "secret", "command": "echo hush; while [ ! -e {shlex.quote(str(gate))} ]; '
    spec += 'do sleep 0.05; done"}'
    # umask 000: every mode below is the one queuectl asks for, not one the umask narrowed.
    assert_ok(run_queuectl(["enqueue", spec], sqlite_cli.env, tmp_path, umask=0))
    assert mode(db) == 0o600
    pool = subprocess.Popen(
        ["/bin/sh", "-c", 'umask 000 && exec "$@"', "sh"]
        + [sys.executable, "-m", "queuectl", "worker", "start", "--burst"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=sqlite_cli.env,
    )
    try:
        logs = tmp_path / "logs"
        wait_for(lambda: sqlite_cli.json("show", "secret")["state"] == "processing")
        wait_for(lambda: any(logs.glob("*.log")))
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        assert mode(logs) == 0o700
        for log in logs.iterdir():
            assert mode(log) == 0o600, log
    finally:
        gate.touch()
        pool.wait(timeout=30)
    assert pool.returncode == 0
    assert "hush" in sqlite_cli.ok("logs", "secret")
    for path in (tmp_path / "logs").iterdir():
        assert mode(path) == 0o600, path
    assert mode(db) == 0o600
