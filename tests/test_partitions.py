"""A PostgreSQL host that goes silent (packets dropped, no reset): every store call ends within
its bound, a CLI call honours its own --timeout, and a healed network is used again at once
(SPEC §5). Real partitions: processes run in a network namespace of the test's own whose
packets iptables drops (tests/netkit.py). PostgreSQL and Linux only; needs root (skipped,
loudly, without it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import netkit
import pytest
from conftest import base_env

from queuectl.store import open_store

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces"),
]


def queuectl(ns, url: str, home: Path, *args: str, env: dict | None = None, timeout: float = 60):
    """`queuectl ARGS` inside the namespace; (result, seconds it took)."""
    start = time.monotonic()
    result = ns.run(
        [sys.executable, "-m", "queuectl", *args],
        env={**base_env(url, home), **(env or {})},
        cwd=home,
        timeout=timeout,
    )
    return result, time.monotonic() - start


def assert_clear_error(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "PostgreSQL" in result.stderr


# ---------------------------------------------------------------------------------------------
# CLI calls during a partition


def test_worker_stop_honours_its_timeout_when_the_network_is_silent(ns, pg_url, tmp_path):
    ns.partition()
    result, took = queuectl(ns, ns.url(pg_url), tmp_path, "worker", "stop", "--timeout", "5")
    assert_clear_error(result)
    assert "cannot connect" in result.stderr and "timeout" in result.stderr
    assert took < 5 + 2 + 2, took  # --timeout, its grace, the interpreter's start


def test_worker_stop_honours_its_timeout_when_the_network_goes_silent_while_waiting(
    ns, pg_url, tmp_path
):
    # A worker on another host that never stops: `worker stop` waits for it, and the network
    # goes silent in the middle of the wait, while a call is on its way.
    other = open_store(pg_url)
    try:
        other.register_worker("elsewhere", "host-x", 4242)
        start = time.monotonic()
        proc = ns.popen(
            [sys.executable, "-m", "queuectl", "worker", "stop", "--timeout", "4"],
            env=base_env(ns.url(pg_url), tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "waiting up to 4s" in proc.stdout.readline()
        time.sleep(0.5)
        ns.partition()
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - start
    finally:
        other.close()
    assert proc.returncode == 1
    assert "Traceback" not in stderr and stderr.startswith("Error: "), stderr
    assert took < 4 + 2 + 2, took


def test_status_fails_within_the_connect_bound_rather_than_hanging(ns, pg_url, tmp_path):
    ns.partition()
    result, took = queuectl(ns, ns.url(pg_url), tmp_path, "status")
    assert_clear_error(result)
    assert "cannot connect" in result.stderr and "timeout" in result.stderr
    assert took < 10 + 3, took  # NETWORK_TIMEOUT, the interpreter's start


# ---------------------------------------------------------------------------------------------
# a long-lived store (a worker's) during and after a partition

# Reads commands on stdin: `call` (one call, reported as `ok|err START END [message]`, in
# time.monotonic(), which every namespace shares) or `loop SECONDS` (calls every 0.1 s, each
# reported, then `done`).
PROBE = r"""
import sys, time
from queuectl.errors import StoreError
from queuectl.store import open_store

store = open_store(sys.argv[1], call_timeout=None if sys.argv[2] == "none" else float(sys.argv[2]))
store.now()
print("ready", flush=True)

def call():
    start = time.monotonic()
    try:
        store.now()
        print("ok", start, time.monotonic(), flush=True)
    except StoreError as exc:
        print("err", start, time.monotonic(), exc, flush=True)

for line in sys.stdin:
    word, *rest = line.split()
    if word == "call":
        call()
    elif word == "loop":
        until = time.monotonic() + float(rest[0])
        while time.monotonic() < until:
            call()
            time.sleep(0.1)
        print("done", flush=True)
