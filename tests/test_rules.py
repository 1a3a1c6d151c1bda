"""The pure rules, without a database: spec parsing and validation (SPEC §2), backoff and the
retry decision (SPEC §3), log file names (SPEC §5) and configuration values (SPEC §6)."""

from __future__ import annotations

import math
import re
import time
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath, PureWindowsPath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from queuectl import config
from queuectl.config import ConfigError
from queuectl.models import (
    DEFAULT_QUEUE,
    INT64_MAX,
    INT64_MIN,
    MAX_ID_LENGTH,
    MAX_SECONDS,
    JobSpec,
    backoff_delay,
    log_file_name,
    retry_delay,
)
from queuectl.specs import SPEC_FIELDS, SpecError, build_spec, parse_spec_json, parse_time

DEFAULTS = {"max-retries": 3, "job-timeout": 300.0}


def spec(**fields) -> JobSpec:
    return build_spec({"command": "echo hi", **fields}, DEFAULTS)


def rejected(data: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        build_spec(data, DEFAULTS)


def is_control(ch: str) -> bool:
    return ord(ch) < 32 or 127 <= ord(ch) < 160


# ---------------------------------------------------------------------------------------------
# parse_spec_json


def test_parse_spec_json_returns_the_object():
    assert parse_spec_json('{"command": "ls", "priority": 2}') == {"command": "ls", "priority": 2}


@pytest.mark.parametrize(
    "text, kind",
    [
        ("[]", "an array"),
        ('["command"]', "an array"),
        ('"echo hi"', "a string"),
        ("42", "a number"),
        ("1.5", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ],
)
def test_parse_spec_json_refuses_non_objects(text, kind):
    with pytest.raises(SpecError, match=f"must be a JSON object, got {kind}"):
        parse_spec_json(text)


@pytest.mark.parametrize("text", ["", "{", '{"command": }', "{'command': 'ls'}", '{"a": 1} x'])
def test_parse_spec_json_refuses_invalid_json(text):
    with pytest.raises(SpecError, match="invalid JSON"):
        parse_spec_json(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_parse_spec_json_refuses_nan_and_infinity(constant):
    with pytest.raises(SpecError, match=constant):
        parse_spec_json(f'{{"command": "ls", "delay": {constant}}}')


@pytest.mark.parametrize(
    "text, key",
    [
        ('{"id": "a", "id": "b", "command": "x"}', "id"),
        ('{"command": "x", "command": "x"}', "command"),
        ('{"id": "a", "\\u0069d": "b", "command": "x"}', "id"),  # one key, spelt twice
        ('{"command": "x", "env": {"A": "1", "A": "2"}}', "A"),  # nested objects too
    ],
)
def test_parse_spec_json_refuses_a_repeated_key(text, key):
    # json keeps the last value of a repeated key, silently: {"id":"a","id":"b"} was job b.
    with pytest.raises(SpecError, match=f"key '{key}' is given twice"):
        parse_spec_json(text)


def test_parse_spec_json_refuses_deep_nesting_without_recursion_error():
    with pytest.raises(SpecError, match="nested too deeply"):
        parse_spec_json('{"command": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_parse_spec_json_refuses_a_huge_integer_as_a_spec_error():
    # Python refuses to convert integers of more than 4300 digits and raises a bare ValueError;
    # a user typing one must get the usual one-line spec error, not a traceback.
    with pytest.raises(SpecError):
        parse_spec_json('{"command": "ls", "priority": 1' + "0" * 5000 + "}")


@given(st.dictionaries(st.text(), st.integers() | st.text() | st.booleans() | st.none()))
def test_parse_spec_json_round_trips_any_object(data):
    import json

    assert parse_spec_json(json.dumps(data)) == data


# ---------------------------------------------------------------------------------------------
# build_spec: defaults


def test_defaults_are_filled_in_and_copied_from_config():
    job = build_spec({"command": "echo hi"}, {"max-retries": 7, "job-timeout": 12.5})
    assert job.command == "echo hi"
    assert job.max_retries == 7
    assert job.timeout == 12.5
    assert job.priority == 0
    assert job.queue == DEFAULT_QUEUE == "default"
    assert job.run_at is None
    assert job.delay == 0.0
    assert 1 <= len(job.id) <= MAX_ID_LENGTH


def test_explicit_fields_win_over_config_defaults():
    job = spec(id="job-1", max_retries=0, priority=-5, queue="emails", timeout=0, delay=2.5)
    assert (job.id, job.max_retries, job.priority, job.queue) == ("job-1", 0, -5, "emails")
    assert job.timeout == 0.0  # 0 = no timeout, not "use the default"
    assert job.delay == 2.5
    assert job.run_at is None


def test_config_default_that_is_invalid_is_still_rejected():
    with pytest.raises(SpecError, match="max_retries"):
        build_spec({"command": "ls"}, {"max-retries": -1, "job-timeout": 300.0})


def test_generated_ids_are_unique_and_valid():
    ids = {spec().id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{16}", job_id) for job_id in ids)


def test_spec_fields_are_exactly_the_documented_ones():
    documented = {"id", "command", "max_retries", "priority", "queue", "run_at", "delay", "timeout"}
    documented |= {"after", "unique_key", "cwd", "env"}  # SPEC §7
    assert set(SPEC_FIELDS) == documented
    # Every documented field is accepted (with a valid value) at once, except the run_at/delay
    # alternative.
    job = spec(id="x", max_retries=1, priority=1, queue="q", run_at="2030-01-01T00:00:00Z")
    assert job.run_at == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()


# ---------------------------------------------------------------------------------------------
# build_spec: bad input


@pytest.mark.parametrize("field", ["cmd", "Command", "retries", "", "run-at", "max-retries"])
def test_unknown_fields_are_rejected_by_name(field):
    rejected({"command": "ls", field: 1}, f"unknown field '{re.escape(field)}'")


def test_all_unknown_fields_are_named():
    with pytest.raises(SpecError) as info:
        build_spec({"command": "ls", "zeta": 1, "alpha": 2}, DEFAULTS)
    assert "'alpha'" in str(info.value) and "'zeta'" in str(info.value)


def test_missing_command_is_rejected():
    rejected({"id": "a"}, "missing required field 'command'")
    rejected({}, "command")


@pytest.mark.parametrize("command", [None, 1, 1.5, True, ["ls"], {"sh": "ls"}])
def test_command_of_wrong_type_is_rejected(command):
    rejected({"command": command}, "command must be a string")


@pytest.mark.parametrize("command", ["", " ", "\t", "\n \r\n", "\u3000"])
def test_empty_or_blank_command_is_rejected(command):
    rejected({"command": command}, "command must not be empty")


@pytest.mark.parametrize("command", ["\x00", "echo a\x00b", "ls\x00"])
def test_command_with_nul_is_rejected(command):
    rejected({"command": command}, "NUL")


def test_command_may_hold_newlines_tabs_and_unicode():
    text = "for i in 1 2; do\n\techo 'héllo ✓' $i\ndone"
    assert spec(command=text).command == text


@pytest.mark.parametrize("field", ["id", "queue"])
@pytest.mark.parametrize("value", [1, 1.0, True, False, ["a"], {"a": 1}])
def test_id_and_queue_of_wrong_type_are_rejected(field, value):
    rejected({"command": "ls", field: value}, f"{field} must be a string")


@pytest.mark.parametrize("field", ["id", "queue"])
def test_empty_id_and_queue_are_rejected(field):
    rejected({"command": "ls", field: ""}, f"{field} must not be empty")


def test_id_length_bounds():
    assert spec(id="a").id == "a"
    assert spec(id="x" * 200).id == "x" * 200
    rejected({"command": "ls", "id": "x" * 201}, "201 characters long; the limit is 200")
    # Characters, not bytes: 200 three-byte characters are fine.
    assert spec(id="✓" * 200).id == "✓" * 200


@pytest.mark.parametrize(
    "bad", ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x80", "\x85", "\x9f"]
)
@pytest.mark.parametrize("field", ["id", "queue"])
def test_control_characters_in_id_and_queue_are_rejected(field, bad):
    rejected({"command": "ls", field: f"a{bad}b"}, "control characters")


@pytest.mark.parametrize("field", ["id", "queue", "command"])
def test_lone_surrogates_are_rejected(field):
    # JSON allows "\ud800", which decodes to text that cannot be encoded as UTF-8: neither
    # SQLite nor PostgreSQL can store it, and the failure deep in the driver is a traceback.
    rejected({"command": "ls", field: "a\ud800b"}, field)


@given(st.text(min_size=1, max_size=MAX_ID_LENGTH))
def test_any_printable_id_is_accepted_unchanged(job_id):
    assume(not any(is_control(ch) or ch in "\u2028\u2029" for ch in job_id))
    assert spec(id=job_id).id == job_id


@given(st.text(max_size=50), st.characters(max_codepoint=159), st.text(max_size=50))
def test_any_id_with_a_control_character_is_rejected(head, control, tail):
    assume(is_control(control))
    with pytest.raises(SpecError):
        spec(id=head + control + tail)


@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "3", [], {}])
def test_max_retries_must_be_an_integer_not_a_boolean(value):
    rejected({"command": "ls", "max_retries": value}, "max_retries must be an integer")


def test_max_retries_bounds():
    assert spec(max_retries=0).max_retries == 0
    assert spec(max_retries=INT64_MAX).max_retries == INT64_MAX
    rejected({"command": "ls", "max_retries": -1}, "max_retries must be at least 0")
    rejected({"command": "ls", "max_retries": INT64_MAX + 1}, "too large")


@pytest.mark.parametrize("value", [True, False, 1.0, 0.5, "1", [], {}])
def test_priority_must_be_an_integer_not_a_boolean(value):
    rejected({"command": "ls", "priority": value}, "priority must be an integer")


def test_priority_bounds():
    assert spec(priority=-1).priority == -1
    assert spec(priority=INT64_MIN).priority == INT64_MIN
    assert spec(priority=INT64_MAX).priority == INT64_MAX
    rejected({"command": "ls", "priority": INT64_MIN - 1}, "priority")
    rejected({"command": "ls", "priority": INT64_MAX + 1}, "priority")


@pytest.mark.parametrize("field", ["timeout", "delay"])
@pytest.mark.parametrize("value", [True, False, "10", [], {}])
def test_seconds_must_be_numbers_not_booleans(field, value):
    rejected({"command": "ls", field: value}, f"{field} must be a number of seconds")


@pytest.mark.parametrize("field", ["timeout", "delay"])
@pytest.mark.parametrize("value", [-1, -0.001, -1e300])
def test_negative_seconds_are_rejected(field, value):
    rejected({"command": "ls", field: value}, f"{field} must be at least 0")


@pytest.mark.parametrize("field", ["timeout", "delay"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_seconds_are_rejected(field, value):
    rejected({"command": "ls", field: value}, f"{field} must be a finite number")


@pytest.mark.parametrize("field", ["timeout", "delay"])
def test_json_number_that_overflows_to_infinity_is_rejected(field):
    # json.loads turns 1e400 into inf without calling parse_constant.
    data = parse_spec_json(f'{{"command": "ls", "{field}": 1e400}}')
    rejected(data, f"{field} must be a finite number")


@pytest.mark.parametrize("field", ["timeout", "delay"])
def test_seconds_accept_ints_and_floats(field):
    assert getattr(spec(**{field: 0}), field) == 0.0
    assert getattr(spec(**{field: 7}), field) == 7.0
    assert getattr(spec(**{field: 0.25}), field) == 0.25


def test_run_at_and_delay_together_are_rejected():
    rejected({"command": "ls", "run_at": "2030-01-01T00:00:00Z", "delay": 5}, "not both")
    rejected({"command": "ls", "run_at": "2030-01-01T00:00:00Z", "delay": 0}, "not both")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2030-01-02T03:04:05z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2030-01-02T03:04:05+00:00", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2030-01-02T05:04:05+02:00", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2030-01-02T03:04:05.250Z", datetime(2030, 1, 2, 3, 4, 5, 250000, timezone.utc)),
        # No offset: UTC (SPEC §2, times are UTC), never the machine's local zone.
        ("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2030-01-02 03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ],
)
def test_run_at_parses_iso_times(text, expected):
    assert spec(run_at=text).run_at == expected.timestamp()
    assert parse_time(text) == expected.timestamp()


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset to change the zone")
def test_run_at_without_offset_is_utc_whatever_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_time("2030-01-02T03:04:05") == 1893553445.0
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "value", ["", "tomorrow", "2030-13-01T00:00:00Z", "2030-01-32", "2030-01-01T25:00:00Z", "now"]
)
def test_run_at_refuses_bad_iso_text(value):
    rejected({"command": "ls", "run_at": value}, "run_at is not an ISO-8601 time")


@pytest.mark.parametrize("value", [0, 1700000000, 1.5, True, [], {}])
def test_run_at_must_be_a_string(value):
    rejected({"command": "ls", "run_at": value}, "run_at must be an ISO-8601 time string")


@given(st.datetimes(timezones=st.just(timezone.utc)))
def test_parse_time_round_trips_any_utc_time(moment):
    assert parse_time(moment.isoformat()) == moment.timestamp()


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_parse_time_honours_offsets(naive, offset_minutes):
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = naive.replace(tzinfo=zone)
    assert parse_time(moment.isoformat()) == moment.timestamp()


# ---------------------------------------------------------------------------------------------
# backoff and the retry decision (SPEC §3)


@pytest.mark.parametrize(
    "retry, base, cap, expected",
    [
        (1, 2, 3600, 2.0),
        (2, 2, 3600, 4.0),
        (3, 2, 3600, 8.0),
        (11, 2, 3600, 2048.0),
        (12, 2, 3600, 3600.0),  # 4096 capped
        (3, 1.5, 3600, 3.375),
        (5, 1, 3600, 1.0),
        (4, 10, 100, 100.0),
        (3, 2, 0, 0.0),
        (1, 0, 3600, 0.0),  # base 0 retries at once
        (50, 0, 3600, 0.0),
    ],
)
def test_backoff_delay_is_min_of_cap_and_base_power(retry, base, cap, expected):
    assert backoff_delay(retry, base, cap) == expected


def test_backoff_delay_overflow_gives_the_cap():
    assert backoff_delay(10_000, 2, 3600) == 3600.0
    assert backoff_delay(2, 1e200, 60) == 60.0
    assert backoff_delay(10**400, 1.0001, 5) == 5.0


@given(
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e9),
)
def test_backoff_never_exceeds_cap_and_is_never_negative(retry, base, cap):
    delay = backoff_delay(retry, base, cap)
    assert 0.0 <= delay <= cap
    assert math.isfinite(delay)


@given(
    st.integers(min_value=1, max_value=60),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1e6),
)
def test_backoff_matches_the_formula_when_it_does_not_overflow(retry, base, cap):
    assert backoff_delay(retry, base, cap) == min(cap, base**retry)


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=1, max_value=10))
def test_backoff_never_decreases_from_one_retry_to_the_next(retry, base):
    assert backoff_delay(retry, base, 3600) <= backoff_delay(retry + 1, base, 3600)


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1e6),
)
def test_retry_delay_is_none_exactly_when_retries_are_exhausted(attempts, max_retries, base, cap):
    delay = retry_delay(attempts, max_retries, base, cap)
    if attempts > max_retries:
        assert delay is None
    else:
        assert delay == backoff_delay(attempts, base, cap)


