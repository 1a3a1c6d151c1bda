"""Bad input through the real CLI (hypothesis): specs, ids, queue names, config and argv.

Properties, whatever the input:
- never a Python traceback (in-process: `catch_exceptions=False`, so any exception fails the
  test; in subprocesses: no "Traceback" on stderr), and exit status 0, 1 or 2;
- on failure nothing half-written: the jobs (ids, states, attempts) and the config are as
  before, nothing on stdout, and for status 1 a one-line message;
- accepted ids and queue names are only data: `--json` output parses and round-trips them,
  table output (`list`, `show`, `status`, `dlq list`, `config list`) keeps one line per job
  and holds no raw control or escape character, SQL in them is stored and matched literally
  (on every backend), and a burst worker running their jobs writes nothing outside the store's
  `logs/` folder;
- accepted config values can be used (an enqueue that relies on them succeeds).

A subprocess costs 60-100 ms, so most examples run in-process through click's CliRunner, each
with a fresh SQLite store in a folder of its own; a few subprocess examples cover what only a
real process shows: argv bytes that are not UTF-8, stdin bytes, and a real burst worker (the
only place `worker start` runs, always with --burst and one worker). About 20 s in all.
QUEUECTL_TEST_EXAMPLES=N scales every test's number of examples by N/100 (a soak).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import base_env
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from storekit import add

from queuectl.cli import cli
from queuectl.config import KEYS
from queuectl.models import MAX_ID_LENGTH, Outcome, RunResult
from queuectl.specs import SpecError, check_encodable, check_name
from queuectl.store import ClaimRequest, open_store

SCALE = int(os.environ.get("QUEUECTL_TEST_EXAMPLES") or 100) / 100


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# ---------------------------------------------------------------------------------------------
# inputs

NASTY_TEXT = [
    # paths
    "../escape",
    "../../etc/passwd",
    "..",
    ".",
    "/tmp/abs-escape",
    "a/b/../../c",
    "a\\b\\..\\..\\c",
    "C:\\Windows\\x",
    "CON",
    "nul",
    "-",
    "--",
    "-h",
    "--help",
    # SQL
    "x'); DROP TABLE jobs; --",
    "x'); DROP TABLE queuectl_jobs; --",
    "' OR '1'='1",
    '" OR ""="',
    "%",
    "_",
    "a%b_c",
    # shell
    "$(touch pwned)",
    "`touch pwned`",
    "x; touch pwned",
    "x && touch pwned #",
    "| cat /etc/passwd",
    "$HOME",
    "'",
    '"',
    'it\'s "quoted"',
    # markup and formats
    "<script>alert(1)</script>",
    "<b>bold</b>&amp;",
    "%s%n%x",
    "{}",
    "{0}",
    "null",
    # control characters and escapes
    "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "\x1b[2J",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x00b",
    "\x7f",
    "\x9b31m",
    "a\u2028b",
    "a\u2029b",
    "\u202egnp.exe",
    "\u200b",
    "\ufeff",
    # unicode
    "ünïcödé ✓ 名前",
    "🙂" * 3,
    "\ud800",
    "a\udcffb",
    # sizes
    "",
    " ",
    "i" * MAX_ID_LENGTH,
    "i" * (MAX_ID_LENGTH + 1),
    "x" * 10_000,
    "\n" * 50,
]

# Every character, surrogates and controls included.
any_char = st.characters(codec=None, categories=None)
nasty_text = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(any_char, max_size=20),
    st.tuples(st.sampled_from(NASTY_TEXT), st.text(any_char, max_size=5)).map("".join),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, -1, 0]),
    st.floats(),
    nasty_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=6,
)

TIMES = [
    "2030-01-01T00:00:00Z",
    "2020-01-01T00:00:00+05:00",
    "2030-01-01",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "tomorrow",
    "",
]
numbers = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from([2**63, -1, 0, 1e10, 1e11, 10**400]),
)
FIELDS = {
    "command": st.one_of(st.just("true"), nasty_text, json_values),
    "id": st.one_of(nasty_text, json_values),
    "queue": st.one_of(nasty_text, json_values),
    "max_retries": st.one_of(numbers, json_values),
    "priority": st.one_of(numbers, json_values),
    "run_at": st.one_of(st.sampled_from(TIMES), st.datetimes().map(str), json_values),
    "delay": st.one_of(numbers, json_values),
    "timeout": st.one_of(numbers, json_values),
}
# Mostly specs that look right, with some fields wrong and now and then unknown ones.
spec_objects = st.fixed_dictionaries(
    {"command": st.one_of(st.just("true"), FIELDS["command"])},
    optional={name: strategy for name, strategy in FIELDS.items() if name != "command"},
).flatmap(
    lambda spec: st.one_of(
        st.just(spec),
        st.dictionaries(nasty_text, json_values, min_size=1, max_size=1).map(
            lambda extra: {**spec, **extra}
        ),
    )
)


def to_json(value, ensure_ascii: bool) -> str:
    """JSON text, with lone surrogates as \\ud800 escapes (or, raw, as the CLI gets them)."""
    return json.dumps(value, ensure_ascii=ensure_ascii)


RAW_SPECS = [
    "",
    " ",
    "\x00",
    "[]",
    "null",
    "42",
    '"command"',
    "{",
    '{"command": "true"',
    '{"command": "true"} trailing',
    '{"command": "true", "command": "false"}',
    '{"command": NaN}',
    '{"command": "true", "delay": Infinity}',
    '{"command": "true", "priority": 1e400}',
    '{"command": "true", "priority": 1' + "0" * 5000 + "}",
    '{"command": "true", "id": "\\ud800"}',
    '{"command": "true", "queue": "\\udfff\\ud800"}',
    '{"command": "\\u0000"}',
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"command": "' + "x" * 100_000 + '"}',
    "\ufeff{}",
]
spec_texts = st.one_of(
    st.builds(to_json, spec_objects, st.booleans()),
    st.builds(to_json, json_values, st.booleans()),
    st.sampled_from(RAW_SPECS),
    st.text(any_char, max_size=30),
)


def good_name(text: str) -> bool:
    try:
        check_name(text, "id", MAX_ID_LENGTH)
    except SpecError:
        return False
    return True


def good_command(text: str) -> bool:
    try:
        check_encodable(text, "command")
    except SpecError:
        return False
    return bool(text.strip()) and "\x00" not in text


# Ids and queue names the CLI accepts, as nasty as allowed.
good_names = nasty_text.filter(good_name)


# ---------------------------------------------------------------------------------------------
# running the CLI


class Cli:
    """The CLI in this process against one store of its own, and the store's contents."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = str(folder / "queue.db")
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | bytes | None = None):
        result = self.runner.invoke(
            cli, ["--db", self.db, *args], input=input, catch_exceptions=False
        )
        assert result.exit_code in (0, 1, 2), describe(args, result)
        assert "Traceback" not in result.stderr, describe(args, result)
        return result

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self(*args, input=input)
        assert result.exit_code == 0, describe(args, result)
        return result.stdout

    def json(self, *args: str):
        """The parsed output of a command given --json (before a `--`, if there is one)."""
        at = args.index("--") if "--" in args else len(args)
        return json.loads(self.ok(*args[:at], "--json", *args[at:]))

    def snapshot(self) -> tuple:
        """Everything a failed command must leave alone: jobs and config."""
        store = open_store(self.db)
        try:
            jobs = [(j.id, j.state, j.attempts, j.queue, j.command) for j in store.list_jobs()]
            return jobs, store.config_items()
        finally:
            store.close()


