"""Configuration keys (SPEC §6): defaults, validation and per-process environment overrides.

Values live in the store so every worker on every host sees the same settings;
`QUEUECTL_<KEY>` environment variables override them for one process.
"""

# No `from __future__ import annotations`, for the NamedTuples below: see models.py.
import os
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .errors import QueueError
from .models import MAX_SECONDS


class ConfigError(QueueError, ValueError):
    """An unknown key or a value that key does not accept (also a ValueError, as it was)."""


# Only ASCII whitespace around a value is forgiven: str.strip() would also drop characters
# such as U+3000 or U+001C that no one types on purpose.
_SPACE = " \t\n\r\f\v"


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # [0-9]+; int() and float() also take ٣, ３, 1_0


def _split(text: str) -> tuple[str, str | None] | None:
    """The whole and fraction digits of `text` if it is a plain ASCII decimal,
    `^[0-9]+(\\.[0-9]+)?$` once ASCII whitespace around it is dropped; None otherwise."""
    whole, dot, fraction = text.strip(_SPACE).partition(".")
    if not _digits(whole) or (dot and not _digits(fraction)):
        return None
    return whole, fraction if dot else None


def canonical(text: str) -> str:
    """A value in the form it is stored and shown in: no leading zeros, and no trailing zeros
    after the point but one (`007` → `7`, `2.50` → `2.5`, `1.000` → `1.0`, like the default
    `1.0`). Text that is no plain decimal is returned as it is, for parsing to refuse."""
    parts = _split(text)
    if parts is None:
        return text
    whole, fraction = parts
    whole = whole.lstrip("0") or "0"
    return whole if fraction is None else f"{whole}.{fraction.rstrip('0') or '0'}"


def _plain(text: str, minimum: float, integer: bool) -> tuple[str, str | None]:
    """`text` split as by _split, or ConfigError. Python's int() and float() accept far more
    (`+5`, `1e3`, `1_000`, `٣`, `３`, `inf`): values that were stored and echoed back as
    typed, and that other programs reading the store would not understand."""
    parts = _split(text)
    if parts is not None and not (integer and parts[1] is not None):
        return parts
    if text.strip(_SPACE).startswith("-") and _split(text.strip(_SPACE)[1:]) is not None:
        raise ConfigError(f"must be at least {minimum:g}, got {text.strip(_SPACE)}")
    if integer:
        raise ConfigError(f"{text!r} is not a whole number (ASCII digits 0-9)")
    raise ConfigError(f"{text!r} is not a plain decimal number (ASCII digits 0-9, one '.')")


def _below(whole: str, fraction: str | None, minimum: str) -> bool:
    """Whether the decimal `whole.fraction` is below `minimum` (a plain decimal), compared as
    digits: float() rounds 0.99999999999999999 up to 1.0. (No `decimal` import: this is on
    the path of every `enqueue`.)"""
    whole = whole.lstrip("0") or "0"
    least_whole, _, least_fraction = minimum.partition(".")
    if (len(whole), whole) != (len(least_whole), least_whole):
        return (len(whole), whole) < (len(least_whole), least_whole)
    fraction = fraction or ""
    width = max(len(fraction), len(least_fraction))
    return fraction.ljust(width, "0") < least_fraction.ljust(width, "0")


