"""A store on a read-only file system (SPEC §4 error behaviour, §5): a read-only mount, a
snapshot, a backup medium.

The commands that only look (`status`, `list`, `show`, `logs`, `config get/list`, `dlq list`)
read it; every other command fails at once with exit 1 and one line that names the cause, never
with "check that it exists and is readable", never with a traceback, and `worker start` starts
no workers that could only wait. Real faults: a small tmpfs, filled through the CLI, remounted
read-only. Linux and root only (mount); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import assert_error, assert_ok, enqueue, make_dead
from conftest import CLI

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mounts a tmpfs")

CAUSE = "read-only file system"
# Every command that changes the store, with its standard input.
WRITE_COMMANDS = [
    (["enqueue", '{"id": "new", "command": "true"}'], None),
    (["enqueue", "-"], '{"id": "new", "command": "true"}\n'),
    (["enqueue", "--command", "true"], None),
    (["config", "set", "max-retries", "1"], None),
    (["config", "unset", "max-retries"], None),
    (["dlq", "retry", "dead"], None),
    (["dlq", "retry", "--all"], None),
    (["cancel", "waiting"], None),
    (["worker", "stop", "--timeout", "1"], None),
    (["worker", "start", "--burst"], None),
    # Not burst: it would run until stopped, and the 30 s timeout below fails the test.
    (["worker", "start", "--count", "2"], None),
]


class Media:
    """A tmpfs of our own that can be made read-only and writable again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def remount(self, how: str) -> None:
        result = subprocess.run(
            ["mount", "-o", f"remount,{how}", str(self.folder)], capture_output=True, text=True
        )
        # EBUSY here would mean that some process still has a store file open for writing.
        assert result.returncode == 0, f"remount,{how}: {result.stderr.strip()}"


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Media]:
    """A tmpfs mounted for this test, unmounted at the end whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "media"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(folder)]
    result = subprocess.run(mount, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield Media(folder)
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def media_cli(media: Media, tmp_path: Path) -> CLI:
    # The CLI runs outside the mount: only the store and what queuectl keeps beside it are there.
    return CLI(str(media.folder / "queue.db"), tmp_path)


def assert_write_commands_refused(cli: CLI) -> None:
    for args, stdin in WRITE_COMMANDS:
        result = cli(*args, input=stdin, timeout=30)
        message = assert_error(result, 1, mentions=[cli.db, CAUSE])
        assert "check that it exists" not in message, message


def test_read_commands_work_and_the_others_name_the_cause(media, tmp_path):
    cli = media_cli(media, tmp_path)
    enqueue(cli, id="done", command="echo done-output")
    make_dead(cli, "dead")  # also runs "done", so it has a run and a log file
    enqueue(cli, id="waiting", command="true", delay=3600)
    assert_ok(cli("config", "set", "max-retries", "5"))
    db = Path(cli.db)
    # Every connection has closed, so SQLite removed the -wal and -shm: on read-only media it
    # can neither create them nor read a WAL store without them (the case reported).
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    # Modes queuectl would tighten on a writable open: on read-only media chmod fails, which
    # must not fail the command.
    os.chmod(db, 0o644)
    os.chmod(media.folder / "logs", 0o755)
    media.remount("ro")

    status = cli.json("status")
    assert status["store"] == cli.db
    assert status["jobs"] == {
        "waiting": 0,
        "pending": 1,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "dead": 1,
        "canceled": 0,
    }
    assert "store:" in assert_ok(cli("status"))
    assert [job["id"] for job in cli.json("list")] == ["done", "dead", "waiting"]
    assert "waiting" in assert_ok(cli("list", "--state", "pending"))
    shown = cli.json("show", "done")
    assert shown["state"] == "completed" and len(shown["runs"]) == 1
    assert "completed" in assert_ok(cli("show", "done"))
    assert assert_ok(cli("logs", "done")) == "done-output\n"
    assert assert_ok(cli("config", "get", "max-retries")) == "5\n"
    assert cli.json("config", "list")["max-retries"] == {"value": "5", "source": "store"}
    assert "max-retries" in assert_ok(cli("config", "list"))
    assert [job["id"] for job in cli.json("dlq", "list")] == ["dead"]
    assert "dead" in assert_ok(cli("dlq", "list"))
    # An unknown job is still the usual error, not a store error.
    assert_error(cli("show", "nope"), 1, mentions=["nope"])

    assert_write_commands_refused(cli)
    assert [job["id"] for job in cli.json("list")] == ["done", "dead", "waiting"]
    assert (db.stat().st_mode & 0o777, (media.folder / "logs").stat().st_mode & 0o777) == (
        0o644,
        0o755,
    )


LEAVE_IN_WAL = """
import os, sys
from queuectl.queue import Queue
queue = Queue.open(sys.argv[1])
queue.enqueue({"id": "only-in-wal", "command": "true"})
os._exit(0)  # a crash: no checkpoint, so the job is in the -wal file only
"""


def test_a_store_left_with_its_wal_is_read_whole(media, tmp_path):
    """A store whose last process crashed keeps jobs in its -wal file: on read-only media they
    are read through the -shm file left beside it, not skipped; without that -shm they cannot
    be read there, and the error says so rather than show a store without them."""
    cli = media_cli(media, tmp_path)
    enqueue(cli, id="checkpointed", command="true")
    crashed = subprocess.run(
        [sys.executable, "-c", LEAVE_IN_WAL, cli.db], env=cli.env, capture_output=True, text=True
    )
    assert crashed.returncode == 0, crashed.stderr
    wal, shm = Path(f"{cli.db}-wal"), Path(f"{cli.db}-shm")
    assert wal.stat().st_size > 0 and shm.exists()
    media.remount("ro")

    assert [job["id"] for job in cli.json("list")] == ["checkpointed", "only-in-wal"]
    assert cli.json("status")["jobs"]["pending"] == 2
    assert cli.json("show", "only-in-wal")["state"] == "pending"
    # SQLite would open this store for writing and fail only at the first write: the refusal
    # comes first, so `worker start` starts no workers that could only wait.
    assert_write_commands_refused(cli)

    media.remount("rw")
    shm.unlink()
    media.remount("ro")
    for args in (["list"], ["status"], ["show", "only-in-wal"]):
        message = assert_error(cli(*args), 1, mentions=[cli.db, CAUSE, "-wal", "-shm"])
        assert "check that it exists" not in message, message
    assert_write_commands_refused(cli)
