"""`queuectl enqueue` through a subprocess (SPEC §2, §4): the three input forms, and every way
a spec can be refused (exit 1, one line, nothing written) or misused (exit 2)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from clikit import (
    all_jobs,
    assert_error,
    assert_ok,
    each_case,
    enqueue,
    job_ids,
    now_utc,
    utc_time,
)


def test_enqueue_json_prints_only_the_id(cli):
    result = cli("enqueue", '{"id": "job1", "command": "echo hi"}')
    assert assert_ok(result) == "job1\n"

    job = cli.json("show", "job1")
    assert job["command"] == "echo hi"
    assert job["state"] == "pending"
    assert job["attempts"] == 0
    assert job["max_retries"] == 3  # the config default, copied in
    assert job["priority"] == 0
    assert job["queue"] == "default"
    assert job["exit_code"] is None and job["last_error"] is None


def test_enqueue_without_id_generates_unique_ids(cli):
    first = enqueue(cli, command="true")
    second = enqueue(cli, command="true")
    assert first and second and first != second
    assert job_ids(cli) == [first, second]


def test_enqueue_command_with_every_flag(cli):
    out = cli.ok(
        "enqueue",
        "--command",
        "echo flags",
        "--id",
        "flagged",
        "--max-retries",
        "5",
        "--priority",
        "-7",
        "--queue",
        "reports",
        "--run-at",
        "2030-01-02T05:04:05+02:00",
        "--timeout",
        "12.5",
    )
    assert out == "flagged\n"
    job = cli.json("show", "flagged")
    assert job["command"] == "echo flags"
    assert job["max_retries"] == 5
    assert job["priority"] == -7
    assert job["queue"] == "reports"
    assert job["timeout"] == 12.5
    # The offset is honoured and the time shown in UTC.
    assert utc_time(job["run_at"]) == datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert job["state"] == "pending"


def test_enqueue_command_with_delay_and_short_options(cli):
    before = now_utc()
    job_id = cli.ok("enqueue", "-c", "echo later", "--delay", "120", "-q", "slow").strip()
    job = cli.json("show", job_id)
    assert job["queue"] == "slow"
    created = utc_time(job["created_at"])
    assert abs(created - before) < timedelta(seconds=30)
    waited = (utc_time(job["run_at"]) - created).total_seconds()
    assert 119 <= waited <= 121


def test_enqueue_command_without_id_prints_generated_id(cli):
    out = assert_ok(cli("enqueue", "--command", "echo generated"))
    assert out.count("\n") == 1
    assert job_ids(cli) == [out.strip()]


# ---------------------------------------------------------------------------------------------
# bulk


def test_bulk_enqueue_prints_ids_one_per_line(cli):
    lines = [
        '{"id": "b1", "command": "echo 1"}',
        "",  # blank lines are skipped
        '{"command": "echo 2", "priority": 3}',
        '{"id": "b3", "command": "echo 3", "queue": "other"}',
    ]
    out = assert_ok(cli("enqueue", "-", input="\n".join(lines) + "\n"))
    ids = out.splitlines()
    assert len(ids) == 3 and out.endswith("\n")
    assert ids[0] == "b1" and ids[2] == "b3" and ids[1]
    assert job_ids(cli) == ids
    assert cli.json("show", ids[1])["priority"] == 3


BAD_BULK_LINES = {
    "invalid JSON": '{"command": "echo broken"',
    "unknown field": '{"command": "echo x", "colour": "red"}',
    "empty command": '{"command": ""}',
    "empty queue": '{"command": "echo x", "queue": ""}',
    "wrong type": '{"command": "echo x", "max_retries": "3"}',
    "not an object": '["echo x"]',
}


def test_bulk_enqueue_bad_line_enqueues_nothing(cli):
    def check(number: int, bad: str) -> None:
        lines = [
            f'{{"id": "good1-{number}", "command": "echo 1"}}',
            f'{{"id": "good2-{number}", "command": "echo 2"}}',
            bad,
            f'{{"id": "good4-{number}", "command": "echo 4"}}',
        ]
        result = cli("enqueue", "-", input="\n".join(lines) + "\n")
        assert_error(result, 1, mentions=["line 3"])

    each_case({name: (n, bad) for n, (name, bad) in enumerate(BAD_BULK_LINES.items())}, check)
    assert all_jobs(cli) == []


def test_bulk_enqueue_duplicate_ids_enqueue_nothing(cli):
    enqueue(cli, id="existing", command="echo original")
    within = '{"id": "twice", "command": "echo a"}\n{"id": "twice", "command": "echo b"}\n'
    assert_error(
        cli("enqueue", "-", input=within), 1, mentions=["twice", "line 2", "nothing was enqueued"]
    )
    clash = '{"id": "fresh", "command": "echo a"}\n{"id": "existing", "command": "echo b"}\n'
    assert_error(
        cli("enqueue", "-", input=clash), 1, mentions=["existing", "line 2", "nothing was enqueued"]
    )
    assert job_ids(cli) == ["existing"]
    assert cli.json("show", "existing")["command"] == "echo original"


def test_a_repeated_key_is_refused_not_last_wins(cli):
    # SPEC §2: repeated fields are an error. json alone keeps the last one silently.
    cases = {
        "id": ('{"id": "a", "id": "b", "command": "true"}', "'id'"),
        "command": ('{"id": "c", "command": "true", "command": "rm -rf x"}', "'command'"),
        "escaped": ('{"id": "d", "\\u0069d": "e", "command": "true"}', "'id'"),
    }

    def check(spec: str, named: str) -> None:
        assert_error(cli("enqueue", spec), 1, mentions=[named, "twice"])
        lines = '{"id": "first", "command": "true"}\n' + spec + "\n"
        assert_error(cli("enqueue", "-", input=lines), 1, mentions=[named, "twice", "line 2"])

    each_case(cases, check)
    assert all_jobs(cli) == []


def test_bulk_enqueue_accepts_a_byte_order_mark_at_the_start(cli):
    # What Windows PowerShell pipes into a program: UTF-8 with a BOM, and CRLF line ends.
    lines = '\ufeff{"id": "ps1", "command": "true"}\r\n{"id": "ps2", "command": "true"}\r\n'
    assert assert_ok(cli("enqueue", "-", input=lines)) == "ps1\nps2\n"
    assert job_ids(cli) == ["ps1", "ps2"]
    # Only there: further down, U+FEFF is a character JSON does not allow between values.
    later = '{"id": "ok", "command": "true"}\n\ufeff{"id": "bom", "command": "true"}\n'
    assert_error(cli("enqueue", "-", input=later), 1, mentions=["line 2"])
    assert job_ids(cli) == ["ps1", "ps2"]


def test_bulk_enqueue_empty_input_is_not_an_error(cli):
    assert assert_ok(cli("enqueue", "-", input="\n\n")) == ""
    assert all_jobs(cli) == []


# ---------------------------------------------------------------------------------------------
# refused specs: exit 1, one line on stderr naming the problem, nothing written


def test_duplicate_id_fails_and_keeps_the_original(cli):
    enqueue(cli, id="dup", command="echo first", priority=1)
    before = cli.json("show", "dup")
    second = cli("enqueue", '{"id": "dup", "command": "echo second", "priority": 9}')
    assert_error(second, 1, mentions=["dup"])
    flags = cli("enqueue", "--command", "echo third", "--id", "dup")
    assert_error(flags, 1, mentions=["dup"])
    assert cli.json("show", "dup") == before
    assert job_ids(cli) == ["dup"]


BAD_SPECS = {
    "unknown field": ('{"command": "true", "colour": "red"}', "colour"),
    "missing command": ('{"id": "x"}', "command"),
    "empty command": ('{"command": ""}', "command"),
    "blank command": ('{"command": "   "}', "command"),
    "command not a string": ('{"command": ["ls"]}', "command"),
    "command null": ('{"command": null}', "command"),
    "id not a string": ('{"command": "true", "id": 5}', "id"),
    "empty id": ('{"command": "true", "id": ""}', "id"),
    "max_retries a string": ('{"command": "true", "max_retries": "3"}', "max_retries"),
    "max_retries negative": ('{"command": "true", "max_retries": -1}', "max_retries"),
    "max_retries fractional": ('{"command": "true", "max_retries": 1.5}', "max_retries"),
    "priority a boolean": ('{"command": "true", "priority": true}', "priority"),
    "priority fractional": ('{"command": "true", "priority": 2.5}', "priority"),
    "queue a number": ('{"command": "true", "queue": 7}', "queue"),
    "empty queue": ('{"command": "true", "queue": ""}', "queue"),
    "run_at not a time": ('{"command": "true", "run_at": "tomorrow"}', "run_at"),
    "run_at a number": ('{"command": "true", "run_at": 1700000000}', "run_at"),
    "delay a string": ('{"command": "true", "delay": "10"}', "delay"),
    "delay negative": ('{"command": "true", "delay": -1}', "delay"),
    "timeout negative": ('{"command": "true", "timeout": -1}', "timeout"),
    "timeout a string": ('{"command": "true", "timeout": "60"}', "timeout"),
    "run_at and delay": (
        '{"command": "true", "run_at": "2030-01-01T00:00:00Z", "delay": 5}',
        "delay",
    ),
    "NaN": ('{"command": "true", "delay": NaN}', "NaN"),
    "invalid JSON": ('{"command": ', "JSON"),
    "not an object": ('["echo hi"]', "object"),
    "null": ("null", "object"),
}


def test_bad_specs_are_refused_and_nothing_written(sqlite_cli):
    """Validation happens before the store is written, so the whole table runs on SQLite; the
    next test checks a few cases on every backend."""
    each_case(BAD_SPECS, lambda spec, named: assert_error(sqlite_cli("enqueue", spec), 1, [named]))
    assert all_jobs(sqlite_cli) == []


def test_bad_spec_is_refused_on_every_backend(cli):
    cases = {name: BAD_SPECS[name] for name in ("unknown field", "max_retries a string", "null")}
    each_case(cases, lambda spec, named: assert_error(cli("enqueue", spec), 1, [named]))
    assert all_jobs(cli) == []


BAD_FLAGS = {
    "empty command": (["--command", ""], "command"),
    "empty id": (["--command", "true", "--id", ""], "id"),
    "empty queue": (["--command", "true", "--queue", ""], "queue"),
    "negative max-retries": (["--command", "true", "--max-retries", "-1"], "max_retries"),
    "negative delay": (["--command", "true", "--delay", "-1"], "delay"),
    "negative timeout": (["--command", "true", "--timeout", "-1"], "timeout"),
    "bad run-at": (["--command", "true", "--run-at", "next week"], "run_at"),
}


def test_bad_flag_values_are_refused_and_nothing_written(sqlite_cli):
    each_case(BAD_FLAGS, lambda args, named: assert_error(sqlite_cli("enqueue", *args), 1, [named]))
    assert all_jobs(sqlite_cli) == []


def test_run_at_and_delay_together_are_refused(cli):
    # Exclusive options ([--run-at TIME | --delay SECONDS] in SPEC §4): a usage error.
    result = cli("enqueue", "--command", "true", "--run-at", "2030-01-01T00:00:00Z", "--delay", "5")
    assert_error(result, 2, mentions=["--delay"])
    # In a JSON spec, both fields together are a bad spec.
    spec = '{"command": "true", "run_at": "2030-01-01T00:00:00Z", "delay": 5}'
    assert_error(cli("enqueue", spec), 1, mentions=["delay"])
    assert all_jobs(cli) == []


def test_run_at_beyond_the_representable_range_never_gives_a_traceback(cli):
    """9999-12-31T23:59:59-23:59 is a valid ISO-8601 time, but later than any UTC time
    `datetime` can show. Refusing it (exit 1) or accepting it are both fine; a traceback in
    `list` / `show` afterwards is not."""
    spec = '{"id": "far", "command": "true", "run_at": "9999-12-31T23:59:59-23:59"}'
    result = cli("enqueue", spec)
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 1:
        assert_error(result, 1, mentions=["run_at"])
        assert all_jobs(cli) == []
        return
    assert assert_ok(result) == "far\n"
    assert_ok(cli("list"))
    assert_ok(cli("show", "far"))
    assert cli.json("show", "far")["id"] == "far"


# ---------------------------------------------------------------------------------------------
# usage errors: exit 2


USAGE_ERRORS = {
    "no arguments": [],
    "SPEC_JSON and --command": ['{"command": "true"}', "--command", "true"],
    "SPEC_JSON and --priority": ['{"command": "true"}', "--priority", "5"],
    "stdin and --command": ["-", "--command", "true"],
    "max-retries not an integer": ["--command", "true", "--max-retries", "three"],
    "priority not an integer": ["--command", "true", "--priority", "high"],
    "delay not a number": ["--command", "true", "--delay", "soon"],
    "timeout not a number": ["--command", "true", "--timeout", "long"],
    "unknown option": ["--command", "true", "--colour", "red"],
    "--command without a value": ["--command"],
    "two SPEC_JSON": ['{"command": "true"}', '{"command": "false"}'],
}


def test_enqueue_usage_errors_exit_2_and_write_nothing(sqlite_cli):
    def check(args: list[str]) -> None:
        assert_error(sqlite_cli("enqueue", *args, input='{"command": "true"}\n'), 2)

    each_case({name: (args,) for name, args in USAGE_ERRORS.items()}, check)
    assert all_jobs(sqlite_cli) == []


def test_enqueued_spec_round_trips_through_show(cli):
    spec = {
        "id": "full",
        "command": "printf '%s\\n' \"a b\"",
        "max_retries": 0,
        "priority": 10,
        "queue": "q-1",
        "timeout": 0,
        "run_at": "2031-05-06T07:08:09Z",
    }
    assert enqueue(cli, **spec) == "full"
    job = cli.json("show", "full")
    for key in ("id", "command", "max_retries", "priority", "queue", "timeout"):
        assert job[key] == spec[key], key
    assert utc_time(job["run_at"]) == datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert json.loads(json.dumps(job)) == job


# Issue 3: `enqueue` runs in shell loops, so it imports nothing it does not use: no other
# command (their modules in queuectl/cli/, formatting), nothing of the worker side, no
# python-dotenv without a .env, no PostgreSQL driver for a SQLite store, and not `locale`,
# which click's gettext lookup of its help option's text would import.
NOT_ON_THE_ENQUEUE_PATH = (
    "queuectl.cli.worker",
    "queuectl.cli.jobs",
    "queuectl.cli.dlq",
    "queuectl.cli.config",
    "queuectl.cli.options",
    "queuectl.formatting",
    "queuectl.worker",
    "queuectl.runner",
    "queuectl.spawning",
    "queuectl.runlogs",
    "queuectl.process_groups",
    "queuectl.supervisor",
    "queuectl.job_run",
    "queuectl.watching",
    "queuectl.cli.wait",
    "queuectl.store.chaining",  # only a spec with `after` or `unique_key` needs it
    "queuectl.cli.queues",
    "queuectl.store.queue_settings",
    "queuectl.store.sqlite_admin_sql",
    "queuectl.store.postgres_admin_sql",
    "queuectl.store.postgres_claim_sql",
    "queuectl.cli.schedule",
    "queuectl.web",  # the dashboard and metrics, and everything they import
    "queuectl.cli.metrics",
    "queuectl.store.run_stats",
    "prometheus_client",
    "queuectl.schedules",
    "queuectl.scheduling",
    "queuectl.worker_rows",
    "queuectl.cron",
    "queuectl.store.schedule_ops",
    "cronsim",
    "zoneinfo",
    "queuectl.cli.prune",
    "queuectl.store.pruning",
    "queuectl.store.sqlite_admin_sql",
    "queuectl.cli.web",
    "queuectl.store.activity",
    "starlette",
    "uvicorn",
    "jinja2",
    "dotenv",
    "psycopg",
    "locale",
)


def test_enqueue_imports_only_what_it_needs(sqlite_cli):
    result = sqlite_cli("enqueue", "--command", "true", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"queuectl.cli", "queuectl.cli.enqueue", "queuectl.store.sqlite"} <= imported
    unwanted = {
        name
        for name in imported
        for root in NOT_ON_THE_ENQUEUE_PATH
        if name == root or name.startswith(root + ".")
    }
    assert not unwanted, unwanted
