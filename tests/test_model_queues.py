"""Model-based test of queue pause and limits (SPEC §8) where they decide most: which job each
claim takes, with three workers holding claims across steps.

test_model.py checks the settings too, among leases, rescues and stalls; there a claim in a
full limited queue while other queues have ready jobs is rare. Here a small machine does only
this: add jobs to three queues, claim (alone, or along with a run's outcome, as a busy worker
does), complete, retry at once or bury, cancel, and pause, resume and limit queues. After each
claim: the store took the model's best job (priority, then due time, then insertion) among the
ready jobs of the open queues the worker serves, or none when the model has none. After each
step: every job's state, and no limited queue with more jobs processing than its limit (beyond
those already running when the limit was set). Time does not matter (every job is due at once,
leases never run out), so both backends run the same machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from hypothesis.stateful import run_state_machine_as_test as run_machine
from storekit import EXIT_3, OK, FakeClock, spec

from queuectl.store import ClaimRequest, open_store

EXAMPLES = int(os.environ.get("QUEUECTL_TEST_EXAMPLES") or 0)
QUEUES = ("a", "b", "c")
FILTERS = (None, None, ("a",), ("a", "b"), ("b", "c"))
WORKERS = ("w0", "w1", "w2")
LEASE = 1e6  # never runs out here
READY = ("pending", "failed")


class QJob:
    def __init__(self, job_id: str, queue: str, priority: int, seq: int, due: int) -> None:
        self.id, self.queue, self.priority, self.seq, self.due = job_id, queue, priority, seq, due
        self.state = "pending"


def machine_for(open_fresh):
    class QueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store, self.clock = open_fresh()
            self.ticks = 0
            self.jobs: dict[str, QJob] = {}
            self.held: dict[str, object] = {}  # worker -> its claim
            self.paused: set[str] = set()
            self.limits: dict[str, int] = {}
            self.over_limit: dict[str, set[str]] = {}  # running when the limit was set

        def teardown(self) -> None:
            self.store.close()

        def tick(self) -> int:
            """Before each store call that stamps a time: due times order as the store's."""
            self.ticks += 1
            if self.clock is not None:
                self.clock.time = 1_700_000_000.0 + self.ticks
            return self.ticks

        # -- the model -------------------------------------------------------------------

        def running(self, queue: str) -> set[str]:
            return {
                j.id for j in self.jobs.values() if j.queue == queue and j.state == "processing"
            }

        def open(self, queue: str) -> bool:
            limit = self.limits.get(queue, 0)
            return queue not in self.paused and (limit == 0 or len(self.running(queue)) < limit)

        def best(self, queues) -> QJob | None:
            ready = [
                j
                for j in self.jobs.values()
                if j.state in READY and (queues is None or j.queue in queues) and self.open(j.queue)
            ]
            return min(ready, key=lambda j: (-j.priority, j.due, j.seq), default=None)

        def took(self, worker: str, queues, claim) -> None:
            """The claim a worker got must be the model's best job, or none."""
            expected = self.best(queues)
            got = None if claim is None else claim.job.id
            assert got == (expected and expected.id), (
                f"{worker} claimed {got!r} from {queues}, the model wanted "
                f"{expected and expected.id!r}; paused {sorted(self.paused)}, "
                f"limits {self.limits}"
            )
            if claim is not None:
                expected.state = "processing"
                self.held[worker] = claim

        # -- rules -----------------------------------------------------------------------

        # Every example starts with jobs in several queues, most with a limit or two: a
        # setting matters while its queue has jobs to run.
        @initialize(
            batch=st.lists(
                st.tuples(st.sampled_from(QUEUES), st.integers(-1, 1)), min_size=2, max_size=6
            )
        )
        def first_jobs(self, batch) -> None:
            self.add(batch)

        @initialize(
            limits=st.lists(
                st.tuples(st.sampled_from(QUEUES), st.sampled_from((0, 1, 1, 2))), max_size=2
            )
        )
        def first_limits(self, limits) -> None:
            for name, limit in limits:
                self.limit(name, limit)

        @precondition(lambda self: sum(j.state in READY for j in self.jobs.values()) < 8)
        @rule(
            batch=st.lists(
                st.tuples(st.sampled_from(QUEUES), st.integers(-1, 1)), min_size=1, max_size=3
            )
        )
        def add(self, batch) -> None:
            specs = []
            for queue, priority in batch:
                specs.append(
                    spec(f"j{len(self.jobs) + len(specs)}", queue=queue, priority=priority)
                )
            due = self.tick()
            self.store.add(specs)
            for s in specs:
                self.jobs[s.id] = QJob(s.id, s.queue, s.priority, len(self.jobs), due)

        @precondition(lambda self: len(self.held) < len(WORKERS))
        @rule(index=st.integers(0, 2), queues=st.sampled_from(FILTERS))
        def claim(self, index: int, queues) -> None:
            idle = [w for w in WORKERS if w not in self.held]
            worker = idle[index % len(idle)]
            self.tick()
            claim = self.store.claim(ClaimRequest(worker, "host", queues and list(queues), LEASE))
            self.took(worker, queues, claim)

        @precondition(lambda self: self.held)
        @rule(
            index=st.integers(0, 2),
            outcome=st.sampled_from(("ok", "ok", "retry", "bury")),
            then_claim=st.one_of(st.none(), st.sampled_from(FILTERS).map(lambda f: (f,))),
        )
        def finish(self, index: int, outcome: str, then_claim) -> None:
            worker = sorted(self.held)[index % len(self.held)]
            claim = self.held.pop(worker)
            job = self.jobs[claim.job.id]
            request = None
            if then_claim is not None:
                request = ClaimRequest(worker, "host", then_claim[0] and list(then_claim[0]), LEASE)
            due = self.tick()
            result, delay = (OK, None) if outcome == "ok" else (EXIT_3, 0.0)
            if outcome == "bury":
                delay = None
            finished = self.store.finish(claim, result, delay, request)
            assert finished.held is True
            if outcome == "retry":
                job.state, job.due = "failed", due
            else:
                job.state = "completed" if outcome == "ok" else "dead"
            if then_claim is None:
                assert finished.next_claim is None
            else:
                self.took(worker, then_claim[0], finished.next_claim)

        @precondition(lambda self: self.held)
        @rule(index=st.integers(0, 2))
        def cancel_running(self, index: int) -> None:
            """A user cancels a running job: its place in a limited queue is free again."""
            worker = sorted(self.held)[index % len(self.held)]
            claim = self.held.pop(worker)
            self.tick()
            self.store.cancel(claim.job.id)
            self.jobs[claim.job.id].state = "canceled"

        @rule(names=st.lists(st.sampled_from(QUEUES), min_size=1, max_size=2), pause=st.booleans())
        def pause_or_resume(self, names: list[str], pause: bool) -> None:
            self.tick()
            self.store.pause_queues(names, pause)
            if pause:
                self.paused.update(names)
            else:
                self.paused.difference_update(names)

        @rule(name=st.sampled_from(QUEUES), limit=st.sampled_from((0, 1, 1, 2)))
        def limit(self, name: str, limit: int) -> None:
            self.tick()
            self.store.limit_queue(name, limit)
            self.limits[name] = limit
            self.over_limit[name] = self.running(name)

        # More claims and outcomes than settings changes.
        claim_more = claim
        finish_more = finish_again = finish

        # -- checks ----------------------------------------------------------------------

        @invariant()
        def states_match(self) -> None:
            seen = {job.id: job.state.value for job in self.store.list_jobs()}
            assert seen == {job.id: job.state for job in self.jobs.values()}

        @invariant()
        def limits_hold(self) -> None:
            for queue, limit in self.limits.items():
                running = self.running(queue)
                if limit:
                    assert len(running) <= max(limit, len(running & self.over_limit[queue]))

    return QueueMachine


def test_claims_honour_pauses_and_limits_in_random_sequences(db_target: str, tmp_path: Path):
    options = settings(
        max_examples=EXAMPLES or 100,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    if not db_target.startswith("postgresql"):

        def fresh_sqlite():
            clock = FakeClock()
            path = Path(tempfile.mkdtemp(dir=tmp_path)) / "queue.db"
            return open_store(str(path), clock=clock, synchronous="NORMAL"), clock

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
                for table in (
                    "queuectl_jobs",
                    "queuectl_queues",
                    "queuectl_run_counts",
                    "queuectl_run_durations",
                ):
                    admin.execute(f"DELETE FROM {table}")  # runs go with their jobs
                return KeptOpen(), None

            run_machine(machine_for(fresh_postgres), settings=options)
    finally:
        store.close()
