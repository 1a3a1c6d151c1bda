"""Figure 11: the dashboard's overview (`GET /`) and `GET /metrics` at 1 000 000 jobs (quick:
100 000), the history stores of claim_scale, while a pool of two workers runs a stream of short
jobs on the same store (SPEC §9). The installed `queuectl web` serves on a free loopback port;
each request is timed from send to the last byte, on a connection of its own, alternating with
the same request against the 1 000-job store (the baseline, for information). Values: the p50
of each. Target: ≤ 100 ms, absolute (issue 16).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time

from .. import history
from ..bench import Bench
from ..report import Row, Target, median

NAME = "watch"
TARGET = Target("max", 100.0, "≤ 100 ms")
PATHS = {"overview": "/", "/metrics": "/metrics"}
STREAM_JOBS = 3000  # short jobs the pool works through while the requests are timed


def run(bench: Bench, backend) -> list[Row]:
    large = history.get(bench, backend, bench.size("history_jobs"))
    small = history.get(bench, backend, bench.size("history_small"))
    counts = history.check_store(large.target)
    runs = bench.size("watch_requests")
    servers, pools = [], []
    try:
        ports = {}
        for store_history in (small, large):
            pools.append(_start_pool(bench, store_history.target))
            port = _free_port()
            servers.append(_start_web(bench, store_history.target, port))
            ports[store_history.finished] = port
        times: dict[str, dict[int, list[float]]] = {name: {n: [] for n in ports} for name in PATHS}
        for path in PATHS.values():  # warm both servers' first request
            for port in ports.values():
                _get(port, path)
        for _ in range(runs):
            for name, path in PATHS.items():
                for finished, port in ports.items():
                    times[name][finished].append(_get(port, path) * 1000)
        busy = _pool_was_busy(bench, large.target)
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=30)
        for target in (small.target, large.target):
            bench.run(bench.queuectl(target, "worker", "stop", "--timeout", "30"))
        for process in pools:
            process.wait(timeout=60)
        history.reset_pending(backend, large)
        history.reset_pending(backend, small)
    return [
        Row(
            figure=NAME,
            label=f"{name}, {sum(counts.values()):,} jobs, pool running",
            backend=backend.name,
            value=median(times[name][large.finished]),
            unit="ms",
            baseline=median(times[name][small.finished]),
            baseline_label="1,000 jobs",
            target=TARGET,
            details={
                "runs_ms": {str(n): [round(ms, 1) for ms in t] for n, t in times[name].items()},
                "pool_completed_meanwhile": busy,
            },
        )
        for name in PATHS
    ]


def _start_pool(bench: Bench, target: str) -> subprocess.Popen:
    """Two workers and a stream of short jobs for them (added in one bulk enqueue)."""
    lines = "".join(
        json.dumps({"command": "true", "queue": "watched"}) + "\n" for _ in range(STREAM_JOBS)
    )
    bench.run(bench.queuectl(target, "enqueue", "-"), input=lines.encode())
    return subprocess.Popen(
        bench.queuectl(target, "worker", "start", "--count", "2"),
        cwd=bench.tmp,
        env=bench.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _start_web(bench: Bench, target: str, port: int) -> subprocess.Popen:
    """`queuectl web` on `port`, once it said (on stderr) that it is ready."""
    process = subprocess.Popen(
        bench.queuectl(target, "web", "--port", str(port)),
        cwd=bench.tmp,
        env=bench.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    said = b""
    while b"http://" not in said:
        line = process.stderr.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"queuectl web did not start: {said.decode(errors='replace')}")
        said += line
    return process


def _get(port: int, path: str) -> float:
    """Seconds from sending GET `path` to the last byte of a 200 answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}")
    return elapsed


def _pool_was_busy(bench: Bench, target: str) -> int:
    """Jobs of the stream completed so far: proof that the pool ran during the requests."""
    out = bench.run(bench.queuectl(target, "queue", "list", "--json")).stdout
    for queue in json.loads(out):
        if queue["name"] == "watched":
            return queue["jobs"]["completed"]
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
