"""Cron expressions in IANA time zones: checking them and computing their fire times (SPEC §8).

The only module that imports cronsim (https://github.com/cuu508/cronsim, by the author of
Healthchecks.io): it has no dependencies of its own and follows Debian cron across daylight
saving changes. Pure functions: every time comes in as an argument (epoch seconds), nothing
reads a clock, so the store can inject its own (the server's on PostgreSQL) and tests any
instant they like.

What a daylight saving change does (cronsim's rules, which are Debian cron's): for an
expression with fixed minutes and hours (`30 2 * * *`), a wall-clock time that a spring-forward
change skips fires at the first minute after the gap (03:00), and one that a fall-back change
repeats fires once, at its first occurrence. Expressions whose minute or hour field starts
with `*` (`0 * * * *`, `*/15 * * * *`) follow real time: every real hour, or quarter, fires.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import QueueError

# crontab(5)'s nicknames, as their five fields (cronsim takes only fields).
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
MAX_EXPRESSION_LENGTH = 200
MAX_ZONE_LENGTH = 100
# A walk through fire times gives up after this many steps: only a schedule whose every
# cronsim answer lands in the past (never seen) could need more, and a worker must not spin.
MAX_STEPS = 100_000


class CronError(QueueError, ValueError):
    """A cron expression or time zone that cannot be used; the message names the problem
    (also a ValueError, as it was)."""


def fields(expression: str) -> str:
    """The five fields of an expression or of its @nickname; CronError if it has not five."""
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            names = ", ".join(ALIASES)
            raise CronError(f"unknown cron nickname {text!r} (known: {names})")
        return ALIASES[text.lower()]
    parts = text.split()
    if len(parts) != len(FIELDS):
        raise CronError(
            f"a cron expression has 5 fields ({' '.join(FIELDS)}), got {len(parts)}: {expression!r}"
        )
    return " ".join(parts)


def normalized(expression: str) -> str:
    """The expression as stored and shown: fields one space apart, a nickname in lower case.
    CronError if it has not five fields (nor is a nickname)."""
    text = expression.strip()
    return text.lower() if text.startswith("@") and fields(text) else " ".join(text.split())


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (such as Europe/Berlin or UTC); CronError if unknown."""
    if not name or len(name) > MAX_ZONE_LENGTH or not name.isprintable():
        raise CronError(f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: not a valid key (an absolute path, `..`); OSError: an unreadable file.
        raise CronError(
            f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin"
        ) from None


def check(expression: str, tz: str, now: float) -> float:
    """Check an expression and a zone; returns the first fire time after `now`. CronError if
    either is bad, or if the expression never fires (`0 0 30 2 *`)."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CronError(f"the cron expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    first = next_after(expression, tz, now)
    if first is None:
        raise CronError(f"the cron expression {expression!r} never fires")
    return first


def next_after(expression: str, tz: str, after: float) -> float | None:
    """The first fire time strictly after `after`, or None if there is none."""
    return next(forward(expression, tz, after), None)


def next_times(expression: str, tz: str, after: float, count: int) -> list[float]:
    """The first `count` fire times strictly after `after` (fewer if it stops firing)."""
    times: list[float] = []
    if count <= 0:
        return times
    for moment in forward(expression, tz, after):
        times.append(moment)
        if len(times) == count:
            break
    return times


def latest(expression: str, tz: str, now: float, since: float) -> float | None:
    """The latest fire time in [since, now], or None if there is none.

    `since` is a fire time known not to have been enqueued yet (a schedule's next_run_at):
    after a long time without workers only the latest one is wanted, found by walking back
    from `now` (cronsim's reverse mode) and then forward from there, so that the answer is
    one of the fire times `forward` gives whatever the time zone did meanwhile."""
    if since > now:
        return None
    start = since
    back = _previous(expression, tz, now)
    if back is not None and back > since:
        start = back
    found = _last_until(forward(expression, tz, start - 1), now)
    if found is None and start != since:
        # The reverse walk overshot what the forward one gives (a daylight saving quirk);
        # walk forward from the fire time known to be due instead.
        found = _last_until(forward(expression, tz, since - 1), now)
    return found


def forward(expression: str, tz: str, after: float) -> Iterator[float]:
    """Fire times strictly after `after`, in order, as epoch seconds."""
    from cronsim import CronSim, CronSimError

    place = zone(tz)
    start = _moment(after, place)
    try:
        times = CronSim(fields(expression), start)
    except CronSimError as exc:
        raise CronError(f"invalid cron expression {expression!r}: {_reason(exc)}") from None
    last = after
    for _ in range(MAX_STEPS):
        try:
            moment = next(times).timestamp()
        except (StopIteration, OverflowError):  # 50 years without a match; past year 9999
            return
        # A wall-clock time read in the first occurrence of a repeated hour can lie before
        # `after`: it fired already (or never will again). Only strictly later times count.
        if moment > last:
            last = moment
            yield moment


def local_time(epoch: float, tz: str) -> str:
    """A fire time on the zone's wall clock, for people: `2026-03-29 03:00 CEST`."""
    return _moment(epoch, zone(tz)).strftime("%Y-%m-%d %H:%M %Z")


def _previous(expression: str, tz: str, now: float) -> float | None:
    """The latest fire time at or before `now` by cronsim's reverse walk (None if none)."""
    from cronsim import CronSim

    place = zone(tz)
    # Reverse mode steps back a second before matching: start one second past `now`.
    times = CronSim(fields(expression), _moment(math.floor(now) + 1, place), reverse=True)
    for _ in range(3):  # past a daylight saving quirk or two, never a long walk
        try:
            moment = next(times).timestamp()
        except (StopIteration, OverflowError):
            return None
        if moment <= now:
            return moment
    return None


def _last_until(times: Iterator[float], now: float) -> float | None:
    found = None
    for moment in times:
        if moment > now:
            break
        found = moment
    return found


def _moment(epoch: float, place: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(math.floor(epoch), tz=timezone.utc).astimezone(place)


def _reason(exc: Exception) -> str:
    text = str(exc) or "bad field"
    return text[0].lower() + text[1:]
