"""Figure 4: pickup latency of an idle pool, and the CPU an idle worker burns.

`worker start --count 2` (not burst) is started and left idle; then, SAMPLES times, after a
random pause of 50–200 ms (a seeded RNG, so every run uses the same pauses) the harness takes
the time t0 and enqueues, in-process through one open `Queue`, a job running
`date +%s%N > FILE`. Pickup = the time `date` wrote − t0: it includes the enqueue call itself
(its median, and the latency counted from its return, are in the details), the worker's
wake-up, claim and spawn, and sh + date starting (≈ 1 ms, which the baseline pays too).
The run's `started_at` in the store (taken at the claim) gives the claim latency, in the
details. Targets: p50 ≤ 10 ms, p95 ≤ 25 ms.
Baseline: the same command started by the harness itself with subprocess.Popen (sh -c), from
t0 to the time `date` wrote, alternated with the queue samples.

Idle CPU: CPU time (/proc/PID/task/*/schedstat, nanoseconds; /proc/PID/stat utime + stime
where that is missing) of each worker over IDLE_SECONDS with nothing to do,
as % of one core; the figure is the busiest worker. Context switches per second (wake-ups) and
the supervisor's share are in the details.
"""

from __future__ import annotations

import random
import shlex
import subprocess
import time
from pathlib import Path

from queuectl.models import JobState
from queuectl.queue import Queue

from ..bench import Bench
from ..procs import Pool, cpu_seconds, status_fields, wait_until
from ..report import Row, Target, median, percentile

NAME = "pickup"
WORKERS = 2
SEED = 3


def run(bench: Bench, backend) -> list[Row]:
    target = backend.new_target("pickup")
    # One folder per backend: a mark left by another backend's run would read as a pickup.
    marks = bench.tmp / f"pickup-{backend.name}"
    marks.mkdir(exist_ok=True)
    rng = random.Random(SEED)
    queue = Queue.open(target)
    to_command, to_claim, enqueue_ms, from_return, raw = [], [], [], [], []
    try:
        with Pool(bench, target, WORKERS) as pool:
            pool.wait_ready()
            time.sleep(0.5)
            for index in range(bench.size("pickup_samples")):
                time.sleep(rng.uniform(0.05, 0.2))
                command_ms, claim_ms, call_ms = one_pickup(queue, marks / f"q{index}")
                to_command.append(command_ms)
                to_claim.append(claim_ms)
                enqueue_ms.append(call_ms)
                from_return.append(command_ms - call_ms)
                raw.append(one_raw(bench, marks / f"r{index}"))
            time.sleep(1.0)
            idle = idle_cpu(pool, bench.size("idle_seconds"))
    finally:
        queue.close()
        backend.drop(target)
    details = {
        "samples": len(to_command),
        "to_claim_p50_ms": percentile(to_claim, 50),
        "to_claim_p95_ms": percentile(to_claim, 95),
        "enqueue_call_p50_ms": median(enqueue_ms),
        "from_enqueue_return_p50_ms": percentile(from_return, 50),
        "from_enqueue_return_p95_ms": percentile(from_return, 95),
        "to_command_max_ms": max(to_command),
    }
    pickup = [
        Row(
            figure=NAME,
            label=f"pickup p{pct} (enqueue → command)",
            backend=backend.name,
            value=percentile(to_command, pct),
            unit="ms",
            baseline=percentile(raw, pct),
            baseline_label="Popen sh -c",
            target=Target("max", limit, f"≤ {limit} ms"),
            details=details if pct == 50 else {"to_claim_ms": percentile(to_claim, pct)},
        )
        for pct, limit in ((50, 10), (95, 25))
    ]
    cpu = Row(
        figure=NAME,
        label="idle worker CPU",
        backend=backend.name,
        value=max(idle["workers_pct"]),
        unit="%",
        target=Target("max", 0.5, "≤ 0.5 % (well under 1)"),
        details=idle,
    )
    return [*pickup, cpu]


def one_pickup(queue: Queue, mark: Path) -> tuple[float, float, float]:
    mark.unlink(missing_ok=True)
    command = f"date +%s%N > {shlex.quote(str(mark))}"
    t0 = time.time()
    job_id = queue.enqueue({"command": command})
    t1 = time.time()
    started_ns = wait_until(lambda: _read_ns(mark), 10, what="the job's command to start")
    job = wait_until(lambda: _finished(queue, job_id), 10, what="the job to finish")
    if job.state is not JobState.COMPLETED:
        raise RuntimeError(f"pickup job {job_id} ended {job.state}: {job.last_error}")
    claim = job.runs[0].started_at
    return (started_ns / 1e9 - t0) * 1000, (claim - t0) * 1000, (t1 - t0) * 1000


def one_raw(bench: Bench, mark: Path) -> float:
    mark.unlink(missing_ok=True)
    command = f"date +%s%N > {shlex.quote(str(mark))}"
    t0 = time.time()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        env=bench.env,
        start_new_session=True,
        close_fds=True,
    )
    proc.wait()
    return (_read_ns(mark) / 1e9 - t0) * 1000


def _read_ns(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def _finished(queue: Queue, job_id: str):
    job = queue.get(job_id, with_runs=True)
    return job if job.state not in (JobState.PENDING, JobState.PROCESSING) else None


def idle_cpu(pool: Pool, seconds: float) -> dict:
    pids = [*pool.worker_pids, pool.proc.pid]
    before = {pid: (cpu_seconds(pid), _switches(pid)) for pid in pids}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    after = {pid: (cpu_seconds(pid), _switches(pid)) for pid in pids}
    pct = {pid: (after[pid][0] - before[pid][0]) / elapsed * 100 for pid in pids}
    wakeups = {pid: (after[pid][1] - before[pid][1]) / elapsed for pid in pids}
    return {
        "seconds": round(elapsed, 2),
        "workers_pct": [pct[pid] for pid in pool.worker_pids],
        "workers_wakeups_per_s": [round(wakeups[pid], 1) for pid in pool.worker_pids],
        "supervisor_pct": pct[pool.proc.pid],
        "supervisor_wakeups_per_s": round(wakeups[pool.proc.pid], 1),
    }


def _switches(pid: int) -> int:
    """Context switches of every thread: how often the process woke up (or was preempted)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = status_fields(pid, task.name)
        except OSError:  # a thread that just ended
            continue
        total += fields.get("voluntary_ctxt_switches", 0)
        total += fields.get("nonvoluntary_ctxt_switches", 0)
    return total
