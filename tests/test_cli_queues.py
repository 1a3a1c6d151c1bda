"""`queue list|pause|resume|limit` and the paused queues in `status`, through the real CLI on
every backend (SPEC §8): output and JSON exactly as promised, bad input refused with nothing
written, and names that are only data. The store's rules are test_contract_queues.py's; real
worker pools under pauses and limits are test_worker_queues.py's. `--help` and its example are
checked for every command by test_cli_help.py.
"""

from __future__ import annotations

import time

from clikit import STATES, assert_error, assert_ok, each_case, enqueue, enqueue_many, run_burst
from conftest import CLI

from queuectl.models import MAX_QUEUE_LENGTH
from queuectl.store import ClaimRequest, open_store

NO_JOBS = dict.fromkeys(STATES, 0)
QUEUE_FIELDS = {"name", "paused", "limit", "jobs", "oldest_ready_age"}


def queue_list(cli: CLI) -> list[dict]:
    listed = cli.json("queue", "list")
    for queue in listed:
        assert queue.keys() == QUEUE_FIELDS, queue
        assert list(queue["jobs"]) == list(STATES), queue  # every state, in SPEC's order
    return listed


def paused(cli: CLI) -> list[str]:
    return cli.json("status")["paused_queues"]


def nothing_written(cli: CLI) -> None:
    assert queue_list(cli) == []
    assert paused(cli) == []


# ---------------------------------------------------------------------------------------------
# queue list


def test_queue_list_counts_a_queues_jobs_in_every_state_with_its_settings(cli):
    # One queue holding a job in each of the seven states, built through the CLI (and one claim
    # by a worker that never reports, for `processing`).
    enqueue(cli, id="done", command="true", queue="mixed")
    enqueue(cli, id="dies", command="exit 3", queue="mixed", max_retries=0)
    enqueue(cli, id="retrying", command="exit 3", queue="mixed", max_retries=2)
    run_burst(cli, env={"QUEUECTL_BACKOFF_BASE": "1000"})  # its retry is due in 1000 s
    enqueue(cli, id="later", command="true", queue="mixed", delay=3600)
    enqueue(cli, id="blocked", command="true", queue="mixed", after=["later"])
    enqueue(cli, id="gone", command="true", queue="mixed")
    assert_ok(cli("cancel", "gone"))
    enqueue(cli, id="held", command="true", queue="mixed")
    store = open_store(cli.db)
    try:
        held = store.claim(ClaimRequest("ghost", "host", ["mixed"], 3600.0))
    finally:
        store.close()
    assert held.job.id == "held"
    before_ready = time.time()
    enqueue(cli, id="ready", command="true", queue="mixed")

    assert assert_ok(cli("queue", "limit", "mixed", "2")) == "limited mixed to 2 running jobs\n"
    assert assert_ok(cli("queue", "pause", "idle")) == "paused idle\n"
    # Settings taken back leave a queue with no job unlisted.
    assert_ok(cli("queue", "limit", "was-limited", "4"))
    assert_ok(cli("queue", "limit", "was-limited", "0"))
    assert_ok(cli("queue", "pause", "was-paused"))
    assert_ok(cli("queue", "resume", "was-paused"))

    listed = queue_list(cli)
    assert [queue["name"] for queue in listed] == ["idle", "mixed"]
    idle, mixed = listed
    assert idle == {
        "name": "idle",
        "paused": True,
        "limit": None,
        "jobs": NO_JOBS,
        "oldest_ready_age": None,
    }
    age = mixed.pop("oldest_ready_age")
    assert mixed == {
        "name": "mixed",
        "paused": False,
        "limit": 2,
        "jobs": {
            "waiting": 1,
            "pending": 2,  # `ready`, and `later` (not due: no part of the age)
            "processing": 1,
            "completed": 1,
            "failed": 1,
            "dead": 1,
            "canceled": 1,
        },
    }
    assert isinstance(age, float) and 0 <= age <= time.time() - before_ready + 1, age

    rows = [line.split() for line in assert_ok(cli("queue", "list")).splitlines()]
    assert rows[0] == [
        "QUEUE",
        "PAUSED",
        "LIMIT",
        "PENDING",
        "PROCESSING",
        "FAILED",
        "DEAD",
        "OLDEST_READY",
    ]
    assert rows[1] == ["idle", "yes", "-", "0", "0", "0", "0", "-"]
    assert rows[2][:7] == ["mixed", "no", "2", "2", "1", "1", "1"]
    assert rows[2][7].endswith("s") and rows[2][7][:-1].isdigit(), rows[2]
    assert len(rows) == 3


