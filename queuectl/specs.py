"""Job specs from users: JSON or flags in, a validated JobSpec (every default filled in) out.

Pure like the rest of the rules (no store, no clock: `now` comes from the caller), and apart
from models.py because it is the one place where untrusted input is read: every check and
its message a user sees for a bad spec is here.
"""

# No `from __future__ import annotations` (see models.py): imported by every `enqueue`.
import math
import os
from datetime import datetime, timezone
from typing import Any

from .errors import QueueError
from .models import (
    DEFAULT_QUEUE,
    INT64_MAX,
    INT64_MIN,
    MAX_ID_LENGTH,
    MAX_QUEUE_LENGTH,
    MAX_SECONDS,
    JobSpec,
)


class SpecError(QueueError, ValueError):
    """A job spec that cannot be accepted; the message names the problem. Also a ValueError,
    as it always was, for callers that catch that."""


SPEC_FIELDS = (
    "id",
    "command",
    "max_retries",
    "priority",
    "queue",
    "run_at",
    "delay",
    "timeout",
    "after",
    "unique_key",
    "cwd",
    "env",
)
MAX_UNIQUE_KEY_LENGTH = 200
# A folder name longer than Linux's PATH_MAX could never be entered: refused at once rather
# than stored to fail every run.
MAX_CWD_LENGTH = 4096
# The worker sets these for every run (SPEC §5); a job may not set or shadow them.
RESERVED_ENV_PREFIX = "QUEUECTL_"


def new_job_id() -> str:
    """A random id: 64 bits, so collisions stay negligible at millions of jobs.
    (os.urandom, not secrets: the id is no secret, and secrets costs 4 ms of start-up.)"""
    return os.urandom(8).hex()


def check_name(value: Any, what: str, max_length: int) -> str:
    """Validate an id or queue name: untrusted text that must stay printable and bounded."""
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string, got {type_name(value)}")
    if not value:
        raise SpecError(f"{what} must not be empty")
    if len(value) > max_length:
        raise SpecError(f"{what} is {len(value)} characters long; the limit is {max_length}")
    if any(is_control(ch) for ch in value):
        raise SpecError(f"{what} must not contain control characters")
    check_encodable(value, what)
    return value


def check_encodable(value: str, what: str) -> None:
    """JSON can spell lone surrogates (\\ud800) that no store or terminal can encode, and
    command-line bytes that are not UTF-8 reach Python as such surrogates too."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(
            f"{what} is not valid text: bytes that are not UTF-8, or a lone surrogate "
            "(\\ud800 …) in JSON"
        ) from None


def is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 32 or 127 <= code < 160 or ch in "\u2028\u2029"


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_int(value: Any, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be an integer, got {type_name(value)}")
    low = INT64_MIN if minimum is None else minimum
    if value < low:
        raise SpecError(f"{what} must be at least {low}, got {value}")
    if value > INT64_MAX:
        raise SpecError(f"{what} is too large")
    return value


def check_seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number of seconds, got {type_name(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float, e.g. 10**400 in the JSON
        raise SpecError(f"{what} is out of range") from None
    if not math.isfinite(number):
        raise SpecError(f"{what} must be a finite number")
    if number < 0:
        raise SpecError(f"{what} must be at least 0, got {value}")
    if number > MAX_SECONDS:
        raise SpecError(f"{what} is too large")
    return number


def parse_time(value: Any, what: str = "run_at") -> float:
    """Parse an ISO-8601 time into epoch seconds; a time without an offset is taken as UTC."""
    if not isinstance(value, str):
        raise SpecError(f"{what} must be an ISO-8601 time string, got {type_name(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(f"{what} is not an ISO-8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment.astimezone(timezone.utc)  # e.g. 9999-12-31T23:59-23:59 is past year 9999 in UTC
    except OverflowError:
        raise SpecError(f"{what} is out of range: {value!r}") from None
    return moment.timestamp()


def reject_constant(name: str) -> Any:
    raise SpecError(f"invalid JSON: {name} is not a valid JSON number")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: json keeps the last of a repeated key
    silently, so `{"id": "a", "id": "b"}` would enqueue job b. Nested objects too."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise SpecError(f"key {key!r} is given twice in a JSON object")
            seen.add(key)
    return data


_decoder = None  # one JSON decoder for every line of a bulk enqueue


def parse_spec_json(text: str) -> dict[str, Any]:
    """Decode one JSON job spec; NaN and Infinity are refused (they are not JSON), and so is a
    key given twice in an object."""
    import json  # only this path needs it: enqueue --command does not

    global _decoder
    if _decoder is None:
        # json.loads(text, parse_constant=…) would build a new decoder for every line: a
        # quarter of the parsing time of `enqueue -`.
        _decoder = json.JSONDecoder(parse_constant=reject_constant, object_pairs_hook=unique_keys)
    try:
        data = _decoder.decode(text)
    except SpecError:  # from the hooks: a ValueError, with its message made already
        raise
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise SpecError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise SpecError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"a job spec must be a JSON object, got {type_name(data)}")
    return data


def build_spec(data: dict[str, Any], defaults: dict[str, Any]) -> JobSpec:
    """Validate a decoded spec and fill in defaults (copied now, so later config changes
    do not change queued jobs).

    `defaults` holds the config values in effect: `max-retries` and `job-timeout`.
    """
    unknown = sorted(key for key in data if key not in SPEC_FIELDS)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        allowed = ", ".join(SPEC_FIELDS)
        raise SpecError(f"unknown field {names} (allowed: {allowed})")
    if "command" not in data:
        raise SpecError("missing required field 'command'")
    command = data["command"]
    if not isinstance(command, str):
        raise SpecError(f"command must be a string, got {type_name(command)}")
    if not command.strip():
        raise SpecError("command must not be empty")
    if "\x00" in command:
        raise SpecError("command must not contain NUL characters")
    check_encodable(command, "command")

    job_id = data.get("id")
    job_id = new_job_id() if job_id is None else check_name(job_id, "id", MAX_ID_LENGTH)
    queue = data.get("queue")
    queue = DEFAULT_QUEUE if queue is None else check_name(queue, "queue", MAX_QUEUE_LENGTH)

    max_retries = data.get("max_retries")
    if max_retries is None:
        max_retries = defaults["max-retries"]
    max_retries = check_int(max_retries, "max_retries", minimum=0)
    priority = data.get("priority")
    priority = 0 if priority is None else check_int(priority, "priority")
    timeout = data.get("timeout")
    timeout = defaults["job-timeout"] if timeout is None else timeout
    timeout = check_seconds(timeout, "timeout")

    run_at = data.get("run_at")
    delay = data.get("delay")
    if run_at is not None and delay is not None:
        raise SpecError("give either run_at or delay, not both")
    run_at_epoch = None if run_at is None else parse_time(run_at, "run_at")
    delay_seconds = 0.0 if delay is None else check_seconds(delay, "delay")

    after = check_after(data.get("after"), job_id)
    unique_key = data.get("unique_key")
    if unique_key is not None:
        unique_key = check_name(unique_key, "unique_key", MAX_UNIQUE_KEY_LENGTH)
    cwd = data.get("cwd")
    cwd = None if cwd is None else check_cwd(cwd)
    env = data.get("env")
    env = None if env is None else check_env(env)

    return JobSpec(
        id=job_id,
        command=command,
        max_retries=max_retries,
        priority=priority,
        queue=queue,
        timeout=timeout,
        run_at=run_at_epoch,
        delay=delay_seconds,
        after=after,
        unique_key=unique_key,
        cwd=cwd,
        env=env,
    )


def check_after(value: Any, job_id: str) -> tuple:
    """The ids a job waits for, in order, each once. Whether they name jobs is the store's
    to say (a job on an earlier line of the same bulk counts)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(f"after must be an array of job ids, got {type_name(value)}")
    ids: dict[str, None] = {}  # ordered, and a repeated id is harmless: kept once
    for index, item in enumerate(value):
        ids[check_name(item, f"after[{index}]", MAX_ID_LENGTH)] = None
    if job_id in ids:
        raise SpecError(f"after lists the job's own id {job_id!r}: a job cannot wait for itself")
    return tuple(ids)