def describe(args, result) -> str:
    shown = [arg if len(arg) < 200 else arg[:200] + "…" for arg in args]
    return (
        f"argv {shown!r} -> exit {result.exit_code}\n"
        f"stdout: {result.stdout[:2000]!r}\nstderr: {result.stderr[:2000]!r}"
    )


def check_refused(result, args=()) -> None:
    """A failure as SPEC §4 wants it: nothing on stdout; for status 1 one line on stderr."""
    assert result.stdout == "", describe(args, result)
    if result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, describe(args, result)


def printable_lines(text: str) -> list[str]:
    """Table output: every character printable (no ESC, CR, NUL, …) apart from line ends."""
    assert all(ch.isprintable() for ch in text.replace("\n", "")), repr(text[:2000])
    return text.splitlines()


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch):
    """Makes a Cli with an empty store of its own, per hypothesis example."""
    for name in list(os.environ):
        if name.startswith("QUEUECTL_") and name != "QUEUECTL_TEST_EXAMPLES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUEUECTL_SQLITE_SYNCHRONOUS", "NORMAL")  # no fsync per example
    monkeypatch.setenv("QUEUECTL_BUSY_TIMEOUT", "5")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)

    def make() -> Cli:
        return Cli(Path(tempfile.mkdtemp(dir=tmp_path)))

    return make


