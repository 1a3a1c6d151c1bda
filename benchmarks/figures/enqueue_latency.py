"""Figure 3: one `queuectl enqueue --command true` call vs `python -c "import click"`.

Both from the bench venv (a regular install: see venv.py), into an existing store, each run
twice to warm the page cache first, then alternated; medians of the wall times. Target ≤ 1.3×.
On PostgreSQL a second row (information) compares with `python -c "import click, psycopg"`.
`-X importtime` of the same call lists the costliest imports (shown with --verbose) and flags
modules that the issue says have no business on this path.
"""

from __future__ import annotations

import re

from ..bench import Bench
from ..report import Row, Target, median

NAME = "enqueue_latency"
TARGET = Target("max_ratio", 1.3, "≤ 1.3×")
# Not needed to enqueue (issue 3): dotenv only with a .env (the harness runs where there is
# none), nothing of the worker side, and on SQLite nothing of PostgreSQL.
UNWANTED = (
    "dotenv",
    "queuectl.worker",
    "queuectl.runner",
    "queuectl.spawning",
    "queuectl.runlogs",
    "queuectl.process_groups",
    "queuectl.supervisor",
)
UNWANTED_ON_SQLITE = ("psycopg", "queuectl.store.postgres")
IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def run(bench: Bench, backend) -> list[Row]:
    target = backend.new_target("enqueue_latency")
    # On PostgreSQL the driver must be imported too: a second row compares with a baseline
    # that imports it, to show what queuectl itself adds (information, no target).
    driver = backend.name == "postgres"
    try:
        enqueue = bench.queuectl(target, "enqueue", "--command", "true")
        click = [str(bench.venv.python), "-c", "import click"]
        click_driver = [str(bench.venv.python), "-c", "import click, psycopg"]
        for _ in range(2):
            bench.timed(enqueue)
            bench.timed(click)
            if driver:
                bench.timed(click_driver)
        base, calls, driver_base = [], [], []
        for _ in range(bench.size("latency_runs")):
            base.append(bench.timed(click) * 1000)
            calls.append(bench.timed(enqueue) * 1000)
            if driver:
                driver_base.append(bench.timed(click_driver) * 1000)
        imports = import_profile(bench, enqueue)
    finally:
        backend.drop(target)
    details = {
        "runs": len(calls),
        "enqueue_ms": [round(ms, 1) for ms in calls],
        "import_click_ms": [round(ms, 1) for ms in base],
        "importtime_top10_self_us": imports["top"],
        "queuectl_import_cumulative_us": imports["queuectl_cumulative"],
        "modules_imported": len(imports["modules"]),
        "unwanted_imports": unwanted_imports(imports["modules"], backend.name),
    }

    def row(baseline: list[float], label: str, **fields) -> Row:
        return Row(
            figure=NAME,
            label="one enqueue call",
            backend=backend.name,
            value=median(calls),
            unit="ms",
            baseline=median(baseline),
            baseline_label=label,
            **fields,
        )

    rows = [row(base, "import click", target=TARGET, details=details)]
    if driver:
        driver_ms = [round(ms, 1) for ms in driver_base]
        rows.append(row(driver_base, "import click, psycopg", details={"baseline_ms": driver_ms}))
    return rows


def import_profile(bench: Bench, enqueue: list[str]) -> dict:
    command = [str(bench.venv.python), "-X", "importtime", *enqueue]
    stderr = bench.run(command).stderr.decode(errors="replace")
    entries = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            entries.append((name, int(self_us), int(cumulative_us), len(indent)))
    top = sorted(entries, key=lambda entry: entry[1], reverse=True)[:10]
    queuectl = [cumulative for name, _, cumulative, _ in entries if name == "queuectl.cli"]
    return {
        "modules": [name for name, *_ in entries],
        "top": [{"module": n, "self_us": s, "cumulative_us": c} for n, s, c, _ in top],
        "queuectl_cumulative": queuectl[0] if queuectl else None,
    }


def unwanted_imports(modules: list[str], backend: str) -> list[str]:
    roots = UNWANTED + (UNWANTED_ON_SQLITE if backend == "sqlite" else ())
    return sorted(
        {root for root in roots for name in modules if name == root or name.startswith(root + ".")}
    )