def _number(minimum: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        whole, fraction = _plain(text, float(minimum), integer=False)
        if _below(whole, fraction, minimum):
            raise ConfigError(f"must be at least {minimum}, got {canonical(text)}")
        value = float(whole if fraction is None else f"{whole}.{fraction}")
        if value > MAX_SECONDS:  # the bound a job spec's seconds have (specs.check_seconds)
            raise ConfigError(f"must be at most {MAX_SECONDS:g}, got {canonical(text)}")
        return value

    return parse


# DURATION (SPEC §8): seconds in each unit; a number without one is seconds.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_FORM = "a number of seconds, or a number with a unit s, m, h or d (90s, 15m, 1.5h, 7d)"


def _duration_parts(text: str) -> tuple[str, str]:
    """The number and the unit ('' for none) of a DURATION, ASCII whitespace around it dropped;
    the number is not checked yet."""
    text = text.strip(_SPACE)
    if text[-1:] in DURATION_UNITS:
        return text[:-1], text[-1]
    return text, ""


def parse_duration(text: str) -> float:
    """Seconds of a DURATION (SPEC §8): a non-negative plain decimal, optionally followed by a
    unit `s`, `m`, `h` or `d` with nothing in between (`90`, `90s`, `15m`, `1.5h`, `7d`);
    ConfigError otherwise (`-1`, `1w`, `7 d`, `1e3`, `inf`, `٣d`, empty)."""
    number, unit = _duration_parts(text)
    # _split forgives whitespace around the number: here it would be inside the value (`7 d`).
    if number != number.strip(_SPACE) or _split(number) is None:
        if number.startswith("-") and _split(number[1:]) is not None:
            raise ConfigError(f"must be at least 0, got {text.strip(_SPACE)}")
        raise ConfigError(f"{text!r} is not a duration: give {DURATION_FORM}")
    seconds = float(number) * DURATION_UNITS[unit or "s"]
    if seconds > MAX_SECONDS:
        raise ConfigError(f"must be at most {MAX_SECONDS:g} seconds, got {text.strip(_SPACE)}")
    return seconds


def canonical_duration(text: str) -> str:
    """A DURATION as it is stored and shown: its number in canonical form, its unit kept
    (`007d` → `7d`, `1.50h` → `1.5h`). Text that is no DURATION is returned as it is."""
    number, unit = _duration_parts(text)
    if number != number.strip(_SPACE) or _split(number) is None:
        return text
    return canonical(number) + unit


def _count(text: str) -> int:
    whole, _ = _plain(text, 0, integer=True)
    whole = whole.lstrip("0") or "0"
    # Compared as digits first: int() refuses strings of more than 4300 digits.
    if len(whole) > 19 or int(whole) > 2**63 - 1:
        raise ConfigError("is too large")
    return int(whole)


class Key(NamedTuple):
    name: str
    default: str
    parse: Callable[[str], float]
    help: str
    form: Callable[[str], str] = canonical  # the value as stored and shown


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("max-retries", "3", _count, "retries after the first run, for jobs that don't set it"),
        Key("backoff-base", "2", _number("0"), "retry k waits backoff-base ** k seconds"),
        Key("backoff-max", "3600", _number("0"), "cap on one backoff delay, in seconds"),
        Key("job-timeout", "300", _number("0"), "default run time limit in seconds; 0 = none"),
        # A lease under a second is within ordinary scheduling and store delays: live
        # workers would lose their leases and requeue each other's jobs. A poll under 10 ms
        # keeps a core busy for nothing.
        Key("lease-seconds", "30", _number("1"), "silence after which a job is requeued"),
        Key("poll-interval", "1.0", _number("0.01"), "longest idle wait between looks"),
        # SPEC §8: a DURATION, parsed to seconds; stored and shown with its unit (`7d`).
        Key(
            "retention",
            "0",
            parse_duration,
            "workers prune completed and canceled jobs older than this; 0 = keep forever",
            canonical_duration,
        ),
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


def canonical_value(key: str, text: str) -> str:
    """`text` checked for `key` (ConfigError naming the key) and in canonical form: what
    `config set` stores and prints."""
    parse_value(key, text)
    return KEYS[key].form(text)


class Entry(NamedTuple):
    key: str
    value: str
    source: str  # "env", "store" or "default"


def resolve(stored: Mapping[str, str], environ: Mapping[str, str] | None = None) -> list[Entry]:
    """Every key's value in effect for this process, and where it came from. Values are in
    canonical form, also those of overrides and of stores written by older versions, which
    kept them as typed; a value that is not a plain number is left as it is, for settings()
    to refuse."""
    environ = os.environ if environ is None else environ
    entries = []
    for key, spec in KEYS.items():
        if env_name(key) in environ:
            entries.append(Entry(key, spec.form(environ[env_name(key)]), "env"))
        elif key in stored:
            entries.append(Entry(key, spec.form(stored[key]), "store"))
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
            # Older versions stored values such as `1e3` or `٣` as typed.
            raise ConfigError(
                f"{exc} (stored; change it with `queuectl config set {entry.key} VALUE`)"
            ) from None
    return values


def load_dotenv_file(path: str = ".env") -> None:
    """Load a .env file (the current folder's by default) into the environment, never
    overriding variables already set (SPEC §1): the store target and config overrides it names
    then apply as if exported. Nothing happens when there is no such file; python-dotenv is
    imported only when there is one (enqueue runs in shell loops). ConfigError when it cannot
    be read. The CLI and Queue.open() both call this: one rule for where the queue lives."""
    if not os.path.isfile(path):
        return
    from dotenv import load_dotenv

    try:
        load_dotenv(path, override=False, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