def seeded(make) -> Cli:
    """A store with a job in several states, for commands that look jobs up or change them."""
    runner = make()
    seed_store(runner.db)
    return runner


def seed_store(db: str) -> None:
    store = open_store(db)
    add(store, *SEED_IDS, command="true", defaults={"max-retries": 0, "job-timeout": 300.0})
    for name, fate in (("j-dead", "dead"), ("j-done", "done"), ("j-running", "running")):
        claim = store.claim(ClaimRequest("w", "host", None, 3600.0))
        assert claim is not None and claim.job.id == name
        if fate == "dead":
            store.finish(claim, RunResult(Outcome.EXITED, 3, "exit 3"), None)
        elif fate == "done":
            store.finish(claim, RunResult(Outcome.EXITED, 0, None), None)
    store.close()


SEED_IDS = ["j-dead", "j-done", "j-running", "j-pending"]


# ---------------------------------------------------------------------------------------------
# enqueue


@fuzz_settings(300)
@given(text=spec_texts)
@example(text='{"command": "true", "id": "x\'); DROP TABLE jobs; --"}')
@example(text='{"command": "true", "id": "\\ud800"}')
@example(text="[" * 100_000)
@example(text='{"command": "true", "timeout": 1' + "0" * 400 + "}")  # was an OverflowError
@example(text='{"command": "true", "delay": -1' + "0" * 400 + "}")
def test_enqueue_spec_json(fresh, text: str) -> None:
    if text == "-":
        return  # bulk from stdin: tested below
    run = fresh()
    result = run("enqueue", "--", text)
    if result.exit_code != 0:
        check_refused(result)
        assert run.snapshot()[0] == [], "a refused spec wrote a job"
        return
    job_id = result.stdout.removesuffix("\n")
    assert result.stdout == job_id + "\n" and "\n" not in job_id
    spec = json.loads(text)  # accepted, so it was a JSON object
    job = run.json("show", "--", job_id)
    assert job["id"] == (job_id if spec.get("id") is None else spec["id"])
    assert job["command"] == spec["command"]
    assert job["queue"] == ("default" if spec.get("queue") is None else spec["queue"])
    assert [j["id"] for j in run.json("list")] == [job_id]


flag_values = st.one_of(nasty_text, st.sampled_from(["0", "-1", "1e999", "nan", "-inf", "1e10"]))
flag_names = [
    "--id",
    "--queue",
    "-q",
    "--max-retries",
    "--priority",
    "--run-at",
    "--delay",
    "--timeout",
]


@fuzz_settings(200)
@given(
    command=st.one_of(st.just("true"), nasty_text),
    flags=st.lists(st.tuples(st.sampled_from(flag_names), flag_values), max_size=3),
)
def test_enqueue_with_flags(fresh, command: str, flags) -> None:
    run = fresh()
    args = ["enqueue", "--command", command]
    for name, value in flags:
        args += [name, value]
    result = run(*args)
    jobs = run.snapshot()[0]
    if result.exit_code != 0:
        check_refused(result, args)
        assert jobs == [], "a refused enqueue wrote a job"
        return
    assert len(jobs) == 1
    job = run.json("show", "--", result.stdout.removesuffix("\n"))
    last = {("--queue" if name == "-q" else name): value for name, value in flags}
    if "--id" in last:
        assert job["id"] == last["--id"]
    assert job["queue"] == last.get("--queue", "default")
    assert job["command"] == command


