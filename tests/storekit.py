"""Helpers for tests that talk to a store directly (the contract suite, the model tests).

Tests that need time to pass use `Timed` (the `timed` fixture in conftest.py): on a backend
that takes an injected clock (SQLite) time jumps instantly; elsewhere the test waits on the
real clock with short, scaled durations. Not a test module itself.
"""

from __future__ import annotations

from conftest import wait_for

from queuectl.models import JobState, Outcome, RunResult
from queuectl.specs import build_spec
from queuectl.store import ClaimRequest

DEFAULTS = {"max-retries": 3, "job-timeout": 300.0}
LEASE = 60.0
OK = RunResult(Outcome.EXITED, 0, None, output_tail="all good\n")
EXIT_3 = RunResult(Outcome.EXITED, 3, "exited with status 3", output_tail="oops\n")
PAST = "2020-01-01T00:00:00Z"
FUTURE = "2100-01-01T00:00:00Z"
# Float times may lose a little on a round trip through the store (PostgreSQL: microseconds).
EPS = 0.01


# SPEC §7's fields, set on the built spec: these tests exercise the store, not the parser.
CHAINING_FIELDS = ("after", "unique_key", "cwd", "env")


def spec(job_id: str | None = None, *, defaults: dict = DEFAULTS, **fields):
    """A job spec as `enqueue` builds it; the command echoes the id unless `fields` names one."""
    chaining = {name: fields.pop(name) for name in CHAINING_FIELDS if name in fields}
    if "after" in chaining:
        chaining["after"] = tuple(chaining["after"])
    data = {"command": f"echo {job_id}", **fields}
    if job_id is not None:
        data["id"] = job_id
    return build_spec(data, defaults)._replace(**chaining)


def add(store, *job_ids: str, defaults: dict = DEFAULTS, **fields) -> list[str]:
    """Add one job per id, all with the same `fields`, in one call; returns the ids."""
    return store.add([spec(job_id, defaults=defaults, **fields) for job_id in job_ids])


def claim(store, worker: str = "w1", queues=None, lease: float = LEASE):
    return store.claim(ClaimRequest(worker, "host-a", queues, lease))


def claim_all(store, worker: str = "w1", queues=None) -> list[str]:
    taken = []
    while (held := claim(store, worker, queues)) is not None:
        taken.append(held.job.id)
    return taken


def state(store, job_id: str) -> JobState:
    return store.get(job_id).state


def ids(jobs) -> list[str]:
    return [job.id for job in jobs]


def make_dead(store, job_id: str, **fields) -> None:
    add(store, job_id, **fields)
    held = claim(store, queues=[fields.get("queue", "default")])
    assert held is not None and held.job.id == job_id
    assert store.finish(held, EXIT_3, None).held


class FakeClock:
    def __init__(self) -> None:
        self.time = 1_700_000_000.0

    def __call__(self) -> float:
        return self.time


class Timed:
    """A store and a way to move its time forward."""

    def __init__(self, store, clock: FakeClock | None) -> None:
        self.store = store
        self.clock = clock
        # Durations in tests are multiples of `unit`: free with a fake clock, short otherwise.
        self.unit = 10.0 if clock else 0.25

    def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.time += seconds
            return
        target = self.store.now() + seconds
        wait_for(lambda: self.store.now() >= target, timeout=seconds + 10, interval=0.005)


def fixed_delay(seconds: float | None):
    calls = []

    def policy(attempts: int, max_retries: int):
        calls.append((attempts, max_retries))
        return seconds

    policy.calls = calls
    return policy


def expire(timed, held) -> None:
    """Move time past the claim's lease."""
    deadline = timed.store.get(held.job.id).lease_until
    timed.advance(max(0.0, deadline - timed.store.now()) + EPS)
