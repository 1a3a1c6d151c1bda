"""`queuectl schedule add|list|show|pause|resume|remove` (SPEC §8) through the command line:
outputs, the JSON fields, refused input (exit 1, nothing written), usage errors (exit 2), and
burst workers leaving schedules alone."""

from __future__ import annotations

from clikit import all_jobs, assert_error, assert_ok, each_case, run_burst, utc_time

from queuectl import cron
from queuectl.store import open_store

FIELDS = [
    "name",
    "cron",
    "tz",
    "command",
    "queue",
    "priority",
    "max_retries",
    "timeout",
    "overlap",
    "paused",
    "next_run_at",
    "last_enqueued_at",
]


def test_add_then_list_and_show_as_json_and_as_text(cli):
    out = assert_ok(
        cli("schedule", "add", "nightly", "30 2 * * *", "--command", "./backup.sh", "--tz",
            "Europe/Berlin", "--queue", "ops", "--priority", "-1", "--max-retries", "0",
            "--timeout", "600", "--overlap", "skip")
    )  # fmt: skip
    assert out.startswith("added schedule nightly; next run 20"), out
    assert_ok(cli("schedule", "add", "hourly", "@hourly", "-c", "date"))

    listed = cli.json("schedule", "list")
    assert [list(item) for item in listed] == [FIELDS, FIELDS]
    hourly, nightly = listed
    assert nightly == {
        **nightly,
        "name": "nightly",
        "cron": "30 2 * * *",
        "tz": "Europe/Berlin",
        "command": "./backup.sh",
        "queue": "ops",
        "priority": -1,
        "max_retries": 0,
        "timeout": 600.0,
        "overlap": "skip",
        "paused": False,
        "last_enqueued_at": None,
    }
    assert (hourly["max_retries"], hourly["timeout"], hourly["queue"]) == (None, None, "default")
    assert (hourly["tz"], hourly["overlap"]) == ("UTC", "allow")
    first = utc_time(nightly["next_run_at"])
    assert first.astimezone(cron.zone("Europe/Berlin")).strftime("%H:%M") in ("02:30", "03:00")

    shown = cli.json("schedule", "show", "nightly")
    assert list(shown) == [*FIELDS, "next_runs"]
    runs = [utc_time(text) for text in shown["next_runs"]]
    assert len(runs) == 5 and runs == sorted(set(runs))
    assert runs[0] == first

    text = assert_ok(cli("schedule", "list"))
    header, *rows = text.splitlines()
    assert header.split()[:3] == ["NAME", "CRON", "TZ"]
    assert [row.split()[0] for row in rows] == ["hourly", "nightly"]
    details = assert_ok(cli("schedule", "show", "nightly")).splitlines()
    assert "tz:               Europe/Berlin" in details
    assert "paused:           no" in details
    at = details.index("next runs:")
    assert [line.split()[0] for line in details[at + 1 :]] == shown["next_runs"]
    assert all("CET" in line or "CEST" in line for line in details[at + 1 :])


def test_pause_resume_remove(cli):
    assert_ok(cli("schedule", "add", "s", "*/5 * * * *", "-c", "true"))
    assert assert_ok(cli("schedule", "pause", "s")) == "paused schedule s\n"
    shown = cli.json("schedule", "show", "s")
    assert shown["paused"] is True and shown["next_run_at"] is None
    assert len(shown["next_runs"]) == 5  # what it would run: said paused in the text form
    assert "next runs (paused: none until resumed):" in assert_ok(cli("schedule", "show", "s"))
    assert "  paused  " in assert_ok(cli("schedule", "list")).splitlines()[1]
    out = assert_ok(cli("schedule", "resume", "s"))
    assert out.startswith("resumed schedule s; next run 20"), out
    assert cli.json("schedule", "show", "s")["paused"] is False
    assert assert_ok(cli("schedule", "remove", "s")) == "removed schedule s\n"
    assert cli.json("schedule", "list") == []
    result = cli("schedule", "list")
    assert result.returncode == 0 and result.stdout == "" and "no schedules" in result.stderr
    for verb in ("show", "pause", "resume", "remove"):
        assert_error(cli("schedule", verb, "s"), 1, mentions=["no schedule named 's'"])


def test_bad_input_is_refused_with_exit_1_and_nothing_written(cli):
    assert_ok(cli("schedule", "add", "taken", "@daily", "-c", "true"))
    before = cli.json("schedule", "list")

    def refused(args: list[str], mentions: list[str]) -> None:
        assert_error(cli("schedule", "add", *args), 1, mentions=mentions)

    each_case(
        {
            "invalid cron": (["x", "61 * * * *", "-c", "true"], ["minute"]),
            "six fields": (["x", "0 * * * * *", "-c", "true"], ["5 fields"]),
            "never fires": (["x", "0 0 30 2 *", "-c", "true"], ["day-of-month"]),
            "unknown nickname": (["x", "@reboot", "-c", "true"], ["nickname"]),
            "unknown zone": (["x", "@daily", "-c", "true", "--tz", "Mars/Base"], ["time zone"]),
            "name in use": (["taken", "@hourly", "-c", "other"], ["already exists"]),
            "name with @": (["a@b", "@daily", "-c", "true"], ["'@'"]),
            "name too long": (["n" * 101, "@daily", "-c", "true"], ["limit is 100"]),
            "name with a newline": (["a\nb", "@daily", "-c", "true"], ["control"]),
            "negative timeout": (["x", "@daily", "-c", "true", "--timeout", "-1"], ["timeout"]),
            "timeout nan": (["x", "@daily", "-c", "true", "--timeout", "nan"], ["finite"]),
            "negative retries": (["x", "@daily", "-c", "true", "--max-retries", "-1"], ["max_"]),
            "empty command": (["x", "@daily", "-c", "  "], ["command"]),
            "empty queue": (["x", "@daily", "-c", "true", "--queue", ""], ["queue"]),
        },
        refused,
    )
    assert cli.json("schedule", "list") == before


def test_usage_errors_exit_2(cli):
    for args in (
        ["add", "x", "@daily"],  # no --command
        ["add", "x"],  # no CRON
        ["add", "x", "@daily", "-c", "true", "--overlap", "sometimes"],
        ["add", "x", "@daily", "-c", "true", "--timeout", "soon"],
        ["add", "x", "0", "2", "*", "*", "*", "-c", "true"],  # CRON unquoted
        ["pause"],
    ):
        assert_error(cli("schedule", *args), 2)
    assert cli.json("schedule", "list") == []


def test_burst_workers_do_not_fire_schedules(cli):
    assert_ok(cli("schedule", "add", "due", "@yearly", "-c", "true"))
    store = open_store(cli.db)
    try:
        table = "queuectl_schedules" if cli.db.startswith("postgres") else "schedules"
        past = cron.latest("@yearly", "UTC", store.now(), 0)  # due since last New Year
        store._transaction(lambda tx: tx.execute(f"UPDATE {table} SET next_run_at = {past!r}", {}))
    finally:
        store.close()
    run_burst(cli)
    assert all_jobs(cli) == []
    assert cli.json("schedule", "show", "due")["next_run_at"] is not None  # still due