@given(st.integers(min_value=0, max_value=300))
def test_total_runs_are_max_retries_plus_one(max_retries):
    runs = 1  # the first run
    while retry_delay(runs, max_retries, 2, 3600) is not None:
        runs += 1
    assert runs == max_retries + 1


def test_retry_delay_spells_out_the_schedule():
    # max_retries 3: three retries after the first run, waiting 2, 4, 8 seconds; then dead.
    assert [retry_delay(n, 3, 2, 3600) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, None, None]
    assert retry_delay(1, 0, 2, 3600) is None


# ---------------------------------------------------------------------------------------------
# log file names (SPEC §5: job ids never become paths unescaped)

WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{n}" for p in ("COM", "LPT") for n in "123456789"
}


def assert_safe_name(name: str) -> None:
    assert name
    assert "/" not in name and "\\" not in name
    assert ".." not in name
    assert "\x00" not in name
    assert ":" not in name  # a drive or an NTFS alternate stream on Windows
    assert name.isascii() and name.isprintable()
    assert PurePosixPath(name).name == name and PureWindowsPath(name).name == name
    assert name not in (".", "..")


WORKER = "host-4242-a1b2c3"  # host-pid-<6 random hex>, as workers name themselves
worker_ids = st.one_of(st.text(), st.just(WORKER))