def test_queue_list_with_no_queue_says_so_on_stderr_only(cli):
    result = cli("queue", "list")
    assert assert_ok(result) == ""
    assert "no queues yet" in result.stderr
    assert queue_list(cli) == []
    enqueue(cli, command="true")  # the default queue has a job now
    assert [queue["name"] for queue in queue_list(cli)] == ["default"]


# ---------------------------------------------------------------------------------------------
# pause, resume, limit, status


def test_pause_and_resume_show_in_status_and_work_on_queues_with_no_job(cli):
    assert paused(cli) == []
    assert "paused queues" not in assert_ok(cli("status"))

    # Each name once, in the order given, however often it was typed.
    assert assert_ok(cli("queue", "pause", "b", "a", "b")) == "paused b\npaused a\n"
    assert paused(cli) == ["a", "b"]
    assert "\npaused queues: a, b\n" in assert_ok(cli("status"))
    assert [(q["name"], q["paused"], q["jobs"]) for q in queue_list(cli)] == [
        ("a", True, NO_JOBS),
        ("b", True, NO_JOBS),
    ]

    # Enqueueing into a paused queue works; a worker leaves the job alone.
    enqueue(cli, id="a1", command="true", queue="a")
    run_burst(cli)
    assert cli.json("show", "a1")["state"] == "pending"

    assert assert_ok(cli("queue", "resume", "a")) == "resumed a\n"
    assert paused(cli) == ["b"]
    assert "\npaused queues: b\n" in assert_ok(cli("status"))
    assert [(q["name"], q["paused"]) for q in queue_list(cli)] == [("a", False), ("b", True)]
    run_burst(cli)
    assert cli.json("show", "a1")["state"] == "completed"

    # Resuming what was never paused, or again, is no error and leaves no trace.
    assert assert_ok(cli("queue", "resume", "b", "never")) == "resumed b\nresumed never\n"
    assert paused(cli) == []
    assert "paused queues" not in assert_ok(cli("status"))
    assert [q["name"] for q in queue_list(cli)] == ["a"]


def test_limit_is_set_shown_and_removed_by_zero(cli):
    assert assert_ok(cli("queue", "limit", "q", "3")) == "limited q to 3 running jobs\n"
    assert [(q["name"], q["limit"], q["paused"]) for q in queue_list(cli)] == [("q", 3, False)]
    assert assert_ok(cli("queue", "limit", "q", "007")) == "limited q to 7 running jobs\n"
    assert queue_list(cli)[0]["limit"] == 7
    big = "9" * 18  # the most digits taken
    assert_ok(cli("queue", "limit", "q", big))
    assert queue_list(cli)[0]["limit"] == int(big)
    assert assert_ok(cli("queue", "limit", "q", "0")) == "removed the limit of q\n"
    assert queue_list(cli) == []
    # A limit and a pause are independent settings.
    assert_ok(cli("queue", "limit", "q", "1"))
    assert_ok(cli("queue", "pause", "q"))
    assert_ok(cli("queue", "limit", "q", "0"))
    assert [(q["name"], q["limit"], q["paused"]) for q in queue_list(cli)] == [("q", None, True)]
    assert paused(cli) == ["q"]


# ---------------------------------------------------------------------------------------------
# bad input


