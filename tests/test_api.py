"""The Python API (SPEC §10): `from queuectl import Queue`, on both backends, with real worker
processes where a job has to run, and the one error hierarchy under QueueError."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clikit import make_dead, run_burst
from conftest import ROOT, base_env, wait_for
from workerkit import speed_up

import queuectl
from queuectl import (
    ConfigError,
    CronError,
    DuplicateJob,
    InvalidTransition,
    JobNotFound,
    JobState,
    Queue,
    QueueError,
    ScheduleExists,
    ScheduleNotFound,
    SpecError,
    StoreError,
)


def open_queue(target: str) -> Queue:
    # dotenv=False: the test process's folder is the repository, whose .env (if a developer
    # keeps one) has no say here.
    return Queue.open(target, dotenv=False)


def job_count(queue: Queue) -> int:
    return sum(queue.status().jobs.values())


def test_enqueue_then_a_worker_runs_it_and_wait_returns_it_completed(cli, pools):
    speed_up(cli)
    with open_queue(cli.db) as queue:
        job_id = queue.enqueue({"command": "echo from-the-api", "max_retries": 0})
        assert re.fullmatch(r"[0-9a-f]{16}", job_id)
        assert queue.get(job_id).state is JobState.PENDING
        pools.start(cli, "--count", "1")
        result = queue.wait(job_id, timeout=30)  # one id, not a list of its characters
        assert not result.timed_out and not result.failed and not result.unfinished
        job = queue.get(job_id, with_runs=True)
    assert job.state is JobState.COMPLETED
    assert (job.attempts, job.exit_code) == (1, 0)
    assert [run.outcome for run in job.runs] == ["exited"]
    assert job.to_dict()["state"] == "completed"


def test_wait_times_out_on_a_job_no_worker_runs(db_target):
    with open_queue(db_target) as queue:
        queue.enqueue({"id": "never", "command": "true"})
        result = queue.wait(["never"], timeout=0.3)
        assert result.timed_out
        assert [job.id for job in result.unfinished] == ["never"]
        with pytest.raises(JobNotFound):
            queue.wait(["nobody"], timeout=1)


def test_list_filters_by_state_and_queue_and_limits(cli):
    with open_queue(cli.db) as queue:
        for job_id, name in (("m1", "mail"), ("m2", "mail"), ("r1", "reports")):
            queue.enqueue({"id": job_id, "command": "true", "queue": name})
        queue.enqueue({"id": "later", "command": "true", "delay": 3600})
        run_burst(cli, "--queue", "reports")
        assert [job.id for job in queue.list()] == ["m1", "m2", "r1", "later"]
        assert [job.id for job in queue.list(queue="mail")] == ["m1", "m2"]
        assert [job.id for job in queue.list(state="completed")] == ["r1"]
        assert [job.id for job in queue.list(state=JobState.PENDING, limit=2)] == ["m1", "m2"]
        assert queue.list(state="pending", queue="reports") == []
        with pytest.raises(QueueError, match="unknown state 'finished'"):
            queue.list(state="finished")


def test_status_counts_jobs_and_names_the_store(db_target):
    with open_queue(db_target) as queue:
        queue.enqueue({"id": "a", "command": "true"})
        queue.enqueue({"id": "b", "command": "true"})
        queue.cancel("b")
        queue.pause_queues("mail")
        status = queue.status()
        document = status.to_dict()
    assert status.jobs["pending"] == 1 and status.jobs["canceled"] == 1
    assert status.workers == [] and status.paused_queues == ["mail"]
    assert set(document) == {"store", "jobs", "workers", "paused_queues"}
    assert document["jobs"]["completed"] == 0
    assert json.loads(json.dumps(document)) == document
    # The description names the store without the URL's secrets: the path for SQLite.
    if "://" not in db_target:
        assert document["store"] == db_target


def test_status_to_dict_is_what_status_json_prints(cli):
    with open_queue(cli.db) as queue:
        queue.enqueue({"id": "a", "command": "true"})
        assert queue.status().to_dict() == cli.json("status")


def test_cancel_a_pending_job_and_the_errors_of_cancel(db_target):
    with open_queue(db_target) as queue:
        queue.enqueue({"id": "c", "command": "sleep 100"})
        canceled = queue.cancel("c")
        assert canceled.previous is JobState.PENDING and canceled.command is None
        assert queue.get("c").state is JobState.CANCELED
        with pytest.raises(InvalidTransition):
            queue.cancel("c")
        with pytest.raises(JobNotFound):
            queue.cancel("nobody")


def test_dead_jobs_are_listed_and_retried(cli):
    make_dead(cli, "d1", "d2")
    with open_queue(cli.db) as queue:
        assert sorted(job.id for job in queue.list(state="dead")) == ["d1", "d2"]
        assert queue.retry("d1") == ["d1"]
        job = queue.get("d1", with_runs=True)
        assert (job.state, job.attempts, len(job.runs)) == (JobState.PENDING, 0, 1)
        with pytest.raises(InvalidTransition):
            queue.retry(["d1"])  # pending now, not dead
        with pytest.raises(JobNotFound):
            queue.retry("nobody")
        with pytest.raises(QueueError, match="one of the two"):
            queue.retry()
        with pytest.raises(QueueError, match="one of the two"):
            queue.retry("d2", all=True)
        assert queue.retry(all=True) == ["d2"]
        assert queue.list(state="dead") == []


def test_queue_pause_resume_and_limit(cli):
    with open_queue(cli.db) as queue:
        queue.pause_queues("mail")
        queue.enqueue({"id": "m", "command": "true", "queue": "mail"})
        run_burst(cli)
        assert queue.get("m").state is JobState.PENDING  # a paused queue is not served
        queue.resume_queues(["mail"])
        run_burst(cli)
        assert queue.get("m").state is JobState.COMPLETED
        queue.limit_queue("mail", 2)
        (info,) = queue.queues()
        assert (info.name, info.paused, info.limit) == ("mail", False, 2)
        assert info.jobs["completed"] == 1
        with pytest.raises(QueueError, match="whole number"):
            queue.limit_queue("mail", -1)
        with pytest.raises(QueueError):
            queue.pause_queues("bad\nname")
        assert queue.queues()[0].limit == 2


def test_schedules_add_list_show_remove(db_target):
    with open_queue(db_target) as queue:
        added = queue.add_schedule("nightly", "30 2 * * *", "./backup.sh", tz="Europe/Berlin")
        assert (added.name, added.cron, added.tz) == ("nightly", "30 2 * * *", "Europe/Berlin")
        queue.add_schedule("hourly", "@hourly", "true", overlap="skip")
        assert [s.name for s in queue.list_schedules()] == ["hourly", "nightly"]
        assert queue.get_schedule("nightly").command == "./backup.sh"
        assert len(queue.next_fire_times(queue.get_schedule("hourly"))) == 5
        assert queue.pause_schedule("hourly").paused
        assert not queue.resume_schedule("hourly").paused
        with pytest.raises(ScheduleExists):
            queue.add_schedule("nightly", "@daily", "true")
        with pytest.raises(SpecError):  # a QueueError too
            queue.add_schedule("broken", "61 * * * *", "true")
        with pytest.raises(SpecError):
            queue.add_schedule("zoned", "@daily", "true", tz="Mars/Olympus")
        # docs/api.md: a bad cron expression or time zone is a CronError (and a SpecError).
        for cron_expression, zone in (("61 * * * *", "UTC"), ("bad", "UTC"), ("@daily", "Mars/X")):
            with pytest.raises(CronError):
                queue.add_schedule("broken", cron_expression, "true", tz=zone)
        queue.remove_schedule("nightly")
        assert [s.name for s in queue.list_schedules()] == ["hourly"]
        with pytest.raises(ScheduleNotFound):
            queue.remove_schedule("nightly")


BAD_SPECS = [
    ({"command": "true", "colour": "red"}, "unknown field"),
    ({"command": "   "}, "must not be empty"),
    ({"id": "x"}, "missing required field 'command'"),
    ({"command": "true", "max_retries": -1}, "max_retries"),
    ({"command": "true", "after": ["nobody"]}, "nobody"),
    ('{"command": "true"}', "must be a dict"),
]


def test_user_mistakes_raise_queue_errors_and_write_nothing(db_target):
    with open_queue(db_target) as queue:
        queue.enqueue({"id": "taken", "command": "true"})
        with pytest.raises(DuplicateJob) as duplicate:
            queue.enqueue({"id": "taken", "command": "false"})
        assert duplicate.value.job_id == "taken"
        for spec, message in BAD_SPECS:
            with pytest.raises(QueueError, match=message):
                queue.enqueue(spec)
        with pytest.raises(SpecError):
            queue.enqueue({"command": 42})
        with pytest.raises(JobNotFound) as missing:
            queue.get("nobody")
        assert missing.value.job_id == "nobody"
        with pytest.raises(ConfigError):
            queue.config_set("max-retries", "-1")
        with pytest.raises(ConfigError):
            queue.config_set("no-such-key", "1")
        with pytest.raises(ConfigError):
            queue.prune("a week")
        assert job_count(queue) == 1
        assert queue.get("taken").command == "true"
        assert queue.settings()["max-retries"] == 3


def test_names_no_store_can_hold_get_the_same_answer_on_both_backends(db_target):
    """What the CLI refuses before the store sees it (argv has no NUL; stored_text refuses
    bytes that are not UTF-8) is refused alike on SQLite and PostgreSQL through the API."""
    with open_queue(db_target) as queue:
        queue.enqueue({"id": "a", "command": "true"})
        calls = [
            queue.get,
            queue.cancel,
            queue.retry,
            queue.runs,
            lambda job_id: queue.wait(job_id, timeout=1),
        ]
        for call in calls:
            with pytest.raises(JobNotFound):
                call("a\x00b")
            with pytest.raises(SpecError, match="not valid text"):
                call("a\udc80")
            with pytest.raises(SpecError, match="must be a string"):
                call(7)
        for call in (queue.get_schedule, queue.pause_schedule, queue.remove_schedule):
            with pytest.raises(ScheduleNotFound):
                call("nightly\x00")
            with pytest.raises(SpecError):
                call("nightly\udc80")
        with pytest.raises(QueueError, match="control characters"):
            queue.list(queue="a\x00")
        for limit in (-1, "5", 1.5, True):
            with pytest.raises(QueueError, match="whole number"):
                queue.list(limit=limit)
        assert [job.id for job in queue.list(limit=0)] == ["a"]  # 0: all, as --limit 0
        assert queue.get("a").state is JobState.PENDING


def test_the_hierarchy_is_one_and_exported_from_the_package():
    from queuectl import cron, errors

    for name in (
        "JobNotFound",
        "DuplicateJob",
        "DependencyError",
        "InvalidTransition",
        "StoreError",
        "StoreBusy",
        "StoreReadOnly",
        "ScheduleNotFound",
        "ScheduleExists",
        "BulkSpecError",
        "SpecError",
        "ConfigError",
        "CronError",
    ):
        cls = getattr(queuectl, name)
        assert issubclass(cls, QueueError), name
        assert name in queuectl.__all__ and name in dir(queuectl)
    assert queuectl.QueueError is errors.QueueError
    # Those raised by the pure rules stay ValueErrors, as they were.
    assert issubclass(SpecError, ValueError) and issubclass(ConfigError, ValueError)
    with pytest.raises(CronError):
        cron.next_times("not cron", "UTC", 0.0, 1)
    with pytest.raises(AttributeError):
        _ = queuectl.NoSuchThing


def test_import_queuectl_stays_light():
    code = "import sys, queuectl; print(sorted(m for m in sys.modules if m.startswith('queuectl')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert out.strip() == "['queuectl']"


def test_open_a_path_then_reopen_it(tmp_path):
    target = str(tmp_path / "sub" / ".." / "jobs.db")
    with open_queue(target) as queue:
        job_id = queue.enqueue({"command": "true"})
    with open_queue(f"sqlite:///{tmp_path / 'jobs.db'}") as again:
        assert again.get(job_id).command == "true"


def test_open_a_postgresql_url(pg_url):
    with open_queue(pg_url) as queue:
        job_id = queue.enqueue({"command": "true", "queue": "pg"})
        assert queue.status().store.startswith("postgresql://")
    with open_queue(pg_url) as again:
        assert again.get(job_id).queue == "pg"


@pytest.mark.parametrize(
    "target, message",
    [
        ("", "empty"),
        ("mysql://db/queue", "unsupported store URL"),
        ("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", "cannot connect"),
    ],
)
def test_a_store_that_cannot_be_opened_is_a_store_error(target, message):
    with pytest.raises(StoreError, match=message), open_queue(target) as queue:
        queue.status()  # PostgreSQL may connect only now


def test_open_without_a_target_resolves_as_the_cli_does(tmp_path, monkeypatch):
    from_env = tmp_path / "from-env.db"
    monkeypatch.setenv("QUEUECTL_DB", str(from_env))
    with Queue.open() as queue:
        assert queue.status().store == str(from_env)
        job_id = queue.enqueue({"command": "true"})
    env = base_env(str(from_env), tmp_path)
    cli_sees = subprocess.run(
        [sys.executable, "-m", "queuectl", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert [job["id"] for job in json.loads(cli_sees)] == [job_id]


def test_open_without_a_target_reads_dotenv_like_the_cli(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ".env").write_text("QUEUECTL_DB=from-dotenv.db\nQUEUECTL_MAX_RETRIES=6\n")
    # Set, then unset, so that monkeypatch removes what load_dotenv sets when the test ends.
    for name in ("QUEUECTL_DB", "QUEUECTL_MAX_RETRIES"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.chdir(folder)
    with Queue.open() as queue:
        assert Path(queue.status().store).resolve() == folder / "from-dotenv.db"
        assert queue.get(queue.enqueue({"command": "true"})).max_retries == 6
    with Queue.open(str(tmp_path / "explicit.db"), dotenv=True) as queue:
        assert queue.status().store == str(tmp_path / "explicit.db")  # a target wins


def test_the_documented_example_runs(tmp_path):
    """docs/api.md's example, run as a user would run it (a worker included)."""
    text = (ROOT / "docs" / "api.md").read_text()
    example = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(example)
    env = base_env(str(tmp_path / "unused.db"), tmp_path)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "completed: hello from the api"
    wait_for(lambda: (tmp_path / "jobs.db").is_file(), timeout=1)
