"""DURATION (SPEC §8): `prune --older-than` and the `retention` key. Pure rules of config.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queuectl import config
from queuectl.config import ConfigError
from queuectl.models import MAX_SECONDS


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0", 0.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("7d", 604800.0),
        ("0d", 0.0),
        ("0.5s", 0.5),
        ("007d", 604800.0),
        (" 7d ", 604800.0),  # ASCII whitespace around a value is forgiven, as for every key
        ("2.50m", 150.0),
    ],
)
def test_durations_in_seconds(text, seconds):
    assert config.parse_duration(text) == seconds
    assert config.parse_value("retention", text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "s",
        "d",
        "1w",
        "1y",
        "abc",
        "1e3",
        "1e3s",
        "7 d",  # nothing between the number and its unit
        "7d d",
        "7dd",
        "7D",
        "1.5H",
        "+5",
        ".5h",
        "5.h",
        "1_000",
        "٣d",
        "３",
        "nan",
        "inf",
        "infs",
        "-inf",
        "0x10",
        "1,5h",
        "7d\u3000",
    ],
)
def test_anything_else_is_an_error_saying_what_a_duration_is(text):
    with pytest.raises(ConfigError, match="not a duration: give a number of seconds"):
        config.parse_duration(text)
    with pytest.raises(ConfigError, match="invalid value for retention"):
        config.parse_value("retention", text)


@pytest.mark.parametrize("text", ["-1", "-1d", "-0.5h", " -7d"])
def test_negative_durations_are_refused(text):
    with pytest.raises(ConfigError, match="must be at least 0"):
        config.parse_duration(text)


def test_durations_stop_where_seconds_settings_stop():
    assert config.parse_duration(f"{MAX_SECONDS:.0f}") == MAX_SECONDS
    with pytest.raises(ConfigError, match="at most"):
        config.parse_duration("200000d")  # 1.7e10 s
    with pytest.raises(ConfigError, match="at most"):
        config.parse_duration("9" * 400 + "d")


@pytest.mark.parametrize(
    "text, shown",
    [("7d", "7d"), ("007d", "7d"), ("1.50h", "1.5h"), (" 90 ", "90"), ("0", "0"), ("0.0s", "0.0s")],
)
def test_durations_are_stored_and_shown_with_their_unit(text, shown):
    assert config.canonical_value("retention", text) == shown
    assert config.canonical_duration(shown) == shown


def test_retention_defaults_to_keep_forever_and_resolves_like_any_key():
    assert config.settings({}, {})["retention"] == 0.0
    assert config.settings({"retention": "7d"}, {})["retention"] == 604800.0
    entries = {e.key: (e.value, e.source) for e in config.resolve({"retention": "007d"}, {})}
    assert entries["retention"] == ("7d", "store")
    env = {"QUEUECTL_RETENTION": "15m"}
    assert config.settings({"retention": "7d"}, env)["retention"] == 900.0
    with pytest.raises(ConfigError, match="QUEUECTL_RETENTION"):
        config.settings({}, {"QUEUECTL_RETENTION": "1w"})


@given(
    st.from_regex(r"[0-9]{1,5}(\.[0-9]{1,6})?", fullmatch=True),
    st.sampled_from(["", "s", "m", "h", "d"]),
)
def test_a_duration_keeps_its_value_in_canonical_form(number, unit):
    text = number + unit
    shown = config.canonical_duration(text)
    assert shown.endswith(unit)
    assert config.parse_duration(shown) == config.parse_duration(text)
    assert config.parse_duration(text) == float(number) * config.DURATION_UNITS[unit or "s"]