def suffix(run_id: int, worker_id: str) -> str:
    """The end of a log file name: run id, the worker's checksum, .log."""
    return f".{run_id}.{zlib.crc32(worker_id.encode('utf-8', 'surrogatepass')):08x}.log"


@given(st.text(), st.integers(min_value=1, max_value=2**63 - 1), worker_ids)
def test_log_file_name_is_one_safe_path_component_for_any_id(job_id, run_id, worker_id):
    name = log_file_name(job_id, run_id, worker_id)
    assert_safe_name(name)
    assert len(name) <= 64 + len(suffix(run_id, worker_id))
    assert name.endswith(suffix(run_id, worker_id))


@pytest.mark.parametrize(
    "job_id",
    ["..", "../../etc/passwd", "..\\..\\win.ini", "/abs", "C:\\x", "a\x00b", ".", "-", "x" * 5000],
)
@pytest.mark.parametrize("worker_id", [WORKER, "../.."])
def test_log_file_name_escapes_hostile_ids(job_id, worker_id):
    name = log_file_name(job_id, 7, worker_id)
    assert_safe_name(name)
    assert len(name) <= 64 + len(suffix(7, worker_id))


@given(
    st.text(),
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=10**9),
    worker_ids,
)
def test_log_file_name_is_unique_per_run_id(job_id, run_a, run_b, worker_id):
    assume(run_a != run_b)
    assert log_file_name(job_id, run_a, worker_id) != log_file_name(job_id, run_b, worker_id)


