"""Helpers for the worker tests: fast settings, worker pools that are always cleaned up, and
looking at processes through /proc (Linux).

Used by test_worker.py and test_worker_crash.py; not a test module itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from conftest import CLI, wait_for

# Settings that make workers react in fractions of a second. Applied to every CLI call of a test
# (not only the workers): `status` uses lease-seconds to decide which workers are alive.
FAST = {
    "QUEUECTL_LEASE_SECONDS": "1",
    "QUEUECTL_POLL_INTERVAL": "0.1",
    "QUEUECTL_BACKOFF_BASE": "0",
}

# Deadlines are generous (a loaded 2-core machine); the normal case finishes far sooner.
DEADLINE = 30.0


def speed_up(cli: CLI, **overrides: str) -> CLI:
    """Give every later CLI call and pool of this test the fast settings (plus overrides)."""
    cli.env.update(FAST)
    cli.env.update(overrides)
    return cli


def epoch(text: str) -> float:
    """An ISO-8601 time from `show --json` as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def show(cli: CLI, job_id: str) -> dict:
    return cli.json("show", job_id)


def wait_state(cli: CLI, job_id: str, *states: str, timeout: float = DEADLINE) -> dict:
    """Wait until the job is in one of `states`; returns its `show --json` document."""

    def reached():
        job = show(cli, job_id)
        return job if job["state"] in states else None

    return wait_for(reached, timeout=timeout, interval=0.05)


def status(cli: CLI) -> dict:
    return cli.json("status")


def read_int(path: Path) -> int | None:
    """The number a command wrote to `path`, or None while it is not (fully) there yet."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def wait_int(path: Path, timeout: float = DEADLINE) -> int:
    return wait_for(lambda: read_int(path), timeout=timeout)


def alive(pid: int) -> bool:
    """Is the process running? A zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = text.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def rss_kib(pid: int) -> int | None:
    """Resident memory of a process in KiB (VmRSS), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _parents() -> dict[int, int]:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        table[int(name)] = int(text.rsplit(")", 1)[1].split()[1])
    return table


def descendants(pid: int) -> list[int]:
    parents = _parents()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


class Pool:
    """A `worker start` running in the background, with the log file it writes to."""

    def __init__(self, cli: CLI, args: tuple[str, ...], env: dict | None) -> None:
        before = set(cli.cwd.glob("workers-*.log"))
        self.proc = cli.start_workers(*args, env=env)
        self.log = (set(cli.cwd.glob("workers-*.log")) - before).pop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker pool still running after {timeout}s\n{self.output()}"
            ) from None

    def wait_output(self, text: str, timeout: float = DEADLINE) -> None:
        wait_for(lambda: text in self.output(), timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the supervisor, its workers and every command they started."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGSTOP)  # no replacement workers while we kill
            for _ in range(2):  # freeze, then look again for anything started meanwhile
                for pid in descendants(self.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
            doomed = descendants(self.pid)
            for pid in doomed:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    group = os.getpgid(pid)
                    if group != os.getpgrp():
                        os.killpg(group, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


class Pools:
    """Starts pools for a test and kills whatever is left of them when it ends."""

    def __init__(self) -> None:
        self.started: list[Pool] = []

    def start(self, cli: CLI, *args: str, env: dict | None = None) -> Pool:
        pool = Pool(cli, args, env)
        self.started.append(pool)
        return pool

    def kill_all(self) -> None:
        for pool in self.started:
            pool.kill()


@contextlib.contextmanager
def pool_cleanup() -> Iterator[Pools]:
    pools = Pools()
    try:
        yield pools
    finally:
        pools.kill_all()


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    wait_for(lambda: not alive(pid), timeout=timeout)
