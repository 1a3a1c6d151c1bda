"""Looking at and changing jobs through the CLI (SPEC §2, §4): show, list, status, cancel,
dlq list/retry and logs. Jobs are run by burst workers, so no test waits on a live pool except
the one that checks how `status` shows running workers."""

from __future__ import annotations

import json
import os
import shlex
from datetime import timedelta
from pathlib import Path

from clikit import (
    REQUIRED_FIELDS,
    STATES,
    all_jobs,
    assert_error,
    assert_ok,
    enqueue,
    job_ids,
    make_dead,
    now_utc,
    run_burst,
    utc_time,
)
from conftest import wait_for

# ---------------------------------------------------------------------------------------------
# show / list


def test_show_json_has_the_spec_fields_in_utc(cli):
    before = now_utc()
    enqueue(cli, id="s1", command="echo s", priority=2, queue="q1")
    job = cli.json("show", "s1")
    assert job.keys() >= REQUIRED_FIELDS, REQUIRED_FIELDS - job.keys()
    assert (job["id"], job["command"], job["state"]) == ("s1", "echo s", "pending")
    assert (job["priority"], job["queue"], job["attempts"]) == (2, "q1", 0)
    for key in ("run_at", "created_at", "updated_at"):
        assert abs(utc_time(job[key]) - before) < timedelta(seconds=60), key
    assert job["exit_code"] is None and job["last_error"] is None

    listed = cli.json("list")
    assert len(listed) == 1
    assert listed[0].keys() >= REQUIRED_FIELDS
    assert {key: listed[0][key] for key in REQUIRED_FIELDS} == {
        key: job[key] for key in REQUIRED_FIELDS
    }


def test_show_text_and_unknown_id(cli):
    enqueue(cli, id="s1", command="echo shown")
    text = assert_ok(cli("show", "s1"))
    assert "s1" in text and "pending" in text and "echo shown" in text
    assert_error(cli("show", "nope"), 1, mentions=["nope"])
    assert_error(cli("show", "nope", "--json"), 1, mentions=["nope"])


def test_list_filters_by_state_queue_and_limit(cli):
    for job_id, queue in [("a1", "default"), ("a2", "other"), ("a3", "default"), ("a4", "other")]:
        enqueue(cli, id=job_id, command="true", queue=queue)
    enqueue(cli, id="a5", command="true")
    assert_ok(cli("cancel", "a3"))

    assert job_ids(cli) == ["a1", "a2", "a3", "a4", "a5"]
    assert job_ids(cli, "--state", "canceled") == ["a3"]
    assert job_ids(cli, "--state", "pending") == ["a1", "a2", "a4", "a5"]
    assert job_ids(cli, "--state", "dead") == []
    assert job_ids(cli, "--queue", "other") == ["a2", "a4"]
    assert job_ids(cli, "--queue", "default", "--state", "pending") == ["a1", "a5"]
    assert job_ids(cli, "--queue", "nosuch") == []
    assert [job["id"] for job in cli.json("list", "--limit", "2")] == ["a1", "a2"]
    assert [job["id"] for job in cli.json("list", "--state", "pending", "--limit", "1")] == ["a1"]

    text = assert_ok(cli("list", "--limit", "0"))
    lines = text.splitlines()
    assert len(lines) == 6  # a header and one line per job
    assert [line.split()[0] for line in lines[1:]] == ["a1", "a2", "a3", "a4", "a5"]
    limited = cli("list", "--limit", "2")
    assert len(assert_ok(limited).splitlines()) == 3
    assert "--limit" in limited.stderr  # says there is more, on stderr
    assert assert_ok(cli("list", "--state", "dead")) == ""


def test_list_bad_options_are_usage_errors(sqlite_cli):
    assert_error(sqlite_cli("list", "--state", "sleeping"), 2)
    assert_error(sqlite_cli("list", "--limit", "-1"), 2)
    assert_error(sqlite_cli("list", "--limit", "many"), 2)


def test_json_output_is_exactly_one_document(cli):
    enqueue(cli, id="j1", command="true")
    enqueue(cli, id="j2", command="true")
    for args in [
        ("status",),
        ("list",),
        ("list", "--limit", "1"),  # the "showing the first 1" note must not land on stdout
        ("list", "--state", "dead"),
        ("show", "j1"),
        ("dlq", "list"),
        ("config", "list"),
    ]:
        out = assert_ok(cli(*args, "--json"))
        assert out.strip()[:1] in ("{", "["), (args, out)
        json.loads(out)  # raises on anything after the document


# ---------------------------------------------------------------------------------------------
# status


def store_matches(cli, described: str) -> bool:
    """Does `status` name the store this test uses?"""
    if cli.db.startswith(("postgresql://", "postgres://")):
        return cli.db.rsplit("/", 1)[-1] in described
    return described == os.path.abspath(cli.db)


