"""Model-based test of SPEC §7's rules: dependencies (`after`), unique keys and cancel.

A hypothesis state machine drives one store through batches of jobs with random dependencies
(on existing jobs, on earlier lines of the batch, on unknown ids) and random unique keys, runs
the job that is ready (completed, or dead at its first failure), cancels jobs, retries dead
ones, and checks the store against a small model after every step. The invariants the issue
names are checked on the store itself:
- no job is ready (`pending`) or has run before every one of its dependencies completed;
- no two unfinished jobs share a unique key;
- no job waits on a dependency that ended dead or canceled.

The time-and-lease side of the store is test_model.py's; here time does not matter (every job
is due at once, and nothing is held across steps), so both backends run the same machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from hypothesis.stateful import run_state_machine_as_test as run_machine
from storekit import EXIT_3, OK, spec

from queuectl.errors import DependencyError, InvalidTransition
from queuectl.store import ClaimRequest, open_store

EXAMPLES = int(os.environ.get("QUEUECTL_TEST_EXAMPLES") or 0)
UNFINISHED = {"waiting", "pending", "processing", "failed"}
KEYS = (None, None, "k1", "k2")


class Model:
    """What the store should hold: per id its state, dependencies and key, in insertion order."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.after: dict[str, tuple] = {}
        self.key: dict[str, str | None] = {}
        # Claim order among ready jobs: by run_at, which is the enqueue time, or the time of
        # a dlq retry (later than every job's before it).
        self.due: dict[str, int] = {}
        self.ticks = 0

    def make_due(self, job_id: str) -> None:
        self.ticks += 1
        self.due[job_id] = self.ticks

    def holder(self, key: str | None) -> str | None:
        return next(
            (i for i, k in self.key.items() if k == key and self.state[i] in UNFINISHED), None
        )

    def dependents(self, job_id: str) -> list[str]:
        return [i for i, deps in self.after.items() if job_id in deps]

    def ended(self, job_id: str, state: str) -> None:
        """`job_id` ended in `state`: release or cancel those waiting on it, as SPEC §7 says."""
        self.state[job_id] = state
        for dependent in self.dependents(job_id):
            if self.state[dependent] != "waiting":
                continue
            if state == "completed":
                if all(self.state[d] == "completed" for d in self.after[dependent]):
                    self.state[dependent] = "pending"
            else:
                self.ended(dependent, "canceled")