BAD_LIMITS = [
    "-1",
    "many",
    "1.5",
    "",
    " 3",
    "+3",
    "1e3",
    "٣",
    "３",
    "0x10",
    "1" * 19,
    "-0",
    "1\udcff",
]
BAD_NAMES = {
    "empty": "",
    "a tab": "a\tb",
    "a newline": "a\nb",
    "an escape sequence": "a\x1b[31mred",
    "a C1 control": "a\x85b",
    "a line separator": "a\u2028b",
    "too long": "x" * (MAX_QUEUE_LENGTH + 1),
    "bytes that are not UTF-8": "a\udcffb",  # argv bytes reach Python as lone surrogates
}


def test_bad_limits_are_refused_with_one_line_and_nothing_written(sqlite_cli):
    # Refused before the store is opened: one backend is enough.
    cases = {f"limit {value!r}": (["limit", "q", value],) for value in BAD_LIMITS}
    cases["-1 after --"] = (["limit", "--", "q", "-1"],)
    each_case(cases, lambda args: assert_error(sqlite_cli("queue", *args), 1, ["limit"]))
    nothing_written(sqlite_cli)


def test_bad_queue_names_are_refused_with_one_line_and_nothing_written(cli):
    cases = {f"pause, {what}": (["pause", name],) for what, name in BAD_NAMES.items()}
    for what in ("empty", "an escape sequence", "too long", "bytes that are not UTF-8"):
        cases[f"resume, {what}"] = (["resume", BAD_NAMES[what]],)
        cases[f"limit, {what}"] = (["limit", BAD_NAMES[what], "2"],)
    # One bad name among good ones: none of them is paused.
    cases["pause, good then empty"] = (["pause", "good", ""],)
    cases["pause, good then too long"] = (["pause", "good", BAD_NAMES["too long"]],)
    each_case(cases, lambda args: assert_error(cli("queue", *args), 1, ["queue"]))
    nothing_written(cli)


def test_usage_errors_exit_2_and_write_nothing(sqlite_cli):
    # Found by click before the store is opened: one backend is enough.
    cases = {
        "pause, no queue": (["pause"],),
        "resume, no queue": (["resume"],),
        "limit, nothing": (["limit"],),
        "limit, no N": (["limit", "q"],),
        "limit, an extra argument": (["limit", "q", "1", "2"],),
        "list, an argument": (["list", "q"],),
        "pause, an unknown option": (["pause", "--now", "q"],),
        "an unknown subcommand": (["stop", "q"],),
    }
    each_case(cases, lambda args: assert_error(sqlite_cli("queue", *args), 2))
    nothing_written(sqlite_cli)


# ---------------------------------------------------------------------------------------------
# names are data


HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    'it\'s "quoted"',
    "'); DROP TABLE queuectl_queues; --",
    "x'); DELETE FROM queues; --",
    "%_",
    "ünï ✓ 队列 😀",
    "-looks-like-an-option",
    "a b",
    "x" * MAX_QUEUE_LENGTH,
]


def test_hostile_queue_names_round_trip_in_json_and_status(cli):
    assert_ok(cli("queue", "pause", "--", *HOSTILE_NAMES))
    for name in HOSTILE_NAMES:
        assert_ok(cli("queue", "limit", "--", name, "2"))
    enqueue_many(cli, [{"command": "true", "queue": name} for name in HOSTILE_NAMES])
    assert_ok(cli("queue", "pause", "bystander"))
    wanted = sorted(HOSTILE_NAMES)
    assert paused(cli) == sorted([*HOSTILE_NAMES, "bystander"])
    listed = queue_list(cli)
    assert [queue["name"] for queue in listed] == sorted([*wanted, "bystander"])
    for queue in listed:
        if queue["name"] != "bystander":
            assert (queue["paused"], queue["limit"], queue["jobs"]["pending"]) == (True, 2, 1)

    assert_ok(cli("queue", "resume", "--", *HOSTILE_NAMES))
    assert paused(cli) == ["bystander"]
    run_burst(cli)
    for queue in queue_list(cli):
        if queue["name"] != "bystander":
            assert queue["jobs"]["completed"] == 1, queue
    # Tables show each name on its own row.
    table = assert_ok(cli("queue", "list")).splitlines()
    assert len(table) == 1 + len(HOSTILE_NAMES) + 1
    assert any(line.startswith("<script>alert(1)</script> ") for line in table)
