"""Log files of runs never mix up stores (SPEC §5: `logs` shows the job's captured output).

Run ids start at 1 in every store, and stores share a logs folder: SQLite stores side by side
in one folder, or a store deleted and made again. Log names carry a checksum of the worker
that ran the run, and a stale file found under a run's name is replaced, never kept in place of
the new output. PostgreSQL's per-host logs folder, and the folders above it, are owner-only.
"""

from __future__ import annotations

import json
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from clikit import enqueue, enqueue_many, run_burst
from conftest import CLI
from hypothesis import assume, given
from hypothesis import strategies as st

from queuectl.models import log_file_name
from queuectl.queue import Queue
from queuectl.runlogs import LogFolder
from queuectl.runner import RunningCommand
from queuectl.store import open_store
from queuectl.worker import Worker

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell and modes")
IS_LINUX = sys.platform.startswith("linux")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def run_job(cli: CLI, job_id: str, command: str) -> None:
    enqueue(cli, id=job_id, command=command)
    run_burst(cli, "--quiet")
    assert cli.json("show", job_id)["state"] == "completed"


def log_path(cli: CLI, job_id: str, attempt: int = 1) -> Path:
    return Path(cli.json("show", job_id)["runs"][attempt - 1]["log_path"])


# ---------------------------------------------------------------------------------------------
# names


@given(st.text(), st.integers(min_value=1, max_value=2**63 - 1), st.text(), st.text())
def test_runs_of_two_workers_never_share_a_name(job_id, run_id, worker_a, worker_b):
    assume(worker_a != worker_b)
    assert log_file_name(job_id, run_id, worker_a) != log_file_name(job_id, run_id, worker_b)


def test_workers_that_differ_only_in_their_random_suffix_get_names_of_their_own():
    # Containers restart workers with the same host name and pid: only the suffix differs.
    rng = random.Random(5)
    workers = {f"box-1-{rng.randbytes(3).hex()}" for _ in range(3000)}
    names = {log_file_name("build", 1, worker) for worker in workers}
    assert len(names) == len(workers)


@pytest.mark.parametrize("worker_id", ["../../etc", "a/b\\c:d", "x\x00y", "é" * 300])
def test_the_worker_id_never_reaches_the_name_as_text(worker_id):
    name = log_file_name("../build", 3, worker_id)
    assert name.startswith("___build.3.") and name.endswith(".log")
    checksum = name.split(".")[2]
    assert len(checksum) == 8 and set(checksum) <= set("0123456789abcdef")
    assert name.count(".") == 3 and "/" not in name and "\\" not in name


# ---------------------------------------------------------------------------------------------
# the runner replaces a stale file instead of dropping the new output


def run(command: str, path: Path, publish_early: bool = False, logs: LogFolder | None = None):
    running = RunningCommand(command, {}, path, logs)
    if publish_early:
        running.publish_log()
    assert running.wait_for_exit(30)
    return running.result()


def assert_only_the_log_is_left(folder: Path, name: str) -> None:
    assert [path.name for path in folder.iterdir()] == [name]  # no temporary name left behind


@pytest.mark.parametrize("publish_early", [False, True], ids=["at-exit", "while-running"])
def test_a_stale_file_under_the_runs_name_is_replaced(tmp_path, publish_early):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    log = logs / "build.1.0badf00d.log"
    log.write_text("OLD RUN\n" * 1000)
    log.chmod(0o644)  # as an older queuectl or another tool may have left it
    result = run("echo NEW RUN", log, publish_early)
    assert result.output_tail == "NEW RUN\n"
    assert log.read_text() == "NEW RUN\n"
    if IS_LINUX:  # a new file; elsewhere the stale one is opened and truncated, as before
        assert mode(log) == 0o600
    assert_only_the_log_is_left(logs, log.name)


