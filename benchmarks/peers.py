"""queuectl beside the peers named in issue 3, in one run: no-op jobs through 2 workers.

    python -m benchmarks.peers [--jobs 900] [--rounds 5] [--huey-python PATH]

Each round runs, one after the other: the raw spawn rate (spawn_baseline.py, 2 processes),
queuectl (the bench venv's install: a pre-filled SQLite store, then `worker start --count 2
--burst` timed from start to exit), task-spooler (`tsp` on PATH, 2 slots) and Huey (SQLite
storage, `huey_consumer -w 2 -k process`, from the Python given by --huey-python). Peers that
are not installed are left out, with a note. Not part of `python -m benchmarks`: the peers are
not queuectl's dependencies, and nothing of theirs is kept in this repository.

How each is timed, so that all four include their own start-up and none its enqueueing:
- task-spooler runs each job from a client process that waits for its turn, so two jobs
  hold both slots while the N jobs are queued, and the clock starts when they are released;
  it ends when `tsp -w` returns and `tsp -l` lists N + 2 finished jobs. task-spooler takes at
  most about 1 000 waiting clients, hence the default of 900 jobs.
- Huey: N tasks, each `subprocess.run("true", shell=True)`, are enqueued with no consumer
  running; the clock runs from starting the consumer until N results are stored.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import venv
from .bench import log

SPAWN_SCRIPT = Path(__file__).resolve().parent / "spawn_baseline.py"
HUEY_TASKS = """
import subprocess
from huey import SqliteHuey

huey = SqliteHuey(filename="huey.db")


@huey.task()
def run(command):
    subprocess.run(command, shell=True, check=False)
    return 1
"""
RELEASE = "release"  # the file whose creation lets task-spooler's two slot holders end


class Peers:
    def __init__(self, work: Path, jobs: int, bench_venv: venv.BenchVenv, huey_python: str | None):
        self.work = work
        self.jobs = jobs
        self.venv = bench_venv
        self.huey_python = huey_python

    def raw(self) -> float:
        command = [str(self.venv.python), str(SPAWN_SCRIPT), str(self.jobs), "2"]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        return time.perf_counter() - start

    def queuectl(self) -> float:
        store = self.fresh("queuectl") / "q.db"
        queuectl = [str(self.venv.queuectl), "--db", str(store)]
        lines = b'{"command": "true"}\n' * self.jobs
        subprocess.run(
            [*queuectl, "enqueue", "-"], input=lines, stdout=subprocess.DEVNULL, check=True
        )
        start = time.perf_counter()
        subprocess.run(
            [*queuectl, "worker", "start", "--count", "2", "--burst", "--quiet"],
            stderr=subprocess.DEVNULL,
            check=True,
        )
        return time.perf_counter() - start

    def task_spooler(self) -> float:
        folder = self.fresh("tsp")
        env = {**os.environ, "TS_SOCKET": str(folder / "socket"), "TMPDIR": str(folder)}

        def tsp(*args: str, check: bool = True) -> str:
            done = subprocess.run(["tsp", *args], env=env, capture_output=True, text=True)
            if check and done.returncode != 0:
                raise RuntimeError(f"tsp {' '.join(args)}: {done.stderr.strip()}")
            return done.stdout

        release = folder / RELEASE
        try:
            tsp("-S", "2")
            for _ in range(2):
                tsp("sh", "-c", f"while [ ! -e {release} ]; do sleep 0.002; done")
            for _ in range(self.jobs):
                tsp("true")
            start = time.perf_counter()
            release.touch()
            tsp("-w", check=False)  # its exit status is the last job's
            listing = tsp("-l")
            elapsed = time.perf_counter() - start
            finished = listing.count(" finished ")
            if finished != self.jobs + 2:
                raise RuntimeError(f"task-spooler finished {finished} of {self.jobs + 2} jobs")
            return elapsed
        finally:
            release.touch()
            tsp("-K", check=False)

    def huey(self) -> float:
        folder = self.fresh("huey")
        (folder / "tasks.py").write_text(HUEY_TASKS)
        python = self.huey_python
        enqueue = f"from tasks import run\nfor _ in range({self.jobs}): run('true')"
        subprocess.run([python, "-c", enqueue], cwd=folder, check=True)
        consumer_script = Path(python).parent / "huey_consumer"
        start = time.perf_counter()
        consumer = subprocess.Popen(
            [str(consumer_script), "tasks.huey", "-w", "2", "-k", "process", "-q"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait = (
                "import time\nfrom tasks import huey\n"
                f"while huey.storage.result_store_size() < {self.jobs}: time.sleep(0.005)"
            )
            subprocess.run([python, "-c", wait], cwd=folder, check=True, timeout=600)
            return time.perf_counter() - start
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(consumer.pid, signal.SIGKILL)
            consumer.wait()

    def fresh(self, name: str) -> Path:
        folder = self.work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=900)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--huey-python", help="a Python with huey installed (Huey is skipped without it)"
    )
    args = parser.parse_args()
    bench_venv = venv.ensure(log)
    work = Path(tempfile.mkdtemp(prefix="queuectl-peers-"))
    try:
        peers = Peers(work, args.jobs, bench_venv, args.huey_python)
        contenders = {"raw spawn": peers.raw, "queuectl": peers.queuectl}
        if shutil.which("tsp"):
            contenders["task-spooler"] = peers.task_spooler
        else:
            log("task-spooler (tsp) is not on PATH: left out")
        if args.huey_python:
            contenders["Huey (SQLite)"] = peers.huey
        else:
            log("no --huey-python: Huey left out")
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for round_number in range(1, args.rounds + 1):
            for name, measure in contenders.items():
                rates[name].append(args.jobs / measure())
            log(
                f"round {round_number}: "
                + ", ".join(f"{n} {r[-1]:,.0f}/s" for n, r in rates.items())
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw = statistics.median(rates["raw spawn"])
    print(f"{args.jobs} no-op jobs, 2 workers, median of {args.rounds} alternating rounds")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:14s} {rate:8,.0f} jobs/s  {rate / raw:.2f}× raw spawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
