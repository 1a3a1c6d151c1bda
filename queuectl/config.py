"""Configuration keys (SPEC §6): defaults, validation and per-process environment overrides.

Values live in the store so every worker on every host sees the same settings;
`QUEUECTL_<KEY>` environment variables override them for one process.
"""

# No `from __future__ import annotations`, for the NamedTuples below: see models.py.
import math
import os
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .models import MAX_SECONDS


class ConfigError(ValueError):
    """An unknown key or a value that key does not accept."""


def _number(minimum: float, strict: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{text!r} is not a finite number")
        if value < minimum or (strict and value == minimum):
            relation = "greater than" if strict else "at least"
            raise ConfigError(f"must be {relation} {minimum:g}, got {text}")
        if value > MAX_SECONDS:  # the bound a job spec's seconds have (models.check_seconds)
            raise ConfigError(f"must be at most {MAX_SECONDS:g}, got {text}")
        return value

    return parse


def _count(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"must be at least 0, got {text}")
    if value > 2**63 - 1:
        raise ConfigError("is too large")
    return value


class Key(NamedTuple):
    name: str
    default: str
    parse: Callable[[str], float]
    help: str


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("max-retries", "3", _count, "retries after the first run, for jobs that don't set it"),
        Key("backoff-base", "2", _number(0), "retry k waits backoff-base ** k seconds"),
        Key("backoff-max", "3600", _number(0), "cap on one backoff delay, in seconds"),
        Key("job-timeout", "300", _number(0), "default run time limit in seconds; 0 = none"),
        Key(
            "lease-seconds", "30", _number(0, strict=True), "silence after which a job is requeued"
        ),
        Key("poll-interval", "1.0", _number(0, strict=True), "longest idle wait between looks"),
    )
}


def env_name(key: str) -> str:
    return "QUEUECTL_" + key.upper().replace("-", "_")


def check_key(key: str) -> Key:
    try:
        return KEYS[key]
    except KeyError:
        known = ", ".join(KEYS)
        raise ConfigError(f"unknown config key {key!r} (known keys: {known})") from None


def parse_value(key: str, text: str) -> float:
    """The typed value of `text` for `key`, or ConfigError naming the key."""
    spec = check_key(key)
    try:
        return spec.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"invalid value for {key}: {exc}") from None


class Entry(NamedTuple):
    key: str
    value: str
    source: str  # "env", "store" or "default"


def resolve(stored: Mapping[str, str], environ: Mapping[str, str] | None = None) -> list[Entry]:
    """Every key's value in effect for this process, and where it came from."""
    environ = os.environ if environ is None else environ
    entries = []
    for key, spec in KEYS.items():
        if env_name(key) in environ:
            entries.append(Entry(key, environ[env_name(key)], "env"))
        elif key in stored:
            entries.append(Entry(key, stored[key], "store"))
        else:
            entries.append(Entry(key, spec.default, "default"))
    return entries


def settings(stored: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict:
    """Typed values in effect; a bad environment override is reported with its variable."""
    values = {}
    for entry in resolve(stored, environ):
        try:
            values[entry.key] = parse_value(entry.key, entry.value)
        except ConfigError as exc:
            if entry.source == "env":
                raise ConfigError(f"{env_name(entry.key)}: {exc}") from None
            raise
    return values
