"""Pure rules of schedules (SPEC §8): cron expressions and zones (cron.py), names, job ids and
the checks of a new schedule (schedules.py). Every instant is injected: no clock is read."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuectl import cron
from queuectl.schedules import (
    JSON_FIELDS,
    build_schedule,
    check_schedule_name,
    job_id,
    job_spec,
)
from queuectl.specs import SpecError, build_spec


def at(text: str) -> float:
    """An ISO-8601 UTC time (`2026-03-29T01:00Z`) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def fires(expression: str, tz: str, after: str, count: int) -> list[str]:
    return [utc(t) for t in cron.next_times(expression, tz, at(after), count)]


# -- daylight saving: Europe/Berlin 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00 --


def test_a_time_skipped_by_spring_forward_fires_at_the_first_minute_after_the_gap():
    # 02:30 does not exist in Berlin on 2026-03-29: it fires at 03:00 CEST (01:00 UTC), once.
    assert fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00Z", 4) == [
        "2026-03-28T01:30Z",  # 02:30 CET
        "2026-03-29T01:00Z",  # 03:00 CEST, the first minute after the gap
        "2026-03-30T00:30Z",  # 02:30 CEST
        "2026-03-31T00:30Z",
    ]


def test_a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence():
    # 02:30 happens twice in Berlin on 2026-10-25 (CEST, then CET): one fire time.
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00Z", 3) == [
        "2026-10-25T00:30Z",  # 02:30 CEST
        "2026-10-26T01:30Z",  # 02:30 CET the next day
        "2026-10-27T01:30Z",
    ]
    # Asked from inside the repeated hour (02:15 CET, after the first 02:30 fired), the
    # repeated 02:30 is not a fire time again.
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:15Z", 1) == ["2026-10-26T01:30Z"]


def test_new_york_spring_forward_and_fall_back():
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    assert fires("30 2 * * *", "America/New_York", "2026-03-07T12:00Z", 2) == [
        "2026-03-08T07:00Z",  # 03:00 EDT
        "2026-03-09T06:30Z",  # 02:30 EDT
    ]
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T12:00Z", 2) == [
        "2026-11-01T05:30Z",  # 01:30 EDT, the first of the two 01:30s
        "2026-11-02T06:30Z",  # 01:30 EST
    ]


@pytest.mark.parametrize(
    ("tz", "switch"),
    [
        ("Europe/Berlin", "2026-03-29T01:00Z"),
        ("Europe/Berlin", "2026-10-25T01:00Z"),
        ("America/New_York", "2026-03-08T07:00Z"),
        ("America/New_York", "2026-11-01T06:00Z"),
    ],
)
def test_hourly_fires_every_real_hour_across_a_switch(tz, switch):
    times = cron.next_times("@hourly", tz, at(switch) - 4 * 3600 - 1, 8)
    assert [b - a for a, b in itertools.pairwise(times)] == [3600.0] * 7
    assert all(t % 3600 == 0 for t in times)  # both zones are whole hours off UTC


def test_minutes_with_a_star_follow_real_time_through_the_repeated_hour():
    # `*/30` runs every half hour of real time: the repeated 02:00-03:00 fires twice.
    assert fires("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:45Z", 5) == [
        "2026-10-25T00:00Z",  # 02:00 CEST
        "2026-10-25T00:30Z",  # 02:30 CEST
        "2026-10-25T01:00Z",  # 02:00 CET
        "2026-10-25T01:30Z",  # 02:30 CET
        "2026-10-25T02:00Z",  # 03:00 CET
    ]


# -- days of the month, nicknames -------------------------------------------------------------


def test_monthly_fires_on_the_first_at_midnight_in_its_zone():
    assert fires("@monthly", "UTC", "2026-01-15T00:00Z", 3) == [
        "2026-02-01T00:00Z",
        "2026-03-01T00:00Z",
        "2026-04-01T00:00Z",
    ]
    # Midnight in Berlin is 23:00 UTC the day before (CET).
    assert fires("@monthly", "Europe/Berlin", "2026-01-15T00:00Z", 1) == ["2026-01-31T23:00Z"]


def test_the_31st_skips_months_without_one():
    assert [t[:10] for t in fires("0 0 31 * *", "UTC", "2026-01-01T00:00Z", 7)] == [
        "2026-01-31",
        "2026-03-31",
        "2026-05-31",
        "2026-07-31",
        "2026-08-31",
        "2026-10-31",
        "2026-12-31",
    ]