def machine_for(open_fresh):
    class ChainingMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store = open_fresh()
            self.model = Model()
            self.count = 0

        def teardown(self) -> None:
            self.store.close()

        def new_id(self) -> str:
            self.count += 1
            return f"j{self.count}"

        @precondition(lambda self: sum(s in UNFINISHED for s in self.model.state.values()) < 8)
        @rule(
            lines=st.lists(
                st.tuples(
                    st.lists(st.integers(0, 40), max_size=3),  # dependencies, by position
                    st.sampled_from(KEYS),
                    st.booleans(),  # one dependency unknown
                ),
                min_size=1,
                max_size=4,
            )
        )
        def add(self, lines) -> None:
            model = self.model
            known = list(model.state)
            specs, error = [], None
            for picks, key, unknown in lines:
                job_id = self.new_id()
                choices = known + [s.id for s in specs]  # earlier lines count
                after = tuple(dict.fromkeys(choices[p % len(choices)] for p in picks if choices))
                if unknown:
                    after += ("nope",)
                for dep in after:
                    if error is None and dep not in model.state and dep not in choices:
                        error = "unknown"
                    if error is None and model.state.get(dep) in ("dead", "canceled"):
                        error = "ended"
                specs.append(spec(job_id, after=after, unique_key=key, max_retries=0))
            if error is not None:
                try:
                    self.store.add(specs)
                except DependencyError:
                    return
                raise AssertionError(f"a bad dependency was accepted: {error}")
            added = self.store.add(specs)
            expected = []
            alias = {}  # a line not written -> the job holding its key (SPEC §7, chaining.py)
            for job in specs:
                job = job._replace(after=tuple(dict.fromkeys(alias.get(d, d) for d in job.after)))
                holder = model.holder(job.unique_key) if job.unique_key else None
                if holder is not None:
                    alias[job.id] = holder
                    expected.append(holder)
                    continue
                model.key[job.id] = job.unique_key
                model.after[job.id] = job.after
                done = all(model.state[d] == "completed" for d in job.after)
                model.state[job.id] = "pending" if done else "waiting"
                model.make_due(job.id)
                expected.append(job.id)
            assert added == expected

        @precondition(lambda self: "pending" in self.model.state.values())
        @rule(succeed=st.booleans())
        def run_next(self, succeed: bool) -> None:
            held = self.store.claim(ClaimRequest("w", "host", None, 600.0))
            ready = [i for i, s in self.model.state.items() if s == "pending"]
            first = min(ready, key=self.model.due.__getitem__)
            assert held is not None and held.job.id == first
            deps = self.model.after[first]
            assert all(self.store.get(d).state.value == "completed" for d in deps)
            assert self.store.finish(held, OK if succeed else EXIT_3, None).held
            self.model.ended(first, "completed" if succeed else "dead")

        @precondition(lambda self: self.model.state)
        @rule(index=st.integers(0, 40))
        def cancel(self, index: int) -> None:
            ids = list(self.model.state)
            job_id = ids[index % len(ids)]
            if self.model.state[job_id] not in UNFINISHED:
                try:
                    self.store.cancel(job_id)
                except InvalidTransition:
                    return
                raise AssertionError(f"a finished job was canceled: {job_id}")
            self.store.cancel(job_id)
            self.model.ended(job_id, "canceled")

        @precondition(lambda self: "dead" in self.model.state.values())
        @rule(index=st.integers(0, 40))
        def retry_dead(self, index: int) -> None:
            dead = [i for i, s in self.model.state.items() if s == "dead"]
            job_id = dead[index % len(dead)]
            holder = self.model.holder(self.model.key[job_id])
            if self.model.key[job_id] is not None and holder is not None:
                try:
                    self.store.retry_dead([job_id])
                except InvalidTransition:
                    return
                raise AssertionError(f"{job_id} retried while {holder} holds its key")
            assert self.store.retry_dead([job_id]) == [job_id]
            self.model.state[job_id] = "pending"  # its canceled dependents stay canceled
            self.model.make_due(job_id)

        @invariant()
        def store_matches_model(self) -> None:
            jobs = self.store.list_jobs()
            assert {job.id: job.state.value for job in jobs} == self.model.state

        @invariant()
        def the_rules_hold_in_the_store(self) -> None:
            jobs = {job.id: job for job in self.store.list_jobs()}
            keys = [j.unique_key for j in jobs.values() if j.unique_key and j.state in UNFINISHED]
            assert len(keys) == len(set(keys)), "two unfinished jobs share a key"
            for job in jobs.values():
                deps = [jobs[d].state.value for d in job.after]
                if job.state.value == "pending" and job.attempts == 0 and job.after:
                    assert all(s == "completed" for s in deps), (job.id, deps)
                if job.state.value == "waiting":
                    assert not {"dead", "canceled"} & set(deps), (job.id, deps)
                    assert any(s != "completed" for s in deps), (job.id, deps)

    return ChainingMachine


def test_chaining_rules_hold_in_random_sequences(db_target: str, tmp_path: Path) -> None:
    options = settings(
        max_examples=EXAMPLES or 100,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    if not db_target.startswith("postgresql"):

        def fresh_sqlite():
            path = Path(tempfile.mkdtemp(dir=tmp_path)) / "queue.db"
            return open_store(str(path), synchronous="NORMAL")

        run_machine(machine_for(fresh_sqlite), settings=options)
        return
    import psycopg

    store = open_store(db_target)
    try:
        with psycopg.connect(db_target, autocommit=True) as admin:

            class KeptOpen:
                def __getattr__(self, name: str):
                    return getattr(store, name)

                def close(self) -> None:
                    pass

            def fresh_postgres():
                admin.execute("DELETE FROM queuectl_jobs")  # edges go with their jobs
                return KeptOpen()

            run_machine(machine_for(fresh_postgres), settings=options)
    finally:
        store.close()
