"""`queuectl prune` and the `retention` key (SPEC §8): real CLI processes and real workers
against each backend. Jobs are made old by asking for `--older-than 0` (every finished job),
or a retention of a millisecond, rather than by waiting.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clikit import all_jobs, assert_error, assert_ok, enqueue, enqueue_many, job_ids, make_dead
from clikit import run_burst as burst
from conftest import CLI

from queuectl import Queue
from queuectl.config import ConfigError
from queuectl.errors import QueueError


def run_burst(cli: CLI, env: dict | None = None) -> subprocess.CompletedProcess:
    return burst(cli, env=env)


def finished_jobs(cli: CLI) -> None:
    """Two completed jobs that printed (log files), one canceled, one dead, one pending for an
    hour yet and one waiting on it: every state but processing and failed."""
    make_dead(cli, "dead")
    enqueue(cli, id="done-1", command="echo one")
    enqueue(cli, id="done-2", command="echo two")
    run_burst(cli)
    enqueue(cli, id="canceled", command="true")
    assert_ok(cli("cancel", "canceled"))
    enqueue(cli, id="later", command="true", delay=3600)
    enqueue(cli, id="waiting", command="true", after=["later"])
    states = {job["id"]: job["state"] for job in all_jobs(cli)}
    assert states == {
        "dead": "dead",
        "done-1": "completed",
        "done-2": "completed",
        "canceled": "canceled",
        "later": "pending",
        "waiting": "waiting",
    }


def log_paths(cli: CLI, *job_ids: str) -> list[Path]:
    paths = [Path(run["log_path"]) for job_id in job_ids for run in show_runs(cli, job_id)]
    assert paths and all(path.exists() for path in paths), paths
    return paths


def show_runs(cli: CLI, job_id: str) -> list[dict]:
    return cli.json("show", job_id)["runs"]


def test_prune_prints_what_it_did_exactly(cli):
    finished_jobs(cli)
    # Everything just finished: the default (7d) takes nothing.
    assert assert_ok(cli("prune")) == "pruned 0 jobs\n"
    result = cli("prune", "--older-than", "0", "--dry-run")
    assert (assert_ok(result), result.stderr) == ("would prune 3 jobs\n", "")
    assert json.loads(assert_ok(cli("prune", "--older-than", "0", "--dry-run", "--json"))) == {
        "would_prune": 3
    }
    assert len(all_jobs(cli)) == 6  # a dry run deletes nothing
    result = cli("prune", "--older-than", "0", "--json")
    assert json.loads(assert_ok(result)) == {"pruned": 3}
    assert result.stderr == ""
    assert job_ids(cli) == ["dead", "later", "waiting"]
    assert assert_ok(cli("prune", "--older-than", "0", "--state", "dead")) == "pruned 1 jobs\n"
    assert job_ids(cli) == ["later", "waiting"]


def test_prune_takes_only_the_states_asked_for_and_never_an_unfinished_job(cli):
    finished_jobs(cli)
    assert assert_ok(cli("prune", "--older-than", "0", "--state", "canceled")) == (
        "pruned 1 jobs\n"
    )
    assert "canceled" not in job_ids(cli)
    args = ["--state", "completed", "--state", "dead", "--state", "canceled"]
    assert assert_ok(cli("prune", "--older-than", "0s", *args)) == "pruned 3 jobs\n"
    assert job_ids(cli) == ["later", "waiting"]
    status = cli.json("status")["jobs"]
    assert (status["pending"], status["waiting"], status["completed"]) == (1, 1, 0)


def test_prune_goes_by_the_age_asked_for(cli):
    enqueue(cli, id="a", command="true")
    run_burst(cli)
    for age in ("1h", "90s", "15m", "1.5h", "3600"):
        assert assert_ok(cli("prune", "--older-than", age)) == "pruned 0 jobs\n", age
    assert job_ids(cli) == ["a"]
    assert assert_ok(cli("prune", "--older-than", "0d")) == "pruned 1 jobs\n"


def test_prune_deletes_the_run_history_and_log_files(cli):
    finished_jobs(cli)
    paths = log_paths(cli, "done-1", "done-2", "dead")
    assert assert_ok(cli("prune", "--older-than", "0")) == "pruned 3 jobs\n"
    assert [path.exists() for path in paths] == [False, False, True]  # dead was not asked for
    assert_error(cli("show", "done-1"), 1, mentions=["done-1"])
    assert_error(cli("logs", "done-1"), 1, mentions=["done-1"])
    # A job id that was pruned is unknown to a new job's `after`, and free to use again.
    assert_error(cli("enqueue", "--command", "true", "--after", "done-1"), 1, ["no such job"])
    enqueue(cli, id="done-1", command="true")


BAD_DURATIONS = ["-1", "1w", "abc", "", "7 d", "1e3", "inf", "nan", "-0.5h", "7D"]


def test_a_bad_duration_or_state_is_a_usage_error_and_nothing_is_deleted(cli):
    finished_jobs(cli)
    before = all_jobs(cli)
    for value in BAD_DURATIONS:
        stderr = assert_error(cli("prune", "--older-than", value), 2, mentions=["--older-than"])
        assert "Traceback" not in stderr
        if value not in ("-1", "-0.5h"):
            assert "not a duration" in stderr, (value, stderr)
    for value in ("pending", "waiting", "processing", "failed", "all", "COMPLETED"):
        assert_error(cli("prune", "--older-than", "0", "--state", value), 2, mentions=["--state"])
    assert_error(cli("prune", "extra"), 2)
    assert all_jobs(cli) == before


def test_retention_is_a_duration_key(cli):
    assert assert_ok(cli("config", "get", "retention")) == "0\n"
    assert assert_ok(cli("config", "set", "retention", "007d")) == "retention = 7d\n"
    assert cli.json("config", "list")["retention"] == {"value": "7d", "source": "store"}
    for value in BAD_DURATIONS:
        assert_error(cli("config", "set", "retention", "--", value), 1, mentions=["retention"])
    assert assert_ok(cli("config", "get", "retention")) == "7d\n"


def test_workers_prune_by_retention_once_a_minute_for_the_whole_store(cli):
    finished_jobs(cli)
    paths = log_paths(cli, "done-1", "done-2")
    # With retention 0 (the default) a worker keeps everything.
    run_burst(cli)
    assert len(all_jobs(cli)) == 6
    assert_ok(cli("config", "set", "retention", "0.001s"))
    # A worker prunes completed and canceled jobs older than it in its maintenance, which it
    # first does as it starts; dead jobs stay in the dead-letter queue.
    result = run_burst(cli)
    assert "pruned 3 jobs" in result.stderr, result.stderr
    assert job_ids(cli) == ["dead", "later", "waiting"]
    assert not any(path.exists() for path in paths)
    # Within the minute, no worker of this store prunes again, whichever it is.
    enqueue(cli, id="fresh", command="true")
    run_burst(cli, env={"QUEUECTL_RETENTION": "0"})  # runs it without pruning
    result = run_burst(cli)
    assert "pruned" not in result.stderr, result.stderr
    assert "fresh" in job_ids(cli)


def test_the_python_api_prunes_too(cli):
    finished_jobs(cli)
    with Queue.open(cli.db) as queue:
        assert queue.prune("0", dry_run=True) == 3
        with pytest.raises(QueueError, match="finished jobs"):
            queue.prune(0, states=["pending"])
        with pytest.raises(QueueError, match="unknown state"):
            queue.prune(0, states=["done"])
        with pytest.raises(ConfigError, match="not a duration"):
            queue.prune("1w")
        with pytest.raises(ConfigError, match="at least 0"):
            queue.prune(-1.0)
        seen: list[str] = []
        assert queue.prune(0, states=["completed", "dead"], on_batch=seen.extend) == 3
        assert sorted(seen) == ["dead", "done-1", "done-2"]
        assert queue.prune() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal")
def test_a_big_prune_shows_its_progress_on_a_terminal(sqlite_cli):
    cli = sqlite_cli
    enqueue_many(cli, [{"command": "true"} for _ in range(1200)])
    run_burst(cli)
    result = cli("prune", "--older-than", "0", "--dry-run")
    assert assert_ok(result) == "would prune 1200 jobs\n"
    assert result.stderr == ""  # no terminal: no progress
    main, other = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "queuectl", "prune", "--older-than", "0"],
            stdout=subprocess.PIPE,
            stderr=other,
            cwd=cli.cwd,
            env=cli.env,
        )
        os.close(other)
        other = -1
        out, _ = proc.communicate(timeout=60)
        drawn = read_all(main)
    finally:
        os.close(main)
        if other >= 0:
            os.close(other)
    assert (proc.returncode, out) == (0, b"pruned 1200 jobs\n")
    assert b"pruning" in drawn and b"1200/1200" in drawn, drawn


def read_all(fd: int) -> bytes:
    """Whatever is left to read on a pseudo-terminal whose other side has closed."""
    seen = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_a_workers_retention_pass_is_bounded_and_once_a_minute(store, monkeypatch):
    # In-process, on a real store: a pass stops at its time budget after the batch under way
    # (here a budget of 0: one batch), and neither the same worker nor another one of the
    # store prunes again within the minute.
    from storekit import OK, claim, spec

    from queuectl import worker as worker_module
    from queuectl.store.pruning import PRUNE_BATCH

    store.add([spec(f"j{n}") for n in range(PRUNE_BATCH + 50)])
    while (held := claim(store)) is not None:
        assert store.finish(held, OK, None).held
    monkeypatch.setattr(worker_module, "PRUNE_PASS_SECONDS", 0.0)

    def worker(stopping: bool = False) -> worker_module.Worker:
        made = worker_module.Worker(store, quiet=True)
        made._load_settings()
        made.stopping = stopping
        return made

    worker()._prune_by_retention()  # retention 0: keep forever
    store.config_set("retention", "0.001")
    worker(stopping=True)._prune_by_retention()  # a stopping worker starts no pass
    assert store.counts()["completed"] == PRUNE_BATCH + 50
    first = worker()
    first._prune_by_retention()
    assert store.counts()["completed"] == 50  # one batch: the budget ran out
    first._prune_by_retention()  # asked less than a minute ago: the store is not even asked
    worker()._prune_by_retention()  # another worker: the store says it was done this minute
    assert store.counts()["completed"] == 50