@pytest.mark.parametrize(
    ("alias", "fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_each_nickname_is_its_crontab_fields(alias, fields):
    assert cron.fields(alias) == fields
    start = at("2026-02-17T10:20Z")
    assert cron.next_times(alias, "Asia/Tokyo", start, 5) == cron.next_times(
        fields, "Asia/Tokyo", start, 5
    )
    assert cron.normalized(alias) == alias.lower()


def test_weekly_is_sunday_midnight():
    assert fires("@weekly", "UTC", "2026-06-03T12:00Z", 2) == [
        "2026-06-07T00:00Z",  # a Sunday
        "2026-06-14T00:00Z",
    ]


# -- fire times after an instant; the latest missed one ---------------------------------------


def test_fire_times_are_strictly_after_the_instant_given():
    assert fires("0 12 * * *", "UTC", "2026-05-01T12:00Z", 1) == ["2026-05-02T12:00Z"]
    assert fires("0 12 * * *", "UTC", "2026-05-01T11:59:59.999Z", 1) == ["2026-05-01T12:00Z"]


def test_catch_up_gives_only_the_latest_missed_fire_time():
    since = at("2026-05-01T08:00Z")  # due, never enqueued: no worker ran since
    now = at("2026-05-01T13:37Z")
    assert utc(cron.latest("0 * * * *", "UTC", now, since)) == "2026-05-01T13:00Z"
    # Exactly at a fire time, that one is the latest.
    assert utc(cron.latest("0 * * * *", "UTC", at("2026-05-01T13:00Z"), since)) == (
        "2026-05-01T13:00Z"
    )
    # Nothing due yet.
    assert cron.latest("0 * * * *", "UTC", since - 1, since) is None
    # Years of missed minutes cost no walk through each of them.
    long_ago = at("2020-01-01T00:00Z")
    assert utc(cron.latest("* * * * *", "UTC", now + 59, long_ago)) == "2026-05-01T13:37Z"


def test_catch_up_inside_a_repeated_hour_gives_the_time_that_fired():
    # Berlin 2026-10-25, 02:45 CET (01:45 UTC): the latest fire time of `30 2 * * *` is the
    # one 02:30 that fired (CEST), not a second 02:30.
    since = at("2026-10-23T00:30Z")
    assert utc(cron.latest("30 2 * * *", "Europe/Berlin", at("2026-10-25T01:45Z"), since)) == (
        "2026-10-25T00:30Z"
    )


EXPRESSIONS = [
    "30 2 * * *",
    "45 2 * * *",
    "30 1 * * *",
    "0 * * * *",
    "*/20 * * * *",
    "15 2,3 * * *",
    "59 1 * * 0",
    "0 12 31 * *",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
SWITCHES = [
    at("2026-03-08T00:00Z"),
    at("2026-03-29T00:00Z"),
    at("2026-04-05T00:00Z"),  # Lord Howe and Sydney fall back
    at("2026-10-25T00:00Z"),
    at("2026-11-01T00:00Z"),
]


@settings(max_examples=100, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    tz=st.sampled_from(ZONES),
    switch=st.sampled_from(SWITCHES),
    offset=st.floats(min_value=-2 * 86400, max_value=2 * 86400),
)
def test_the_latest_fire_time_is_the_last_of_the_forward_walk(expression, tz, switch, offset):
    # Around each daylight saving switch: the catch-up (a reverse walk, then forward) agrees
    # with walking forward through every fire time from a known due one.
    now = switch + offset
    since = cron.next_after(expression, tz, switch - 3 * 86400)
    walked = [t for t in cron.next_times(expression, tz, since - 1, 1000) if t <= now]
    assert cron.latest(expression, tz, now, since) == (walked[-1] if walked else None)
    ahead = cron.next_times(expression, tz, now, 3)
    assert all(t > now for t in ahead) and ahead == sorted(set(ahead))


# -- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "5 fields"),
        ("* * * *", "5 fields"),
        ("0 * * * * *", "5 fields"),  # cronsim's seconds field: not a standard expression
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("a b c d e", "invalid"),
        ("0 0 30 2 *", "day-of-month"),  # February never has a 30th
        ("@reboot", "nickname"),
        ("@", "nickname"),
    ],
)
def test_invalid_expressions_are_refused_with_a_reason(expression, says):
    with pytest.raises(cron.CronError, match=says):
        cron.check(expression, "UTC", at("2026-01-01T00:00Z"))


@pytest.mark.parametrize(
    "tz",
    ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "Europe/Berlin\n", "x" * 200, "utc/"],
)
def test_unknown_zones_are_refused(tz):
    with pytest.raises(cron.CronError, match="unknown time zone"):
        cron.check("* * * * *", tz, at("2026-01-01T00:00Z"))


def test_an_expression_with_extra_spaces_is_stored_with_single_ones():
    assert cron.normalized("  */5\t*  * * 1-5 ") == "*/5 * * * 1-5"