@given(st.text(), st.integers(min_value=1, max_value=2**63 - 1), worker_ids)
def test_log_file_name_never_starts_with_a_dash_or_a_dot(job_id, run_id, worker_id):
    # `rm *` in the logs folder would take `-rf.3.….log` for options; `.3.….log` is hidden.
    assert log_file_name(job_id, run_id, worker_id)[0] not in "-."


@pytest.mark.parametrize(
    "job_id, part", [("-rf", "_-rf"), ("--", "_--"), ("-" * 80, "_" + "-" * 63)]
)
def test_log_file_name_puts_an_underscore_before_a_leading_dash(job_id, part):
    assert log_file_name(job_id, 4, WORKER) == f"{part}.4.{zlib.crc32(WORKER.encode()):08x}.log"


def test_log_file_name_keeps_readable_ids_readable():
    assert log_file_name("nightly-backup_2", 3, WORKER) == "nightly-backup_2.3.2c4168ad.log"


@pytest.mark.parametrize("worker_id", [WORKER, "../.."])
def test_log_file_name_is_never_a_windows_device_name(worker_id):
    # queuectl supports Windows, where "NUL.5.log" or "con.1.log" names a device, not a file:
    # the run's output would vanish (or go to the console) instead of into the log.
    ids = ["CON", "nul", "Aux", "com1", "LPT9", "prn"]
    devices = [
        name
        for name in (log_file_name(job_id, run, worker_id) for run, job_id in enumerate(ids))
        if name.split(".")[0].upper() in WINDOWS_DEVICES
    ]
    assert devices == []