@fuzz_settings(100)
@given(
    lines=st.lists(
        st.one_of(st.builds(to_json, spec_objects, st.booleans()), st.sampled_from(RAW_SPECS)),
        max_size=5,
    ),
    blank=st.booleans(),
)
def test_bulk_enqueue_is_all_or_nothing(fresh, lines: list[str], blank: bool) -> None:
    run = fresh()
    lines = [line for line in lines if "\n" not in line and "\r" not in line]
    text = ("\n\n" if blank else "\n").join(lines) + "\n"
    # Bytes, as a pipe gives them: a lone surrogate becomes bytes that are not UTF-8.
    result = run("enqueue", "-", input=text.encode("utf-8", "surrogatepass"))
    jobs = [job[0] for job in run.snapshot()[0]]
    if result.exit_code != 0:
        check_refused(result)
        assert jobs == [], "a refused bulk enqueue wrote some jobs"
        return
    specs = [line for line in lines if line.strip()]
    assert result.stdout.splitlines() == jobs
    assert len(jobs) == len(specs)


# ---------------------------------------------------------------------------------------------
# ids and queue names: only data


def check_tables(run: Cli, job_count: int) -> None:
    """Table output keeps one line per job and drives no terminal."""
    lines = printable_lines(run.ok("list", "--limit", "0"))
    assert len(lines) == 1 + job_count, lines
    printable_lines(run.ok("status"))
    printable_lines(run.ok("dlq", "list"))
    printable_lines(run.ok("config", "list"))


@fuzz_settings(150)
@given(job_id=nasty_text, queue=nasty_text, command=nasty_text)
@example(job_id="x'); DROP TABLE jobs; --", queue="'; DELETE FROM jobs; --", command="true")
@example(job_id="\x1b[31mred", queue="q", command="true")
@example(job_id="a\udcffb", queue="q", command="true")
def test_ids_and_queue_names_are_only_data(fresh, job_id: str, queue: str, command: str) -> None:
    if job_id == "other":
        return
    run = fresh()
    spec = {"id": job_id, "queue": queue, "command": command}
    result = run("enqueue", json.dumps(spec))
    if result.exit_code != 0:
        check_refused(result)
        assert run.snapshot()[0] == []
        valid = good_name(job_id) and good_name(queue) and good_command(command)
        assert not valid, f"a valid spec was refused: {describe(['enqueue'], result)}"
        return
    assert result.stdout == job_id + "\n"
    shown = run.json("show", "--", job_id)
    assert (shown["id"], shown["queue"], shown["command"]) == (job_id, queue, command)
    assert [job["id"] for job in run.json("list", f"--queue={queue}")] == [job_id]
    assert run.json("status")["jobs"]["pending"] == 1

    # `show` prints one line per field, whatever the id, queue and command hold.
    detail = printable_lines(run.ok("show", "--", job_id))
    assert len(detail) == len(shown) - 1  # every field but `runs`
    check_tables(run, 1)

    # The store keeps working: another job, a cancel, and the names still match literally.
    assert run.ok("enqueue", "--command", "true", "--id", "other").strip() == "other"
    printable_lines(run.ok("cancel", "--", job_id))
    assert run.json("show", "--", job_id)["state"] == "canceled"
    assert [job["id"] for job in run.json("list", "--state", "canceled")] == [job_id]
    assert run.json("show", "other")["state"] == "pending"
    check_tables(run, 2)