def test_status_json_has_the_spec_shape(cli):
    status = cli.json("status")
    assert set(status) == {"store", "jobs", "workers", "paused_queues"}  # SPEC §4, §8
    assert store_matches(cli, status["store"]), status["store"]
    assert status["jobs"] == dict.fromkeys(STATES, 0)
    assert status["workers"] == []
    assert status["paused_queues"] == []

    for job_id in ("p1", "p2", "p3"):
        enqueue(cli, id=job_id, command="true")
    assert_ok(cli("cancel", "p2"))
    jobs = cli.json("status")["jobs"]
    assert set(jobs) == set(STATES)
    assert jobs == {**dict.fromkeys(STATES, 0), "pending": 2, "canceled": 1}


def test_status_text_prints_the_store(cli):
    enqueue(cli, id="p1", command="true")
    text = assert_ok(cli("status"))
    store = cli.json("status")["store"]
    assert f"store: {store}" in text
    for state in STATES:
        assert state in text


def test_status_lists_running_workers(cli, tmp_path):
    gate = tmp_path / "gate"
    enqueue(cli, id="held", command=f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done")
    pool = cli.start_workers("--burst")
    try:

        def busy():
            status = cli.json("status")
            workers = status["workers"]
            return status if workers and workers[0]["current_job"] == "held" else None

        status = wait_for(busy)
        assert status["jobs"]["processing"] == 1
        assert len(status["workers"]) == 1
        worker = status["workers"][0]
        assert set(worker) == {"id", "host", "pid", "started_at", "last_heartbeat", "current_job"}
        assert worker["id"] and worker["host"]
        assert isinstance(worker["pid"], int) and worker["pid"] > 0
        assert utc_time(worker["started_at"]) <= utc_time(worker["last_heartbeat"])
    finally:
        gate.touch()
        pool.wait(timeout=30)
    assert pool.returncode == 0
    status = cli.json("status")
    assert status["workers"] == []  # exited workers are not listed
    assert status["jobs"]["completed"] == 1


def test_worker_stop_without_workers_and_worker_usage_errors(cli):
    result = cli("worker", "stop", "--timeout", "1")
    assert_ok(result)
    assert "no workers" in result.stdout + result.stderr
    assert_error(cli("worker", "start", "--count", "0"), 2)
    assert_error(cli("worker", "stop", "--timeout", "soon"), 2)
    assert_error(cli("worker", "stop", "--timeout", "-1"), 2)
    assert_error(cli("worker"), 2)


# ---------------------------------------------------------------------------------------------
# cancel


def test_cancel_pending_job(cli):
    enqueue(cli, id="c1", command="true")
    enqueue(cli, id="c2", command="true")
    out = assert_ok(cli("cancel", "c1"))
    assert "c1" in out
    assert cli.json("show", "c1")["state"] == "canceled"
    assert cli.json("show", "c2")["state"] == "pending"
    # Canceled is finished: canceling again is an error and changes nothing.
    before = cli.json("show", "c1")
    assert_error(cli("cancel", "c1"), 1, mentions=["c1"])
    assert cli.json("show", "c1") == before


def test_cancel_unknown_id(cli):
    assert_error(cli("cancel", "ghost"), 1, mentions=["ghost"])


def test_cancel_by_state_after_a_run(cli):
    enqueue(cli, id="done", command="true")
    enqueue(cli, id="buried", command="exit 3", max_retries=0)
    enqueue(cli, id="retrying", command="exit 1", max_retries=2)
    # A long backoff: after its first failure `retrying` waits, `failed`, and the burst ends.
    run_burst(cli, env={"QUEUECTL_BACKOFF_BASE": "1000"})
    states = {job["id"]: job["state"] for job in all_jobs(cli)}
    assert states == {"done": "completed", "buried": "dead", "retrying": "failed"}

    for finished in ("done", "buried"):
        before = cli.json("show", finished)
        assert_error(cli("cancel", finished), 1, mentions=[finished])
        assert cli.json("show", finished) == before

    assert_ok(cli("cancel", "retrying"))
    assert cli.json("show", "retrying")["state"] == "canceled"


# ---------------------------------------------------------------------------------------------
# dead-letter queue


def test_dlq_list_and_retry_one(cli):
    make_dead(cli, "d1", "d2", extra={"later": {"command": "true", "delay": 3600}})
    dead = cli.json("dlq", "list")
    assert sorted(job["id"] for job in dead) == ["d1", "d2"]
    for job in dead:
        assert job.keys() >= REQUIRED_FIELDS
        assert (job["state"], job["attempts"], job["exit_code"]) == ("dead", 1, 3)
        assert "3" in job["last_error"]
    text = assert_ok(cli("dlq", "list"))
    assert "d1" in text and "d2" in text and "later" not in text

    out = assert_ok(cli("dlq", "retry", "d1"))
    assert "d1" in out
    job = cli.json("show", "d1")
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert utc_time(job["run_at"]) <= now_utc() + timedelta(seconds=1)  # due now
    assert len(job["runs"]) == 1  # the run history is kept
    assert [job["id"] for job in cli.json("dlq", "list")] == ["d2"]
    assert cli.json("show", "later")["state"] == "pending"


def test_dlq_retry_all(cli):
    make_dead(cli, "d1", "d2", "d3")
    assert_ok(cli("dlq", "retry", "--all"))
    for job in all_jobs(cli):
        assert (job["state"], job["attempts"]) == ("pending", 0), job
    assert cli.json("dlq", "list") == []
    empty = cli("dlq", "retry", "--all")
    assert assert_ok(empty) == ""
    assert "empty" in empty.stderr
    assert all(job["state"] == "pending" for job in all_jobs(cli))


def test_dlq_retry_refuses_bad_requests_and_changes_nothing(cli):
    make_dead(cli, "d1", extra={"p1": {"command": "true", "delay": 3600}})
    before = {job["id"]: job for job in all_jobs(cli)}

    assert_error(cli("dlq", "retry"), 2)
    assert_error(cli("dlq", "retry", "--all", "d1"), 2)
    assert_error(cli("dlq", "retry", "p1"), 1, mentions=["p1"])
    assert_error(cli("dlq", "retry", "d1", "p1"), 1, mentions=["p1"])
    assert_error(cli("dlq", "retry", "nope"), 1, mentions=["nope"])
    assert_error(cli("dlq", "retry", "d1", "nope"), 1, mentions=["nope"])

    assert {job["id"]: job for job in all_jobs(cli)} == before
    assert before["d1"]["state"] == "dead" and before["p1"]["state"] == "pending"


def test_dlq_list_when_empty(cli):
    result = cli("dlq", "list")
    assert assert_ok(result) == ""
    assert "empty" in result.stderr
    assert cli.json("dlq", "list") == []


# ---------------------------------------------------------------------------------------------
# logs


def test_logs_prints_captured_stdout_and_stderr(cli):
    enqueue(cli, id="talky", command="echo to-stdout; echo to-stderr >&2")
    enqueue(cli, id="twice", command='echo "attempt $QUEUECTL_ATTEMPT"; exit 1', max_retries=1)
    enqueue(cli, id="never", command="true", delay=3600)
    run_burst(cli)

    out = assert_ok(cli("logs", "talky"))
    assert "to-stdout" in out and "to-stderr" in out
    out = assert_ok(cli("logs", "twice"))
    assert out.index("attempt 1") < out.index("attempt 2")
    job = cli.json("show", "twice")
    assert (job["state"], job["exit_code"], job["attempts"]) == ("dead", 1, 2)
    assert job["last_error"]

    assert assert_ok(cli("logs", "never")) == ""
    assert_error(cli("logs", "nope"), 1, mentions=["nope"])


def test_commands_taking_an_id_require_one(sqlite_cli):
    # Usage errors never reach the store, so SQLite alone covers them.
    for command in (["show"], ["logs"], ["cancel"], ["show", "a", "b"]):
        assert_error(sqlite_cli(*command), 2)


def test_logs_says_on_stderr_when_only_the_stores_tail_is_left(cli):
    # SPEC §4: a run whose log file is gone is shown from the tail the store keeps (its last
    # 8 KiB), which starts mid-line; stderr says so, stdout stays the output alone.
    enqueue(cli, id="long", command="seq 1 3000")  # 13 893 bytes
    enqueue(cli, id="short", command="echo short")
    enqueue(cli, id="silent", command="true")
    enqueue(cli, id="kept", command="echo kept")
    run_burst(cli)
    enqueue(cli, id="remote", command="echo remote")
    run_burst(cli, env={"QUEUECTL_HOSTNAME": "box-b"})
    for job_id in ("long", "short", "silent", "remote"):
        for run in cli.json("show", job_id)["runs"]:
            Path(run["log_path"]).unlink(missing_ok=True)  # a silent run may have left none

    result = cli("logs", "long")
    tail = cli.json("show", "long")["runs"][0]["output_tail"]
    assert assert_ok(result) == tail and len(tail) == 8192 and not tail.startswith("1\n")
    assert "".join(f"{n}\n" for n in range(1, 3001)).endswith(tail)
    header, note = result.stderr.splitlines()
    assert header == "=== attempt 1 (exited, exit 0) ===", result.stderr
    assert note.startswith("queuectl: the log file of attempt 1 is gone"), note
    assert "only the last 8 KiB" in note, note

    result = cli("logs", "short")
    assert assert_ok(result) == "short\n"
    assert "gone" in result.stderr and "all of it" in result.stderr, result.stderr

    result = cli("logs", "remote")
    assert assert_ok(result) == "remote\n"
    assert "attempt 1 ran on box-b, which has its log file" in result.stderr, result.stderr

    # Nothing was lost where nothing was printed, or where the file is still there.
    for job_id, output in (("silent", ""), ("kept", "kept\n")):
        result = cli("logs", job_id)
        assert assert_ok(result) == output
        assert len(result.stderr.splitlines()) == 1, result.stderr  # the header alone
