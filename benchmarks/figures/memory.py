"""Figure 7: worker memory. `worker start --count 1` on an empty store; once the worker is
registered and has been idle for a second, its VmRSS (/proc) is the idle figure (target
≤ 40 MB). Then one job prints BYTES (`head -c BYTES /dev/zero`: 2 GB, quick 300 MB) while the
harness samples the worker's VmRSS every 10 ms; growth = peak − idle, where the peak is the
kernel's high-water mark (VmHWM) if it rose during the job, else the largest sample (target
< 5 MB: flat). Baseline for the idle figure: a bare interpreter of the same venv that has
imported sqlite3 (for information: the floor any Python worker starts from).
"""

from __future__ import annotations

import subprocess
import time

from queuectl.models import JobState
from queuectl.queue import Queue

from ..bench import Bench
from ..procs import Pool, status_fields, wait_until
from ..report import Row, Target

NAME = "memory"
IDLE_TARGET = Target("max", 40, "≤ 40 MB")
GROWTH_TARGET = Target("max", 5, "< 5 MB")


def run(bench: Bench, backend) -> list[Row]:
    size = bench.size("memory_bytes")
    target = backend.new_target("memory")
    queue = Queue.open(target)
    try:
        with Pool(bench, target, 1) as pool:
            (pid,) = pool.wait_ready()
            time.sleep(1.0)
            idle = status_fields(pid)
            job_id = queue.enqueue({"command": f"head -c {size} /dev/zero", "timeout": 0})
            samples = []
            start = time.monotonic()
            deadline = start + max(120, size / 20e6)
            while True:
                samples.append(status_fields(pid)["VmRSS"])
                job = queue.get(job_id)
                if job.state not in (JobState.PENDING, JobState.PROCESSING):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {size:,}-byte job did not finish in time")
                time.sleep(0.01)
            seconds = time.monotonic() - start
            after = status_fields(pid)
        if job.state is not JobState.COMPLETED:
            raise RuntimeError(f"the output job ended {job.state}: {job.last_error}")
        log_bytes = _log_size(queue, job_id)
    finally:
        queue.close()
        backend.drop(target)
    idle_mb = idle["VmRSS"] / 1024
    peak_kb = after["VmHWM"] if after["VmHWM"] > idle["VmHWM"] else max(samples)
    details = {
        "idle_kb": idle["VmRSS"],
        "idle_hwm_kb": idle["VmHWM"],
        "after_hwm_kb": after["VmHWM"],
        "sampled_max_kb": max(samples),
        "samples": len(samples),
        "job_bytes": size,
        "job_seconds": round(seconds, 2),
        "log_bytes": log_bytes,
    }
    return [
        Row(
            figure=NAME,
            label="worker RSS, idle",
            backend=backend.name,
            value=idle_mb,
            unit="MB",
            baseline=bare_python_rss(bench) / 1024,
            baseline_label="bare python",
            target=IDLE_TARGET,
            details={"idle_kb": idle["VmRSS"], "idle_hwm_kb": idle["VmHWM"]},
        ),
        Row(
            figure=NAME,
            label=f"worker RSS growth, job prints {size / 1e9:g} GB",
            backend=backend.name,
            value=(peak_kb - idle["VmRSS"]) / 1024,
            unit="MB",
            target=GROWTH_TARGET,
            details=details,
        ),
    ]


def _log_size(queue: Queue, job_id: str) -> int | None:
    runs = queue.runs(job_id)
    try:
        with open(runs[-1].log_path or "", "rb") as handle:
            return handle.seek(0, 2)
    except OSError:
        return None


def bare_python_rss(bench: Bench) -> int:
    """VmRSS (kB) of an interpreter of the bench venv that imported sqlite3 and waits."""
    script = "import sqlite3, sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [str(bench.venv.python), "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=bench.env,
        cwd=bench.tmp,
    )
    try:
        proc.stdout.readline()
        return wait_until(lambda: status_fields(proc.pid).get("VmRSS"), 5, what="VmRSS")
    finally:
        proc.stdin.close()
        proc.wait(5)