@fuzz_settings(150)
@given(
    command=st.sampled_from([("show",), ("logs",), ("cancel",), ("dlq", "retry"), ("list",)]),
    name=nasty_text,
    json_output=st.booleans(),
)
@example(command=("show",), name="j-dead' OR '1'='1", json_output=False)
@example(command=("cancel",), name="%", json_output=False)
@example(command=("dlq", "retry"), name="j-%", json_output=False)
@example(command=("list",), name="\udcff", json_output=False)
def test_looking_up_nasty_names_changes_nothing(
    fresh, command: tuple, name: str, json_output: bool
) -> None:
    run = seeded(fresh)
    before = run.snapshot()
    json_flag = ["--json"] if json_output and command[0] in ("show", "list") else []
    if command[0] == "list":
        args = ["list", f"--queue={name}", *json_flag]
    else:
        args = [*command, *json_flag, "--", name]
    result = run(*args)
    assert run.snapshot() == before  # no such job, so nothing to change
    if command[0] == "list":
        if result.exit_code == 0:
            assert (json.loads(result.stdout) if json_output else result.stdout) in ([], "")
        return
    assert result.exit_code == 1, describe(args, result)
    check_refused(result, args)


# ---------------------------------------------------------------------------------------------
# config

config_keys = st.one_of(st.sampled_from(sorted(KEYS)), nasty_text)
config_values = st.one_of(
    st.sampled_from(["0", "1", "2.5", " 3 ", "-1", "1e999", "nan", "inf", "1e3", "0x10", "1_0"]),
    st.sampled_from(["007", "2.50", "1.000", "00.0", "٣", "３", "+5", ".5", "5.", "\u30005"]),
    st.integers().map(str),
    st.floats().map(str),
    nasty_text,
)


@fuzz_settings(200)
@given(key=config_keys, value=config_values)
@example(key="max-retries", value="99999999999999999999999")
@example(key="max-retries", value="3\x00")
@example(key="lease-seconds", value="0")
@example(key="job-timeout", value="1e11")
def test_config_set_is_checked_and_atomic(fresh, key: str, value: str) -> None:
    run = fresh()
    before = run.snapshot()
    result = run("config", "set", "--", key, value)
    if result.exit_code != 0:
        check_refused(result)
        assert run.snapshot() == before, "a refused config set changed the config"
        return
    assert key in KEYS
    # SPEC §6: plain ASCII decimal numbers only, stored and shown in canonical form.
    typed = value.strip(" \t\n\r\f\v")
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", typed), f"accepted {value!r}"
    shown = run.ok("config", "get", key).removesuffix("\n")
    assert re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[0-9]*[1-9]))?", shown), (value, shown)
    assert float(shown) == float(typed) and ("." in shown) == ("." in typed), (value, shown)
    entries = run.json("config", "list")
    assert entries[key] == {"value": shown, "source": "store"}
    # Whatever was accepted can be used: enqueue reads max-retries and job-timeout.
    assert run("enqueue", "--command", "true").exit_code == 0
    printable_lines(run.ok("config", "list"))


@fuzz_settings(100)
@given(key=config_keys, verb=st.sampled_from(["get", "unset"]))
def test_config_get_and_unset_of_any_key(fresh, key: str, verb: str) -> None:
    run = fresh()
    before = run.snapshot()
    result = run("config", verb, "--", key)
    if key in KEYS:
        assert result.exit_code == 0, describe([verb, key], result)
    else:
        assert result.exit_code == 1, describe([verb, key], result)
        check_refused(result)
    assert run.snapshot() == before


# ---------------------------------------------------------------------------------------------
# any argv, any command

COMMANDS = [
    [],
    ["enqueue"],
    ["status"],
    ["list"],
    ["show"],
    ["logs"],
    ["cancel"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "retry"],
    ["config"],
    ["config", "list"],
    ["config", "get"],
    ["config", "set"],
    ["config", "unset"],
    ["worker"],
    ["worker", "stop"],
]
OPTIONS = [
    "--json",
    "--state",
    "--queue",
    "-q",
    "--limit",
    "--all",
    "--command",
    "-c",
    "--id",
    "--max-retries",
    "--priority",
    "--run-at",
    "--delay",
    "--timeout",
    "--count",
    "-n",
    "--burst",
    "--quiet",
    "--help",
    "-h",
    "--version",
    "--",
    "-",
    "--no-such-option",
]
TOKENS = [
    *SEED_IDS,
    *KEYS,
    "pending",
    "dead",
    "processing",
    "0",
    "-1",
    "3",
    "1e999",
    "nan",
    "99999999999999999999999",
    '{"command": "true"}',
    '{"command": "true", "id": "j-dead"}',
]
argv_tokens = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(TOKENS), nasty_text)


