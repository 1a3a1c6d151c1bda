"""What every figure gets: the sizes for this run, the product under test, a scratch folder,
and helpers to run the installed `queuectl` in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .venv import BenchVenv

# name: (full run, --quick run)
SIZES: dict[str, tuple[float, float]] = {
    "throughput_jobs": (3000, 800),
    "throughput_rounds": (5, 2),
    "bulk_jobs": (100_000, 20_000),
    "bulk_rounds": (3, 2),
    "latency_runs": (20, 10),
    "pickup_samples": (100, 30),
    "idle_seconds": (10, 4),
    "history_jobs": (1_000_000, 100_000),
    "history_small": (1000, 1000),
    "claim_jobs": (1000, 1000),
    "claim_rounds": (6, 4),
    "dependents": (10_000, 2000),
    "prune_jobs": (1_000_000, 100_000),
    "prune_baseline_seconds": (10, 4),
    "read_runs": (7, 5),
    "memory_bytes": (2_000_000_000, 300_000_000),
    "qs_backlog": (2000, 500),
    "qs_ready": (100, 40),
    "qs_claims": (1000, 400),
    "qs_rounds": (6, 4),
    "watch_requests": (20, 10),
}


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout holds only the table or the JSON."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    venv: BenchVenv
    tmp: Path
    quick: bool = False
    verbose: bool = False
    cache: dict[str, Any] = field(default_factory=dict)  # stores shared between figures

    def size(self, name: str) -> int:
        return int(SIZES[name][1 if self.quick else 0])

    def log(self, message: str) -> None:
        log(message)

    @property
    def env(self) -> dict[str, str]:
        """The environment of every child: the harness's own (see isolate_environment), less
        what would make the bench venv's python look elsewhere."""
        return {
            key: value
            for key, value in os.environ.items()
            if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
        }

    def queuectl(self, target: str, *args: str) -> list[str]:
        return [str(self.venv.queuectl), "--db", target, *args]

    def run(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a command to completion in the scratch folder (no .env there); raise on failure."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("timeout", 300)
        proc = subprocess.run(command, cwd=self.tmp, env=self.env, check=False, **kwargs)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else ""
            raise RuntimeError(
                f"{Path(command[0]).name} {' '.join(command[1:4])}… exited "
                f"{proc.returncode}: {err.strip()[-300:]}"
            )
        return proc

    def timed(self, command: list[str], **kwargs) -> float:
        """Wall seconds of one run, start to exit, output discarded."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        start = time.perf_counter()
        self.run(command, **kwargs)
        return time.perf_counter() - start


def isolate_environment(tmp: Path) -> None:
    """No QUEUECTL_* setting of the caller applies, in the harness or its children, and click's
    app dir (PostgreSQL run logs, the default store) is a private folder: in-process stores and
    worker processes then agree on where run logs go."""
    for key in [key for key in os.environ if key.startswith("QUEUECTL_")]:
        del os.environ[key]
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