@pytest.mark.skipif(not IS_LINUX, reason="named at publication through O_TMPFILE (Linux)")
def test_a_symlink_under_the_runs_name_is_replaced_not_followed(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("keep me\n")
    log = logs / "build.1.0badf00d.log"
    log.symlink_to(target)
    assert run("echo NEW RUN", log).output_tail == "NEW RUN\n"
    assert not log.is_symlink() and log.read_text() == "NEW RUN\n"
    assert target.read_text() == "keep me\n"


@pytest.mark.skipif(not IS_LINUX, reason="reuses an anonymous O_TMPFILE file (Linux)")
def test_a_reused_anonymous_file_also_replaces_a_stale_file(tmp_path):
    logs = tmp_path / "logs"
    folder = LogFolder(str(logs))  # as a worker keeps it from run to run
    assert run("true", logs / "silent.1.0badf00d.log", logs=folder).output_tail == ""  # a spare
    log = logs / "build.2.0badf00d.log"
    log.write_text("OLD RUN\n")
    assert run("echo NEW RUN", log, logs=folder).output_tail == "NEW RUN\n"
    folder.close()
    assert log.read_text() == "NEW RUN\n"
    assert_only_the_log_is_left(logs, log.name)


def test_every_folder_made_for_logs_is_owner_only_and_existing_ones_are_kept(tmp_path):
    base = tmp_path / "config"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    folder = base / "queuectl" / "logs" / "pg-0123456789abcdef"
    assert run("echo hi", folder / "job.1.0badf00d.log").output_tail == "hi\n"
    assert [mode(path) for path in (folder.parent.parent, folder.parent, folder)] == [0o700] * 3
    assert mode(base) == 0o755


# ---------------------------------------------------------------------------------------------
# the CLI, as the acceptance check found it


def test_two_stores_in_one_folder_keep_their_own_logs(tmp_path):
    s2 = CLI(str(tmp_path / "s2.db"), tmp_path)
    s3 = CLI(str(tmp_path / "s3.db"), tmp_path)
    run_job(s2, "build", "echo S2 RUN")
    run_job(s3, "build", "echo S3 RUN")
    assert s3.ok("logs", "build") == "S3 RUN\n"
    assert s2.ok("logs", "build") == "S2 RUN\n"
    assert log_path(s2, "build") != log_path(s3, "build")
    assert log_path(s2, "build").parent == log_path(s3, "build").parent == tmp_path / "logs"


def test_no_log_file_name_starts_with_a_dash(tmp_path):
    # A job `-rf` gave `logs/-rf.1.….log`, which `rm *` in the logs folder takes for options.
    cli = CLI(str(tmp_path / "a.db"), tmp_path)
    ids = ["-rf", "--", "-", "-i"]
    specs = [{"id": job_id, "command": "echo out$QUEUECTL_JOB_ID"} for job_id in ids]
    assert enqueue_many(cli, specs) == ids
    run_burst(cli, "--quiet")
    logs = tmp_path / "logs"
    names = sorted(path.name for path in logs.iterdir())
    assert len(names) == len(ids) and not [name for name in names if name.startswith("-")], names
    for job_id in ids:
        (run,) = json.loads(cli.ok("show", "--json", "--", job_id))["runs"]
        assert Path(run["log_path"]).name.startswith("_" + job_id + "."), run
        assert cli.ok("logs", "--", job_id) == f"out{job_id}\n"
    # A run logged before, under the name without the `_`, is still shown whole.
    (new,) = logs.glob("_-rf.*")
    older = new.rename(logs / new.name.removeprefix("_"))
    result = cli("logs", "--", "-rf")
    assert result.stdout == "out-rf\n" and "kept in the store" not in result.stderr, result
    # What the name is for: a plain `rm *` there removes the files and nothing else.
    older.unlink()
    subprocess.run(["sh", "-c", "rm *"], cwd=logs, check=True, capture_output=True)
    assert list(logs.iterdir()) == []


def test_a_store_deleted_and_made_again_shows_its_new_output(tmp_path):
    cli = CLI(str(tmp_path / "a.db"), tmp_path)
    run_job(cli, "build", "echo OLD RUN")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cli.db}{suffix}").unlink(missing_ok=True)
    run_job(cli, "build", "echo NEW RUN")
    assert cli.ok("logs", "build") == "NEW RUN\n"
    assert cli.json("show", "build")["runs"][0]["output_tail"] == "NEW RUN\n"


def test_a_worker_serving_a_store_deleted_and_made_again_replaces_its_own_old_file(tmp_path):
    # One worker id before and after (a Python caller may choose it): even the worker part of
    # the name repeats, and only replacing the stale file keeps the new output.
    db = str(tmp_path / "a.db")
    for command in ("echo OLD RUN", "echo NEW RUN"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = open_store(db)
        try:
            Queue(store).enqueue({"id": "build", "command": command})
            assert Worker(store, burst=True, worker_id="fixed-id", quiet=True).run() == 0
            (run_record,) = store.runs("build")
        finally:
            store.close()
    assert Path(run_record.log_path).read_text() == "NEW RUN\n"
    assert [path.name for path in (tmp_path / "logs").iterdir()] == [Path(run_record.log_path).name]


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the per-host logs folder


@pytest.mark.parametrize("db_target", ["postgres"], indirect=True)
def test_the_postgres_logs_folder_and_its_parents_are_owner_only(cli, tmp_path):
    config = tmp_path / "xdg-config"  # XDG_CONFIG_HOME: exists already, so its mode is kept
    config.mkdir(mode=0o755)
    config.chmod(0o755)
    run_job(cli, "build", "echo PG RUN")
    folder = log_path(cli, "build").parent
    assert folder.parent.parent == config / "queuectl" and folder.name.startswith("pg-")
    assert [mode(path) for path in (folder.parent.parent, folder.parent, folder)] == [0o700] * 3
    assert mode(config) == 0o755
    assert cli.ok("logs", "build") == "PG RUN\n"