@fuzz_settings(300)
@given(command=st.sampled_from(COMMANDS), tokens=st.lists(argv_tokens, max_size=5))
@example(command=["list"], tokens=["--limit", "99999999999999999999999"])
@example(command=["dlq", "retry"], tokens=["j-dead", "j-dead"])
@example(command=["worker", "stop"], tokens=["--timeout", "nan"])
def test_any_argv(fresh, command: list[str], tokens: list[str]) -> None:
    run = seeded(fresh)
    before = run.snapshot()
    args = [*command, *tokens]
    result = run(*args)
    if result.exit_code != 0:
        check_refused(result, args)
        assert run.snapshot() == before, f"a failed command changed the store: {args!r}"


# ---------------------------------------------------------------------------------------------
# SQL injection on every backend


@fuzz_settings(25)
@given(
    job_id=st.sampled_from(
        [
            "x'); DROP TABLE jobs; --",
            "x'); DROP TABLE queuectl_jobs; --",
            "'; UPDATE queuectl_jobs SET state='dead'; --",
            "' OR 1=1 --",
            '"; DELETE FROM jobs; --',
            "%",
            "_",
            "\\",
            "$1",
            "%(job)s",
            ":job",
            "?",
        ]
    ),
    queue=st.sampled_from(["' OR '1'='1", "%", "_", "%(queue)s", ":q0", "?", "default"]),
    salt=st.integers(0, 10**9),
)
def test_sql_in_names_is_stored_literally(db_target: str, tmp_path: Path, job_id, queue, salt):
    env: dict = {name: None for name in os.environ if name.startswith("QUEUECTL_")}
    env.update(base_env(db_target, tmp_path), QUEUECTL_SQLITE_SYNCHRONOUS="NORMAL")
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code in (0, 1), describe(args, result)
        return result

    job_id = f"{job_id}-{salt}"  # one store for every example: ids stay unique
    before = json.loads(run("list", "--limit", "0", "--json").stdout)
    spec = json.dumps({"id": job_id, "queue": queue, "command": "true"})
    added = run("enqueue", spec)
    if added.exit_code == 1:  # the same example again (hypothesis replays): a duplicate
        assert "already exists" in added.stderr
        return
    assert added.stdout == job_id + "\n"
    after = json.loads(run("list", "--limit", "0", "--json").stdout)
    assert [job["id"] for job in after] == [job["id"] for job in before] + [job_id]
    assert json.loads(run("show", "--json", "--", job_id).stdout)["queue"] == queue
    in_queue = json.loads(run("list", f"--queue={queue}", "--limit", "0", "--json").stdout)
    assert {job["queue"] for job in in_queue} == {queue}
    assert job_id in {job["id"] for job in in_queue}
    assert run("cancel", "--", job_id).exit_code == 0
    assert json.loads(run("show", "--json", "--", job_id).stdout)["state"] == "canceled"
    # Nothing else changed.
    now = json.loads(run("list", "--limit", "0", "--json").stdout)
    assert [job for job in now if job["id"] != job_id] == before


# ---------------------------------------------------------------------------------------------
# real processes


