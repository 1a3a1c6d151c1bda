"""The raw spawn rate: `subprocess.run("true", shell=True)` from PROCS processes, no queue.

Run as a script by the harness (`python spawn_baseline.py JOBS PROCS`) with the same
interpreter the workers use, and timed from outside, start to exit, like the worker pool.
"""

import multiprocessing
import subprocess
import sys


def spawn(count: int) -> None:
    for _ in range(count):
        subprocess.run("true", shell=True, check=True)


def main() -> None:
    jobs, procs = int(sys.argv[1]), int(sys.argv[2])
    shares = [jobs // procs + (1 if index < jobs % procs else 0) for index in range(procs)]
    children = [multiprocessing.Process(target=spawn, args=(share,)) for share in shares]
    for child in children:
        child.start()
    for child in children:
        child.join()
    sys.exit(max(child.exitcode for child in children))


if __name__ == "__main__":
    main()
