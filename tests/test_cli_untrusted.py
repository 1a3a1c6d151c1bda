"""Untrusted ids and queue names (SPEC §2, §5): accepted as data, never as paths or shell text,
and never able to break a line of `list` / `show` output."""

from __future__ import annotations

import json

from clikit import (
    all_jobs,
    assert_error,
    assert_ok,
    each_case,
    enqueue,
    files_under,
    job_ids,
    run_burst,
)

NASTY_IDS = [
    "../escape",
    "../../escape-up",
    "a/b/../../c",
    "..",
    ".",
    "a/b",
    "a_b",  # the same file-safe spelling as "a/b": their logs must stay apart
    "a?b",
    "x\\y",
    "$(touch pwned1)",
    "`touch pwned2`",
    "x; touch pwned3",
    "x && touch pwned4 #",
    'it\'s "quoted"',
    "<script>alert('x')</script>",
    "%s%n%x",
    "*",
    "-dash",
    "ünïcödé ✓ 名前",
    "i" * 200,
]


# Looked up one by one (the rest are checked through `list`): paths, colliding file names,
# shell text, quotes, a leading dash and the longest id allowed.
LOOKED_UP = ["../escape", "a/b", "a_b", "a?b", "$(touch pwned1)", "-dash"]
LOOKED_UP += ['it\'s "quoted"', "i" * 200]


def field_names(lines: list[str]) -> list[str]:
    """The `name:` heads of `show` output (indented lines belong to the runs table)."""
    return [line.split(":")[0] for line in lines if not line.startswith(" ")]


def test_nasty_ids_are_only_data(sqlite_cli, tmp_path):
    # An absolute path, in a place a regression could write to harmlessly (tests run as root).
    absolute = f"{tmp_path.parent}/abs-escape"
    ids = [*NASTY_IDS, absolute]
    command = 'printf "%s\\n" "$QUEUECTL_JOB_ID"'
    lines = "".join(json.dumps({"id": job_id, "command": command}) + "\n" for job_id in ids)
    assert assert_ok(sqlite_cli("enqueue", "-", input=lines)).splitlines() == ids
    run_burst(sqlite_cli)
    jobs = all_jobs(sqlite_cli)
    assert [(job["id"], job["state"]) for job in jobs] == [(i, "completed") for i in ids]

    plain = assert_ok(sqlite_cli("show", "--", "a_b")).splitlines()
    for job_id in [*LOOKED_UP, absolute]:
        # Each job's log holds its own output: ids never collide as file names.
        assert assert_ok(sqlite_cli("logs", "--", job_id)) == job_id + "\n"
        # `show` prints the same lines, field by field, whatever the id.
        shown = assert_ok(sqlite_cli("show", "--", job_id)).splitlines()
        assert len(shown) == len(plain), shown
        assert field_names(shown) == field_names(plain)

    # No file anywhere but the store and its logs folder; nothing ran through a shell.
    others = {
        name
        for name in files_under(tmp_path)
        if not name.startswith("logs/") and not name.startswith("queue.db")
    }
    assert others == set()
    # Where "../../escape-up" and the absolute id would have put their logs if used as paths.
    assert list(tmp_path.parent.glob("escape-up*")) == []
    assert list(tmp_path.parent.glob("abs-escape*")) == []
    logs = tmp_path / "logs"
    assert {path.parent for path in logs.rglob("*") if path.is_file()} == {logs}
    assert len(list(logs.iterdir())) == len(ids)

    # One table line per job, a header, and nothing broken apart.
    lines = assert_ok(sqlite_cli("list", "--limit", "0")).splitlines()
    assert len(lines) == 1 + len(ids)
    assert all("completed" in line for line in lines[1:])


BAD_IDS = {
    "newline": "a\nb",
    "carriage return": "a\rb",
    "tab": "a\tb",
    "escape sequence": "a\x1b[31mred",
    "line separator": "a\u2028b",
    "NUL": "a\x00b",
    "201 characters": "i" * 201,
    "empty": "",
}


def test_bad_ids_and_queue_names_are_refused(sqlite_cli):
    def check(field: str, bad: str) -> None:
        spec = json.dumps({field: bad, "command": "true"})
        assert_error(sqlite_cli("enqueue", spec), 1, mentions=[field])
        if "\x00" not in bad:  # a NUL cannot be passed as a program argument at all
            flag = sqlite_cli("enqueue", "--command", "true", f"--{field}", bad)
            assert_error(flag, 1, mentions=[field])

    cases = {f"id {name}": ("id", bad) for name, bad in BAD_IDS.items()}
    cases.update({f"queue {name}": ("queue", bad) for name, bad in BAD_IDS.items()})
    each_case(cases, check)
    assert all_jobs(sqlite_cli) == []


def test_bad_id_is_refused_on_every_backend(cli):
    assert_error(cli("enqueue", json.dumps({"id": "a\nb", "command": "true"})), 1, ["id"])
    assert_error(cli("enqueue", json.dumps({"id": "i" * 201, "command": "true"})), 1, ["id"])
    assert all_jobs(cli) == []


def test_nasty_queue_names_are_only_data(cli):
    names = ["../q; rm -rf /", "q" * 200, "<b>bold</b>", "it's"]
    for index, name in enumerate(names):
        enqueue(cli, id=f"j{index}", command="true", queue=name)
    for index, name in enumerate(names):
        assert job_ids(cli, "--queue", name) == [f"j{index}"]
        assert cli.json("show", f"j{index}")["queue"] == name
    assert len(assert_ok(cli("list")).splitlines()) == 1 + len(names)


RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x7f", "\x9b", "\u2028", "\u202e")


def test_error_messages_escape_control_characters_from_paths_and_servers(cli, tmp_path):
    # A store path, or a database name that the server quotes back, can carry terminal escapes.
    hostile = "x\x1b[31mRED\x07\r\x7f\x9b\u2028\u202e"
    if cli.db.endswith(".db"):
        target = str(tmp_path / hostile / "q.db")
    else:
        from urllib.parse import quote

        base, _, _ = cli.db.partition("?")
        target = base.rsplit("/", 1)[0] + "/" + quote(hostile, safe="")
    result = cli("--db", target, "status")
    assert result.returncode == 1, result.stderr
    for raw in RAW_CONTROLS:
        assert raw not in result.stderr, repr(result.stderr)
    assert "\\x1b[31mRED\\x07" in result.stderr, result.stderr
