"""`python -m benchmarks`: measure every figure of issue 3 on this machine; see README.md.

Exit status: 0 every figure met its target, 1 some missed, 2 some could not be measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import procs, venv
from .backends import PostgresBackend, SqliteBackend, pg_admin_url, pg_unavailable
from .bench import Bench, isolate_environment, log
from .figures import FIGURES
from .report import Row, table, to_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure queuectl against same-run baselines (issue 3). "
        "Prints a table, or one JSON document with --json.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(FIGURES),
        metavar="NAME",
        help=f"run only this figure (repeatable): {', '.join(FIGURES)}",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres", "all"),
        default="sqlite",
        help="store(s) to measure (default sqlite; postgres needs a server at "
        "$QUEUECTL_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--verbose", "-v", action="store_true", help="print diagnostics too")
    return parser.parse_args(argv)


def choose_backends(choice: str, url: str, tmp: Path, log) -> tuple[list, list[str]]:
    backends: list = [SqliteBackend(tmp)] if choice in ("sqlite", "all") else []
    notes = []
    if choice in ("postgres", "all"):
        why = pg_unavailable(url)
        if why is None:
            backends.append(PostgresBackend(url))
        elif choice == "postgres":
            raise SystemExit(f"benchmarks: cannot measure PostgreSQL: {why}")
        else:
            notes.append(f"postgres skipped: {why}")
            log(notes[-1])
    return backends, notes


def machine(bench_venv: venv.BenchVenv) -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=venv.ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "git": git or None,
        "source_hash": bench_venv.source_hash,
    }


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        log("interrupted; everything the harness started has been stopped and removed")
        return 130


def _terminated(signum: int, frame: object) -> None:
    log("terminated; stopping and removing everything the harness started")
    sys.exit(143)  # unwinds through the cleanup in run()


def run(args: argparse.Namespace) -> int:
    names = [name for name in FIGURES if not args.only or name in args.only]
    signal.signal(signal.SIGTERM, _terminated)
    started = time.monotonic()
    load_before = _loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="queuectl-bench-"))
    pg_url = pg_admin_url()  # read before the QUEUECTL_* variables are cleared
    isolate_environment(tmp)
    rows: list[Row] = []
    backends: list = []
    try:
        try:
            bench_venv = venv.ensure(log)
        except RuntimeError as exc:
            log(f"cannot prepare the bench venv: {exc}")
            return 2
        bench = Bench(bench_venv, tmp, quick=args.quick, verbose=args.verbose)
        backends, notes = choose_backends(args.backend, pg_url, tmp, bench.log)
        notes += [f"postgres: {b.describe()}" for b in backends if b.name == "postgres"]
        for backend in backends:
            for name in names:
                bench.log(f"{name} on {backend.name}")
                os.sync()  # the previous figure's writes must not be flushed during this one
                try:
                    rows += FIGURES[name].run(bench, backend)
                except Exception as exc:  # one broken figure must not hide the others
                    bench.log(f"  {name} failed: {exc}")
                    rows.append(Row(figure=name, label=name, backend=backend.name, error=str(exc)))
                finally:
                    procs.cleanup_all()
            backend.cleanup()
            bench.cache.clear()
    finally:
        procs.cleanup_all()
        for backend in backends:
            backend.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "machine": machine(bench_venv),
        "options": {"quick": args.quick, "backend": args.backend, "only": names},
        "seconds": round(time.monotonic() - started, 1),
        # Other work on the machine moves every figure; 1-minute load average before and after.
        "load": [load_before, _loadavg()],
        "notes": notes,
    }
    if args.json:
        print(to_json(rows, meta))
    else:
        print_report(rows, meta, args.verbose)
    if any(row.error for row in rows):
        return 2
    return 1 if any(row.passed is False for row in rows) else 0


def print_report(rows: list[Row], meta: dict, verbose: bool) -> None:
    m = meta["machine"]
    mode = "quick" if meta["options"]["quick"] else "full"
    print(
        f"queuectl benchmarks ({mode}, {meta['seconds']:.0f} s): {m['cpu']}, {m['cores']} cores, "
        f"{m['os']}, Python {m['python']}, SQLite {m['sqlite']}, git {m['git']}, "
        f"load {meta['load'][0]} → {meta['load'][1]}"
    )
    print()
    print(table(rows))
    for row in rows:
        unwanted = row.details.get("unwanted_imports")
        if unwanted:
            print(f"\nnote ({row.backend}): the enqueue path imports {', '.join(unwanted)}")
    for note in meta["notes"]:
        print(f"\nnote: {note}")
    for row in rows:
        if row.error:
            tail = [line for line in row.error.splitlines() if line.strip()][-3:]
            print(f"\n{row.figure} on {row.backend} could not be measured:")
            print("\n".join("  " + line.strip() for line in tail))
    if verbose:
        print_details(rows)


def print_details(rows: list[Row]) -> None:
    for row in rows:
        top = row.details.get("importtime_top10_self_us")
        if top:
            print(f"\n-X importtime of one enqueue ({row.backend}), top 10 by self time:")
            print(f"  {'self µs':>8}  {'cumul. µs':>9}  module")
            for entry in top:
                print(f"  {entry['self_us']:>8}  {entry['cumulative_us']:>9}  {entry['module']}")
            print(f"  queuectl.cli cumulative: {row.details['queuectl_import_cumulative_us']} µs")
    print("\ndetails:")
    for row in rows:
        shown = {k: v for k, v in row.details.items() if k != "importtime_top10_self_us"}
        if shown or row.error:
            print(f"  {row.label} [{row.backend}]: {row.error or _short(shown)}")


def _loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _short(details: dict) -> str:
    parts = []
    for key, value in details.items():
        if isinstance(value, float):
            value = round(value, 2)
        elif isinstance(value, list) and value and isinstance(value[0], float):
            value = [round(item, 2) for item in value]
        parts.append(f"{key}={value}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