def run_process(args: list, env: dict, cwd: Path, stdin: bytes = b""):
    result = subprocess.run(
        [sys.executable, "-m", "queuectl", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in result.stderr, (args, stderr)
    assert result.returncode in (0, 1, 2), (args, result.returncode, stderr)
    return result


def process_env(db: str, home: Path) -> dict:
    env = base_env(db, home)
    env.update(QUEUECTL_SQLITE_SYNCHRONOUS="NORMAL", QUEUECTL_BACKOFF_BASE="0")
    return env


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@fuzz_settings(6)
@given(
    jobs=st.lists(
        st.tuples(good_names, good_names), min_size=1, max_size=6, unique_by=lambda j: j[0]
    ),
)
@example(jobs=[("../../escape-up", "../q"), ("/tmp/abs-escape", "a/b"), ("a/b", "a_b")])
@example(jobs=[("$(touch pwned)", "`touch pwned`"), ("..", "."), ("CON", "nul")])
def test_burst_worker_writes_only_into_the_logs_folder(tmp_path: Path, jobs) -> None:
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    store_dir = home / "store"
    store_dir.mkdir()
    env = process_env(str(store_dir / "queue.db"), home)
    outside = tree(tmp_path)
    command = 'printf "%s" "$QUEUECTL_JOB_ID"'
    lines = "".join(
        json.dumps({"id": job_id, "queue": queue, "command": command}) + "\n"
        for job_id, queue in jobs
    )
    added = run_process(["enqueue", "-"], env, home, lines.encode())
    assert added.returncode == 0, added.stderr
    assert added.stdout.decode().splitlines() == [job_id for job_id, _ in jobs]
    burst = run_process(["worker", "start", "--burst", "--quiet"], env, home)
    assert burst.returncode == 0, burst.stderr

    listed = json.loads(run_process(["list", "--limit", "0", "--json"], env, home).stdout)
    assert [(job["id"], job["queue"], job["state"]) for job in listed] == [
        (job_id, queue, "completed") for job_id, queue in jobs
    ]
    for job_id, _ in jobs[:2]:
        logs = run_process(["logs", "--", job_id], env, home)
        assert logs.stdout.decode() == job_id  # each job's log is its own
    table = run_process(["list", "--limit", "0"], env, home).stdout.decode()
    assert len(printable_lines(table)) == 1 + len(jobs)

    # The store folder holds the store, its wake-up folder and flat log files; nothing else
    # appeared anywhere under the test's folder.
    allowed = {"queue.db", "queue.db-wal", "queue.db-shm", "queue.db-wake", "logs"}
    inside = tree(store_dir)
    assert {name.split(os.sep)[0] for name in inside} <= allowed, inside
    logs = sorted(name for name in inside if name.startswith("logs" + os.sep))
    assert len(logs) == len(jobs) and all(name.count(os.sep) == 1 for name in logs), logs
    new = {tmp_path / name for name in tree(tmp_path) - outside}
    assert all(path.is_relative_to(home) for path in new), new
    assert {path.relative_to(home).parts[0] for path in new} <= {"store", "xdg-config"}, new


argv_bytes = st.one_of(
    st.sampled_from([b"\xff", b"\xc3\x28", b"a\xedb\xa0\x80", b"\xf4\x90\x80\x80", b"-\xff"]),
    st.binary(min_size=1, max_size=8).filter(lambda b: b"\x00" not in b),
    st.sampled_from([t.encode() for t in TOKENS + OPTIONS]),
)


@fuzz_settings(12)
@given(
    command=st.sampled_from(COMMANDS + [["enqueue", "-"], ["worker", "start", "--burst"]]),
    tokens=st.lists(argv_bytes, max_size=3),
    stdin=st.one_of(st.just(b""), st.binary(max_size=40), st.just(b'{"command": "\xff"}\n')),
)
@example(command=["show"], tokens=[b"\xff"], stdin=b"")
@example(command=["list", "--queue"], tokens=[b"\xff"], stdin=b"")
@example(command=["worker", "start", "--burst"], tokens=[b"-q", b"\xff"], stdin=b"")
@example(command=["enqueue", "-"], tokens=[], stdin=b'{"command": "echo \xff"}\n')
@example(command=["enqueue", "-"], tokens=[], stdin=b'{"command": "true"}\n\xff\xfe\n')
def test_argv_and_stdin_bytes_that_are_not_utf8(tmp_path: Path, command, tokens, stdin) -> None:
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    db = str(home / "queue.db")
    seed_store(db)
    before = Cli(home).snapshot()
    if command[:2] == ["worker", "start"]:
        tokens = [part for token in tokens for part in (b"-q", token)]
    result = run_process([*command, *tokens], process_env(db, home), home, stdin)
    if result.returncode != 0:
        assert result.stdout == b"", result
        assert Cli(home).snapshot() == before