# ---------------------------------------------------------------------------------------------
# configuration (SPEC §6)

DEFAULT_SETTINGS = {
    "max-retries": 3,
    "backoff-base": 2.0,
    "backoff-max": 3600.0,
    "job-timeout": 300.0,
    "lease-seconds": 30.0,
    "poll-interval": 1.0,
    "retention": 0.0,
}


def test_keys_and_defaults_are_the_documented_ones():
    assert config.settings({}, {}) == DEFAULT_SETTINGS
    assert list(config.KEYS) == list(DEFAULT_SETTINGS)
    assert isinstance(config.settings({}, {})["max-retries"], int)


def test_env_names():
    assert config.env_name("max-retries") == "QUEUECTL_MAX_RETRIES"
    assert config.env_name("poll-interval") == "QUEUECTL_POLL_INTERVAL"


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("max-retries", "0", 0),
        ("max-retries", "5", 5),
        ("max-retries", " 7 ", 7),
        ("max-retries", str(2**63 - 1), 2**63 - 1),
        ("backoff-base", "0", 0.0),
        ("backoff-base", "1.5", 1.5),
        ("backoff-max", "0", 0.0),
        ("job-timeout", "0", 0.0),
        ("job-timeout", "2.5", 2.5),
        ("lease-seconds", "1", 1.0),
        ("lease-seconds", "1.5", 1.5),
        ("poll-interval", "0.01", 0.01),
        ("poll-interval", "0.05", 0.05),
        ("max-retries", "007", 7),
        ("backoff-base", "2.50", 2.5),
    ],
)
def test_parse_value_accepts_good_values(key, text, expected):
    value = config.parse_value(key, text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "key, text",
    [
        ("max-retries", "-1"),
        ("max-retries", "1.5"),
        ("max-retries", "three"),
        ("max-retries", ""),
        ("max-retries", str(2**63)),
        ("backoff-base", "-0.5"),
        ("backoff-base", "nan"),
        ("backoff-base", "inf"),
        ("backoff-max", "-1"),
        ("backoff-max", "Infinity"),
        ("job-timeout", "-1"),
        ("job-timeout", "soon"),
        ("lease-seconds", "0"),
        ("lease-seconds", "-5"),
        ("lease-seconds", "0.5"),
        ("lease-seconds", "0.0001"),
        ("poll-interval", "0"),
        ("poll-interval", "0.009"),
        ("poll-interval", "NaN"),
        # Python's int() and float() take all of these; SPEC §6 wants plain ASCII decimals.
        ("max-retries", "٣"),
        ("max-retries", "３"),
        ("max-retries", "1_000"),
        ("max-retries", "+5"),
        ("max-retries", "5\u3000"),
        ("backoff-base", "1_000"),
        ("backoff-base", "٣"),
        ("backoff-base", "1e3"),
        ("backoff-base", ".5"),
        ("backoff-base", "5."),
        ("backoff-base", "1.2.3"),
        ("poll-interval", "1e-9"),
        ("job-timeout", "0x10"),
    ],
)
def test_parse_value_rejects_bad_values_naming_the_key(key, text):
    with pytest.raises(ConfigError, match=f"invalid value for {key}"):
        config.parse_value(key, text)


