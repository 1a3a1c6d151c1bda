"""Worker pools started by the harness, /proc readings, and the cleanup that ends them all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from .bench import Bench

CLK_TCK = os.sysconf("SC_CLK_TCK")
_live: list[Pool] = []


class Pool:
    """One `queuectl worker start` (a supervisor and its workers) in a session of its own."""

    def __init__(self, bench: Bench, target: str, count: int, burst: bool = False) -> None:
        args = ["worker", "start", "--count", str(count), "--quiet"]
        if burst:
            args.append("--burst")
        self.bench = bench
        self.target = target
        self.count = count
        self.log_path = bench.tmp / f"pool-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.worker_pids: list[int] = []
        self.proc = subprocess.Popen(
            bench.queuectl(target, *args),
            cwd=bench.tmp,
            env=bench.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _live.append(self)

    def wait_ready(self, timeout: float = 30.0) -> list[int]:
        """Wait until every worker is registered; returns their pids (from `status --json`)."""
        deadline = time.monotonic() + timeout
        host = socket.gethostname()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker pool exited {self.proc.returncode}: {self.output()}")
            out = self.bench.run(self.bench.queuectl(self.target, "status", "--json")).stdout
            pids = [w["pid"] for w in json.loads(out)["workers"] if w["host"] == host]
            if len(pids) >= self.count:
                self.worker_pids = pids
                return pids
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(pids)} of {self.count} workers started")
            time.sleep(0.05)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"worker pool still running after {timeout:.0f}s") from None

    def output(self) -> str:
        """The end of what the pool printed (its banner, and any traceback)."""
        if not self._log.closed:
            self._log.flush()
        return Path(self.log_path).read_text(errors="replace")[-800:]

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM to the supervisor, which relays it), then SIGKILL leftovers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        deadline = time.monotonic() + 5
        for pid in self.worker_pids:
            while _is_queuectl(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _is_queuectl(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()
        if self in _live:
            _live.remove(self)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def cleanup_all() -> None:
    for pool in list(_live):
        pool.stop(timeout=5)


def _is_queuectl(pid: int) -> bool:
    """Still running and still ours (a recycled pid would not run queuectl)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return b"queuectl" in cmdline and state != b"Z"


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads, in seconds: the scheduler's nanosecond count
    (/proc/PID/task/*/schedstat), else utime + stime of /proc/PID/stat, whose clock ticks
    (10 ms) are too coarse for a fraction of a percent over a few seconds."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as handle:
                total += int(handle.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_fields(pid: int, task: str | None = None) -> dict[str, int]:
    """Numeric fields of /proc/PID/status (or of one thread's); memory ones (VmRSS, VmHWM, …)
    in kB."""
    values = {}
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    with open(path) as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0])
    return values


def wait_until(condition, timeout: float, pause: float = 0.002, what: str = "condition"):
    """Poll `condition()` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(pause)