def test_local_time_names_the_zone():
    assert cron.local_time(at("2026-03-29T01:00Z"), "Europe/Berlin") == "2026-03-29 03:00 CEST"


# -- schedules: names, job ids, the checks of a new one -----------------------------------------

NOW = at("2026-05-01T10:15:30Z")


def test_names_are_1_to_100_characters_without_control_characters_or_at():
    assert check_schedule_name("n" * 100) == "n" * 100
    assert check_schedule_name("nightly backup (db-1)") == "nightly backup (db-1)"
    for bad, says in [
        ("", "empty"),
        ("n" * 101, "limit is 100"),
        ("a@b", "'@'"),
        ("tab\there", "control"),
        ("new\nline", "control"),
        ("\x9b", "control"),
    ]:
        with pytest.raises(SpecError, match=says):
            check_schedule_name(bad)


def test_a_job_id_is_the_name_at_the_fire_time_in_utc_and_is_a_valid_job_id():
    fire = at("2026-03-29T01:00Z")
    assert job_id("nightly", fire) == "nightly@2026-03-29T01:00:00Z"
    longest = job_id("n" * 100, fire)
    assert build_spec({"id": longest, "command": "true"}, {"max-retries": 0, "job-timeout": 0}).id


def test_a_new_schedule_is_due_at_its_first_fire_time_after_now():
    made = build_schedule("s", "*/15 * * * *", "true", now=NOW)
    assert made.next_run_at == at("2026-05-01T10:30Z") and made.created_at == NOW
    assert (made.tz, made.queue, made.priority, made.overlap) == ("UTC", "default", 0, "allow")
    assert made.max_retries is None and made.timeout is None  # the config's, at fire time
    assert not made.paused and made.last_job_id is None
    assert list(made.to_dict()) == list(JSON_FIELDS)


def test_a_schedules_job_takes_its_fields_or_the_configs_defaults():
    defaults = {"max-retries": 4, "job-timeout": 60.0}
    plain = build_schedule("s", "@daily", "./run.sh", now=NOW)
    spec = job_spec(plain, at("2026-05-02T00:00Z"), defaults)
    assert (spec.id, spec.command, spec.queue, spec.priority) == (
        "s@2026-05-02T00:00:00Z",
        "./run.sh",
        "default",
        0,
    )
    assert (spec.max_retries, spec.timeout, spec.run_at) == (4, 60.0, at("2026-05-02T00:00Z"))
    set_ = build_schedule(
        "t", "@daily", "x", queue="q", priority=-3, max_retries=0, timeout=0, now=NOW
    )
    spec = job_spec(set_, at("2026-05-02T00:00Z"), defaults)
    assert (spec.queue, spec.priority, spec.max_retries, spec.timeout) == ("q", -3, 0, 0.0)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"command": ""}, "command must not be empty"),
        ({"command": "   "}, "command must not be empty"),
        ({"queue": ""}, "queue must not be empty"),
        ({"queue": "q\x1b"}, "control"),
        ({"max_retries": -1}, "max_retries must be at least 0"),
        ({"timeout": -1.0}, "timeout must be at least 0"),
        ({"timeout": math.nan}, "finite"),
        ({"timeout": math.inf}, "finite"),
        ({"priority": 2**63}, "too large"),
        ({"overlap": "never"}, "overlap"),
        ({"tz": "Nowhere/Land"}, "unknown time zone"),
        ({"name": "x@y"}, "'@'"),
        ({"expression": "* * * * * *"}, "5 fields"),
    ],
)
def test_a_bad_field_is_refused_as_a_job_specs_would_be(fields, says):
    args = {"name": "s", "expression": "@hourly", "command": "true", **fields}
    with pytest.raises(SpecError, match=says):
        build_schedule(
            args.pop("name"), args.pop("expression"), args.pop("command"), now=NOW, **args
        )


def test_fire_times_end_at_the_last_year_python_can_hold():
    last = cron.next_times("* * * * *", "UTC", at("9999-12-31T23:58Z"), 5)
    assert [utc(t) for t in last] == ["9999-12-31T23:59Z"]
    assert cron.next_times("0 0 1 1 *", "UTC", at("9999-06-01T00:00Z"), 1) == []
    assert cron.next_times("@daily", "UTC", at("2026-01-01T00:00Z"), 0) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet="0123456789*/,-#LW?ABCDEFJMNORSTUVY@", min_size=0, max_size=6),
        min_size=0,
        max_size=6,
    ).map(" ".join)
)
def test_any_text_is_either_refused_with_a_reason_or_fires_after_now(expression):
    now = at("2026-01-01T00:00Z")
    try:
        first = cron.check(expression, "Europe/Berlin", now)
    except cron.CronError as exc:
        assert str(exc)
    else:
        assert first > now