@pytest.mark.parametrize("key", ["max_retries", "MAX-RETRIES", "", "timeout", "backoff"])
def test_unknown_keys_are_rejected_listing_the_known_ones(key):
    with pytest.raises(ConfigError, match="unknown config key") as info:
        config.parse_value(key, "1")
    assert "max-retries" in str(info.value)
    with pytest.raises(ConfigError, match="unknown config key"):
        config.check_key(key)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_any_count_round_trips(number):
    assert config.parse_value("max-retries", str(number)) == number


@given(st.floats(min_value=0, max_value=MAX_SECONDS, allow_infinity=False, allow_nan=False))
def test_any_non_negative_number_round_trips(number):
    plain = format(Decimal(repr(number)), "f")  # 1e-05 -> 0.00001: no exponents in config
    assert config.parse_value("backoff-max", plain) == number
    assert config.parse_value("backoff-max", config.canonical(plain)) == number


@pytest.mark.parametrize(
    "text, shown",
    [
        ("7", "7"),
        ("007", "7"),
        ("0", "0"),
        ("000", "0"),
        (" 12 ", "12"),
        ("2.50", "2.5"),
        ("1.000", "1.0"),
        ("00.000", "0.0"),
        ("0.010", "0.01"),
        ("3600", "3600"),
        ("1.0", "1.0"),
    ],
)
def test_values_have_one_canonical_form(text, shown):
    assert config.canonical(text) == shown
    assert config.canonical(shown) == shown