"""


class Probe:
    def __init__(self, ns, url: str, home: Path, call_timeout: str, env: dict | None = None):
        self.proc = ns.popen(
            [sys.executable, "-c", PROBE, url, call_timeout],
            env={**base_env(url, home), **(env or {})},
            cwd=home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        return self.proc.stdout.readline().strip()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def call(self) -> tuple[str, float, float, str]:
        self.send("call")
        return parse(self.readline())

    def loop(self) -> list[tuple[str, float, float, str]]:
        results = []
        while (line := self.readline()) != "done":
            assert line, "the probe ended"
            results.append(parse(line))
        return results

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def parse(line: str) -> tuple[str, float, float, str]:
    outcome, start, end, *message = line.split(" ", 3)
    return outcome, float(start), float(end), " ".join(message)


@pytest.fixture
def probes():
    started: list[Probe] = []
    yield started
    for probe in started:
        probe.close()


@pytest.mark.parametrize("call_timeout", ["3", "none"])
def test_an_idle_connection_is_usable_right_after_the_network_heals(
    ns, pg_url, tmp_path, probes, call_timeout
):
    # Idle through the partition (only keepalives went unanswered), then used at once.
    probes.append(probe := Probe(ns, ns.url(pg_url), tmp_path, call_timeout))
    ns.partition()
    time.sleep(4)
    ns.heal()
    healed = time.monotonic()
    outcome, _, end, message = probe.call()
    assert outcome == "ok", message
    assert end - healed < 2.0, end - healed


def test_calls_during_a_partition_fail_in_time_and_the_first_after_it_succeeds(
    ns, pg_url, tmp_path, probes
):
    # What a worker's heartbeat loop sees with call_timeout=3: each call fails within about
    # 3 s while the network is silent (a fresh connection each time, never the kernel's
    # backing-off retransmissions), and the first call after the network heals succeeds.
    probes.append(probe := Probe(ns, ns.url(pg_url), tmp_path, "3"))
    probe.send("loop 11")
    time.sleep(1)
    ns.partition()
    parted = time.monotonic()
    time.sleep(5)
    ns.heal()
    healed = time.monotonic()
    results = probe.loop()
    failed = [r for r in results if r[0] == "err"]
    assert failed, results
    assert all(end - start < 3.0 + 0.5 for _, start, end, _ in failed), failed
    assert all("no answer from PostgreSQL" in message for *_, message in failed), failed
    assert all(start >= parted - 0.2 and end <= healed + 3.5 for _, start, end, _ in failed)
    first_ok = min(end for outcome, _, end, _ in results if outcome == "ok" and end > healed)
    assert first_ok - healed < 2.0, (first_ok - healed, results)


def test_a_call_blocked_by_a_partition_fails_within_call_timeout(ns, pg_url, tmp_path, probes):
    probes.append(probe := Probe(ns, ns.url(pg_url), tmp_path, "3"))
    ns.partition()
    outcome, start, end, message = probe.call()
    assert outcome == "err"
    assert 2.5 < end - start < 3.5, end - start
    assert "no answer from PostgreSQL" in message and "within the 3s allowed" in message


def test_without_call_timeout_a_blocked_call_fails_within_busy_timeout(
    ns, pg_url, tmp_path, probes
):
    # The CLI's store: the silent connection is given up on after the network bound (here
    # the busy timeout, shortened), and the call then stops trying.
    probes.append(
        probe := Probe(ns, ns.url(pg_url), tmp_path, "none", env={"QUEUECTL_BUSY_TIMEOUT": "2"})
    )
    ns.partition()
    outcome, start, end, message = probe.call()
    assert outcome == "err"
    assert end - start < 2 + 1.5, end - start
    assert "PostgreSQL" in message and "timed out" in message, message


def test_a_namespace_left_by_a_crashed_run_is_removed(pg_url):
    if netkit.unavailable():
        pytest.skip(netkit.unavailable())
    stale = f"{netkit.PREFIX}999999999-0"  # no process has that pid
    subprocess.run(["ip", "netns", "add", stale], check=True)
    with netkit.namespace(pg_url):
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert stale not in listed
