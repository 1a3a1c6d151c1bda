"""Figure 6: `queuectl status` and `queuectl list --limit 20` at 1 000 000 jobs (quick:
100 000), the same stores as claim_scale (every state present). Wall time of the installed CLI,
start-up included, median of RUNS alternated with the same command on the 1 000-job store,
which is the baseline (for information). Target: < 150 ms each, absolute.
"""

from __future__ import annotations

from .. import history
from ..bench import Bench
from ..report import Row, Target, median

NAME = "read_scale"
TARGET = Target("max", 150, "< 150 ms")
COMMANDS = {"status": ("status",), "list --limit 20": ("list", "--limit", "20")}


def run(bench: Bench, backend) -> list[Row]:
    large = history.get(bench, backend, bench.size("history_jobs"))
    small = history.get(bench, backend, bench.size("history_small"))
    counts = history.check_store(large.target)
    small_total = sum(history.check_store(small.target).values())
    rows = []
    for name, args in COMMANDS.items():
        times: dict[int, list[float]] = {small.finished: [], large.finished: []}
        for store_history in (small, large):  # warm the page cache and the interpreter
            bench.timed(bench.queuectl(store_history.target, *args))
        for _ in range(bench.size("read_runs")):
            for store_history in (small, large):
                command = bench.queuectl(store_history.target, *args)
                times[store_history.finished].append(bench.timed(command) * 1000)
        rows.append(
            Row(
                figure=NAME,
                label=f"{name}, {sum(counts.values()):,} jobs",
                backend=backend.name,
                value=median(times[large.finished]),
                unit="ms",
                baseline=median(times[small.finished]),
                baseline_label=f"{small_total:,} jobs",
                target=TARGET,
                details={
                    "runs_ms": {str(n): [round(ms, 1) for ms in t] for n, t in times.items()},
                    "counts": counts,
                },
            )
        )
    return rows
