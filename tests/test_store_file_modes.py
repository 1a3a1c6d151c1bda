"""The modes of a store's files after they were changed by hand or by an older queuectl
(SPEC §5: the store, its -wal and -shm and the logs are their owner's only).

A store made read-only with chmod is read, and refused for writing with the cause named; made
writable again, it works again, although SQLite gave its -wal and -shm the read-only mode
meanwhile. Store files and a logs folder of this user that others can read are made owner-only
when the store is opened; files of other users are left as they are.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest
from clikit import (
    assert_error,
    assert_ok,
    enqueue,
    job_ids,
    modes_bind_preexec,
    run_burst,
    run_queuectl,
)
from conftest import CLI

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and owners")

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def store_files(cli: CLI) -> tuple[Path, Path, Path]:
    db = Path(cli.db)
    return db, Path(f"{db}-wal"), Path(f"{db}-shm")


def as_user(cli: CLI, preexec, *args: str):
    """The CLI with file modes binding, also when the tests run as root."""
    return run_queuectl(list(args), cli.env, cli.cwd, preexec=preexec)


@pytest.mark.parametrize("file_mode", [0o444, 0o400], ids=["0444", "0400"])
def test_a_read_only_store_file_is_read_and_writes_name_the_cause(sqlite_cli, file_mode):
    """On a writable file system SQLite opens a store file it cannot write read-only by itself
    (no immutable flag: its owner may write it meanwhile), and makes its -wal and -shm."""
    cli = sqlite_cli
    preexec = modes_bind_preexec()
    db, wal, shm = store_files(cli)
    enqueue(cli, id="kept", command="true")
    db.chmod(file_mode)
    assert "kept" in assert_ok(as_user(cli, preexec, "list"))
    assert "pending" in assert_ok(as_user(cli, preexec, "status"))
    for args in (["enqueue", "--command", "true"], ["config", "set", "max-retries", "2"]):
        refused = as_user(cli, preexec, *args)
        message = assert_error(refused, 1, mentions=[cli.db, "read-only", "store file"])
        assert f"mode {file_mode:04o}" in message, message
    # A store file made read-only on purpose stays so, and so do the -wal and -shm made for it.
    assert (mode(db), mode(wal), mode(shm)) == (file_mode, file_mode, file_mode)
    assert job_ids(cli) == ["kept"]


@pytest.mark.parametrize("mode_back", [0o600, 0o644], ids=["0600", "0644"])
def test_a_store_made_read_only_and_writable_again_works_again(sqlite_cli, mode_back):
    cli = sqlite_cli
    preexec = modes_bind_preexec()
    db, wal, shm = store_files(cli)
    enqueue(cli, id="kept", command="true")
    db.chmod(0o444)
    assert "kept" in assert_ok(as_user(cli, preexec, "list"))
    # That reader could not remove the -wal and -shm it made, and SQLite made them with the
    # store file's mode: what kept the store read-only after the chmod back.
    assert (mode(wal), mode(shm)) == (0o444, 0o444)
    db.chmod(mode_back)
    assert_ok(as_user(cli, preexec, "enqueue", "--id", "after", "--command", "true"))
    assert_ok(as_user(cli, preexec, "config", "set", "max-retries", "2"))
    assert job_ids(cli) == ["kept", "after"]
    assert mode(db) == 0o600
    for side in (wal, shm):
        assert not side.exists() or mode(side) == 0o600, side


def test_readable_store_files_and_logs_of_this_user_become_owner_only(sqlite_cli):
    cli = sqlite_cli
    db, wal, shm = store_files(cli)
    enqueue(cli, id="first", command="echo private")
    run_burst(cli)
    logs = Path(cli.cwd, "logs")
    # As an older queuectl (or a store made by hand) left them; a reader keeps -wal and -shm.
    reader = sqlite3.connect(cli.db)
    try:
        reader.execute("SELECT count(*) FROM jobs").fetchone()
        assert wal.exists() and shm.exists()
        for path in (db, wal, shm):
            path.chmod(0o644)
        logs.chmod(0o755)
        assert_ok(cli("status"))
        assert (mode(db), mode(wal), mode(shm), mode(logs)) == (0o600, 0o600, 0o600, 0o700)
        # Also when the command is one that writes; and the store works on.
        for path in (db, wal, shm):
            path.chmod(0o640)
        logs.chmod(0o750)
        enqueue(cli, id="second", command="true")
        assert (mode(db), mode(wal), mode(shm), mode(logs)) == (0o600, 0o600, 0o600, 0o700)
    finally:
        reader.close()
    assert job_ids(cli) == ["first", "second"]
    assert "private" in assert_ok(cli("logs", "first"))


def test_files_of_other_users_are_left_as_they_are(sqlite_cli):
    if os.geteuid() != 0:
        pytest.skip("giving files to another user needs root")
    cli = sqlite_cli
    db, _wal, shm = store_files(cli)
    enqueue(cli, id="first", command="true")
    run_burst(cli)
    logs = Path(cli.cwd, "logs")
    # Not the -wal: SQLite running as root gives it (and the -shm) the store file's owner when
    # it opens it; the -shm keeps its mode, though, so it shows whether queuectl touched it.
    reader = sqlite3.connect(cli.db)
    try:
        reader.execute("SELECT count(*) FROM jobs").fetchone()
        for path in (shm, logs):
            os.chown(path, NOBODY, NOBODY)
        shm.chmod(0o644)
        logs.chmod(0o755)
        db.chmod(0o644)  # ours: tightened, while its -shm is someone else's
        enqueue(cli, id="second", command="true")  # root: writes whatever the modes
        assert (mode(shm), mode(logs)) == (0o644, 0o755)
        assert logs.lstat().st_uid == NOBODY
        assert mode(db) == 0o600
        os.chown(db, NOBODY, NOBODY)
        db.chmod(0o644)
        enqueue(cli, id="third", command="true")
        assert mode(db) == 0o644 and db.stat().st_uid == NOBODY
    finally:
        reader.close()
    assert job_ids(cli) == ["first", "second", "third"]