def check_cwd(value: Any) -> str:
    """A folder for the command to run in: absolute, since a relative one would depend on the
    folder each worker happens to run in. Not checked for existence: it may exist only on the
    workers' hosts (a run there fails as "could not start" if it does not)."""
    if not isinstance(value, str):
        raise SpecError(f"cwd must be a string, got {type_name(value)}")
    if not value:
        raise SpecError("cwd must not be empty")
    if "\x00" in value:
        raise SpecError("cwd must not contain NUL characters")
    if len(value) > MAX_CWD_LENGTH:
        raise SpecError(f"cwd is {len(value)} characters long; the limit is {MAX_CWD_LENGTH}")
    check_encodable(value, "cwd")
    if not is_absolute(value):
        raise SpecError(f"cwd must be an absolute folder, got the relative path {value!r}")
    return value


def is_absolute(path: str) -> bool:
    """Absolute here or on a Windows host: workers may run on either (PostgreSQL), so a
    `C:\\work` given on Linux is not refused; a host where it means nothing fails the run."""
    if os.path.isabs(path) or path.startswith("\\\\"):
        return True
    return len(path) >= 3 and path[0].isascii() and path[0].isalpha() and path[1:3] in (":\\", ":/")


def check_env(value: Any) -> dict[str, str] | None:
    """Variables added to the worker's environment for this job; None for none. A name with
    `=` could not be set (the environment is NAME=VALUE strings), NUL ends a C string, and
    QUEUECTL_* are the worker's own (QUEUECTL_JOB_ID, QUEUECTL_ATTEMPT, its store)."""
    if not isinstance(value, dict):
        raise SpecError(f"env must be an object of names to strings, got {type_name(value)}")
    for name, text in value.items():
        check_env_name(name)
        if not isinstance(text, str):
            raise SpecError(f"env {name!r} must be a string, got {type_name(text)}")
        if "\x00" in text:
            raise SpecError(f"env {name!r} must not contain NUL characters")
        check_encodable(text, f"env {name!r}")
    return dict(value) or None


def check_env_name(name: str) -> str:
    """Check an environment variable's name (a JSON key, or NAME of `--env NAME[=VALUE]`)."""
    if not name:
        raise SpecError("env names must not be empty")
    if "=" in name:
        raise SpecError(f"env name {name!r} must not contain '='")
    if "\x00" in name:
        raise SpecError(f"env name {name!r} must not contain NUL characters")
    check_encodable(name, f"env name {name!r}")
    if name.startswith(RESERVED_ENV_PREFIX):
        raise SpecError(
            f"env name {name!r} is reserved: names starting with {RESERVED_ENV_PREFIX} are "
            "set by the worker"
        )
    return name