@given(st.from_regex(r"[0-9]{1,12}(\.[0-9]{1,12})?", fullmatch=True))
def test_canonical_form_keeps_the_value(text):
    shown = config.canonical(text)
    assert Decimal(shown) == Decimal(text)
    assert ("." in shown) == ("." in text)
    assert re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[0-9]*[1-9]))?", shown), shown


def test_settings_of_a_value_stored_as_typed_by_an_older_version():
    # Older versions stored `007` as typed: it is shown canonically. `1e3` is refused, with a
    # hint that names the command that mends it.
    entries = {entry.key: entry.value for entry in config.resolve({"max-retries": "007"}, {})}
    assert entries["max-retries"] == "7"
    with pytest.raises(ConfigError, match="config set backoff-base"):
        config.settings({"backoff-base": "1e3"}, {})


@pytest.mark.parametrize("key", ["job-timeout", "backoff-max", "lease-seconds", "poll-interval"])
def test_seconds_settings_stop_where_job_specs_stop(key):
    # A default a job spec would refuse (timeout > MAX_SECONDS) would break every enqueue.
    assert config.parse_value(key, str(MAX_SECONDS)) == MAX_SECONDS
    with pytest.raises(config.ConfigError, match="at most"):
        config.parse_value(key, "10000000000.5")


def test_resolve_prefers_env_then_store_then_default():
    entries = config.resolve(
        {"max-retries": "5", "backoff-base": "3"},
        {"QUEUECTL_MAX_RETRIES": "9", "QUEUECTL_JOB_TIMEOUT": "0", "UNRELATED": "x"},
    )
    found = {entry.key: (entry.value, entry.source) for entry in entries}
    assert found == {
        "max-retries": ("9", "env"),
        "backoff-base": ("3", "store"),
        "backoff-max": ("3600", "default"),
        "job-timeout": ("0", "env"),
        "lease-seconds": ("30", "default"),
        "poll-interval": ("1.0", "default"),
        "retention": ("0", "default"),
    }
    assert [entry.key for entry in entries] == list(config.KEYS)


def test_resolve_ignores_unknown_stored_keys():
    entries = config.resolve({"no-such-key": "1"}, {})
    assert [entry.key for entry in entries] == list(config.KEYS)
    assert all(entry.source == "default" for entry in entries)


def test_settings_env_override_wins_over_store():
    values = config.settings(
        {"max-retries": "5", "lease-seconds": "10"}, {"QUEUECTL_MAX_RETRIES": "1"}
    )
    assert values == {**DEFAULT_SETTINGS, "max-retries": 1, "lease-seconds": 10.0}


def test_settings_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("QUEUECTL_BACKOFF_MAX", "42")
    monkeypatch.delenv("QUEUECTL_MAX_RETRIES", raising=False)
    values = config.settings({"backoff-max": "7", "max-retries": "4"})
    assert values["backoff-max"] == 42.0
    assert values["max-retries"] == 4


def test_settings_reports_a_bad_env_override_with_its_variable():
    with pytest.raises(
        ConfigError, match="QUEUECTL_LEASE_SECONDS: invalid value for lease-seconds"
    ):
        config.settings({}, {"QUEUECTL_LEASE_SECONDS": "0"})


def test_settings_reports_a_bad_stored_value_with_its_key():
    with pytest.raises(ConfigError, match="invalid value for max-retries") as info:
        config.settings({"max-retries": "lots"}, {})
    assert "QUEUECTL_" not in str(info.value)


def test_a_good_env_override_hides_a_bad_stored_value():
    assert (
        config.settings({"poll-interval": "0"}, {"QUEUECTL_POLL_INTERVAL": "2"})["poll-interval"]
        == 2.0
    )
