"""Figure 8: releasing the dependents of one job (SPEC §7). A store holds one job and N jobs
waiting on it (`after`; N = 10 000, quick: 2 000); the job is claimed, then its finish, which
releases every dependent in the same transaction, is timed in-process through the store API.
Baseline: the finish of a job with no dependents, in the same store. Target: under a second.
Rounds alternate the two (ABBA); value: the median.
"""

from __future__ import annotations

import socket
import time

from queuectl.models import Outcome, RunResult
from queuectl.specs import build_spec
from queuectl.store import ClaimRequest, open_store

from ..bench import Bench
from ..report import Row, Target, median

NAME = "release_dependents"
TARGET = Target("max", 1000.0, "< 1 s")
RESULT = RunResult(Outcome.EXITED, 0, None, "", None)
DEFAULTS = {"max-retries": 0, "job-timeout": 300.0}
ROUNDS = 3


def run(bench: Bench, backend) -> list[Row]:
    count = bench.size("dependents")
    with_deps: list[float] = []
    alone: list[float] = []
    for index in range(ROUNDS):
        for dependents in (count, 0) if index % 2 == 0 else (0, count):
            seconds = finish_once(backend, dependents, f"release-{index}-{dependents}")
            (with_deps if dependents else alone).append(seconds)
        bench.log(f"  round {index + 1}: {with_deps[-1] * 1e3:.0f} ms with {count:,} dependents")
    return [
        Row(
            figure=NAME,
            label=f"finish releasing {count:,} dependents",
            backend=backend.name,
            value=median(with_deps) * 1e3,
            unit="ms",
            baseline=median(alone) * 1e3,
            baseline_label="finish, no dependents",
            target=TARGET,
            details={"rounds_s": with_deps, "alone_s": alone},
        )
    ]


def finish_once(backend, dependents: int, label: str) -> float:
    """Seconds of the finish of a job with `dependents` jobs waiting on it."""
    target = backend.new_target(label)
    store = open_store(target, synchronous="NORMAL")
    try:
        specs = [build_spec({"id": "root", "command": "true", "queue": "root"}, DEFAULTS)]
        specs += [
            build_spec({"id": f"d{n}", "command": "true", "after": ["root"]}, DEFAULTS)
            for n in range(dependents)
        ]
        store.add(specs)
        claim = store.claim(ClaimRequest("bench", socket.gethostname(), ["root"], 60.0))
        start = time.perf_counter()
        finished = store.finish(claim, RESULT, None)
        seconds = time.perf_counter() - start
        if not finished.held or store.counts()["pending"] != dependents:
            raise RuntimeError(f"the finish did not release {dependents} dependents")
        return seconds
    finally:
        store.close()
        backend.drop(target)
