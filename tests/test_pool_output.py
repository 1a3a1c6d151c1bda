"""The pool's own output going away never costs a job (SPEC §4 `worker start`).

`queuectl worker start 2>&1 | tee w.log` and one Ctrl-C end `tee` too; closing the terminal
hangs it up. Before, workers died of EPIPE/EIO writing their event lines, and their jobs were
requeued as lost runs (dead with max_retries 0) although they had succeeded, or had never run.
These tests give the pool a real pipe whose reader goes away, and a real pseudo-terminal that is
closed, and check every job's outcome. They also check what is printed: whole lines, one
write each, control characters escaped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from clikit import enqueue, enqueue_many
from conftest import wait_for
from workerkit import DEADLINE, Pool, alive, show, speed_up, status, wait_int, wait_state

from queuectl.stopping import STOP_COPY_SECONDS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, pty")

QUEUECTL = [sys.executable, "-m", "queuectl"]
# Runs until the test creates `release`, so the output can go away while it runs.
HELD = "echo $$ > shell.pid; while [ ! -e release ]; do sleep 0.05; done; echo done"
EVENT_LINE = re.compile(r"^\d\d:\d\d:\d\d (supervisor|worker \S+): \S.*$")


class PipedPool(Pool):
    """`worker start` in a session of its own whose stdout and stderr are one pipe; the test
    holds the read end, and closing it is the reader (tee, a pager) going away."""

    def __init__(self, cli, *args: str) -> None:
        self.reader, writer = os.pipe()
        self.log = cli.cwd / "unused.log"
        self.log.write_text("")
        self.proc = subprocess.Popen(
            [*QUEUECTL, "worker", "start", *args],
            stdout=writer,
            stderr=writer,
            cwd=cli.cwd,
            env=cli.env,
            start_new_session=True,
        )
        os.close(writer)
        self.seen = b""

    def read_until(self, text: str, timeout: float = DEADLINE) -> str:
        """Read the pipe until `text` has appeared; returns everything read so far."""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.reader, False)
        while text.encode() not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not printed within {timeout}s: {self.seen!r}")
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(self.reader, 65536)
                if not chunk:
                    raise AssertionError(f"pipe closed before {text!r}: {self.seen!r}")
                self.seen += chunk
                continue
            time.sleep(0.02)
        return self.seen.decode(errors="replace")

    def drain(self) -> str:
        """Everything the pool printed, to its end (the pool has exited)."""
        os.set_blocking(self.reader, True)
        while chunk := os.read(self.reader, 65536):
            self.seen += chunk
        return self.seen.decode(errors="replace")

    def close_reader(self) -> None:
        os.close(self.reader)

    def output(self) -> str:
        return self.seen.decode(errors="replace")


def piped(pools, cli, *args: str) -> PipedPool:
    pool = PipedPool(cli, *args)
    pools.started.append(pool)
    return pool


def test_a_reader_that_dies_while_a_job_runs_and_a_ctrl_c_cost_no_job(sqlite_cli, pools):
    """`worker start 2>&1 | tee w.log`, Ctrl-C: tee dies, the pool stops gracefully."""
    cli = speed_up(sqlite_cli)
    job = enqueue(cli, id="held", command=HELD, max_retries=0)
    pool = piped(pools, cli)
    shell = wait_int(cli.cwd / "shell.pid")
    pool.read_until("held: started attempt 1")
    pool.close_reader()  # tee is gone
    os.kill(pool.pid, signal.SIGINT)  # … and the Ctrl-C meant for both reaches the pool
    # The announcement (made once the copy window has passed) and the workers' "stopping" lines
    # cannot be written: nothing else may change. No event tells that they were tried, so wait
    # past the window, then a little more.
    time.sleep(STOP_COPY_SECONDS + 1.0)
    assert alive(shell)
    (cli.cwd / "release").touch()
    assert pool.wait_exit() == 0
    done = show(cli, job)
    assert done["state"] == "completed", done
    assert done["attempts"] == 1
    assert status(cli)["workers"] == []


def test_a_reader_that_dies_while_the_pool_is_idle_leaves_later_jobs_running(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    pool = piped(pools, cli, "--count", "2")
    pool.read_until("queues: all)")
    pool.close_reader()
    # Every event line of these jobs now fails to be written (EPIPE): none may cost the job.
    jobs = enqueue_many(
        cli, [{"id": f"j{n}", "command": f"echo {n}", "max_retries": 0} for n in range(20)]
    )
    for job in jobs:
        assert wait_state(cli, job, "completed", "dead")["state"] == "completed"
        assert show(cli, job)["attempts"] == 1
    assert len(status(cli)["workers"]) == 2, "a worker died of the broken pipe"
    os.kill(pool.pid, signal.SIGTERM)
    assert pool.wait_exit() == 0


def _controlling_terminal(slave: int):
    def become_session_leader_on_it() -> None:
        # start_new_session made this child a session leader: the pty becomes its terminal,
        # and closing the master side hangs the session up (SIGHUP), as closing a window does.
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    return become_session_leader_on_it


def test_closing_the_terminal_is_a_stop_request_and_the_running_job_completes(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    job = enqueue(cli, id="held", command=HELD, max_retries=0)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*QUEUECTL, "worker", "start", "--count", "2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cli.cwd,
        env=cli.env,
        start_new_session=True,
        preexec_fn=_controlling_terminal(slave),
    )
    os.close(slave)
    pool = Pool.__new__(Pool)
    pool.proc, pool.log = proc, cli.cwd / "unused.log"
    pool.log.write_text("")
    pools.started.append(pool)
    shell = wait_int(cli.cwd / "shell.pid")
    wait_for(lambda: len(status(cli)["workers"]) == 2, timeout=DEADLINE)
    os.close(master)  # the terminal window is closed: SIGHUP, then EIO on every write
    # A stop request: no new job is started, the running one is left to finish.
    later = enqueue(cli, id="later", command="true")
    time.sleep(0.5)
    assert alive(shell)
    assert show(cli, later)["state"] == "pending"
    (cli.cwd / "release").touch()
    assert pool.wait_exit() == 0
    done = show(cli, job)
    assert done["state"] == "completed", done
    assert done["attempts"] == 1
    assert show(cli, later)["state"] == "pending"


def test_sighup_is_a_stop_request_like_sigterm(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    job = enqueue(cli, id="held", command=HELD, max_retries=0)
    pool = pools.start(cli)
    shell = wait_int(cli.cwd / "shell.pid")
    os.kill(pool.pid, signal.SIGHUP)
    pool.wait_output("stopping once the running jobs finish")
    assert alive(shell)
    (cli.cwd / "release").touch()
    assert pool.wait_exit() == 0
    assert show(cli, job)["state"] == "completed"


def test_event_lines_stay_whole_with_four_workers_and_pythonunbuffered(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    assert cli.env["PYTHONUNBUFFERED"] == "1"  # what containers set, and what split lines
    enqueue_many(cli, [{"id": f"job-{n:03}", "command": "true"} for n in range(600)])
    pool = pools.start(cli, "--count", "4", "--burst")
    assert pool.wait_exit() == 0
    lines = pool.output().splitlines()
    bad = [line for line in lines if not (EVENT_LINE.match(line) or line.startswith("queuectl:"))]
    assert bad == [], bad[:5]
    assert sum(": completed" in line for line in lines) == 600


def test_hostile_bytes_in_a_command_and_a_host_name_are_escaped_in_event_lines(sqlite_cli, pools):
    cli = speed_up(sqlite_cli, QUEUECTL_HOSTNAME="evil\x1b]0;host\x07\x1b[2J")
    enqueue(cli, id="loud", command="true # \x1b]0;pwned\x07\x1b[2J\x9b31m")
    pool = pools.start(cli, "--burst")
    assert pool.wait_exit() == 0
    out = pool.output()
    assert "loud: started attempt 1" in out, out
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in out, repr(out)
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    assert "evil\\x1b]0;host\\x07" in out


def test_a_worker_that_dies_unexpectedly_makes_the_pool_exit_nonzero(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    pool = pools.start(cli, "--count", "2")
    first = wait_for(lambda: status(cli)["workers"] if len(status(cli)["workers"]) == 2 else None)
    victim = first[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    pool.wait_output(f"worker pid {victim} died")

    def replaced():
        pids = {worker["pid"] for worker in status(cli)["workers"]}
        return pids if len(pids) == 2 and victim not in pids else None

    # The dead worker is not listed even though its lease has not run out.
    wait_for(replaced, timeout=DEADLINE)
    os.kill(pool.pid, signal.SIGTERM)
    assert pool.wait_exit() == 1, pool.output()


def test_quiet_prints_nothing_and_an_empty_queue_name_is_refused(sqlite_cli):
    cli = sqlite_cli
    quiet = cli("worker", "start", "--quiet", "--burst")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    empty = cli("worker", "start", "--queue", "", "--burst")
    assert empty.returncode == 2, empty.stderr
    assert "queue name cannot be empty" in empty.stderr
    assert status(cli)["workers"] == []


def processes_with(variable: str) -> list[int]:
    """Pids of the processes whose environment holds this NAME=value entry."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            with contextlib.suppress(OSError):
                if variable.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def test_a_stop_signal_during_spawning_reaches_every_worker(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    for _ in range(3):
        pool = pools.start(cli, "--count", "4")
        pool.wait_output("Ctrl-C to stop")  # printed just before the workers are spawned
        os.kill(pool.pid, signal.SIGTERM)
        assert pool.wait_exit() == 0, pool.output()
        # A missed worker would run on, reparented: look for any process of this store.
        assert processes_with(f"QUEUECTL_DB={cli.db}") == []
        assert status(cli)["workers"] == []


def test_a_bad_setting_stored_while_workers_run_is_said_once_and_they_carry_on(sqlite_cli, pools):
    # An older version accepted `1e3`; a worker re-reads its settings as it goes.
    import sqlite3

    cli = speed_up(sqlite_cli)
    cli.ok("status")
    pool = pools.start(cli)
    pool.wait_output("queues: all)")
    with sqlite3.connect(cli.db) as conn:
        conn.execute("INSERT INTO config (key, value) VALUES ('backoff-max', '1e3')")
    pool.wait_output("keeping the settings in use")
    time.sleep(1.0)  # several more re-reads: said once
    cli.ok("config", "set", "backoff-max", "60")  # the way out the CLI's message names
    job = enqueue(cli, id="after", command="true")
    assert wait_state(cli, job, "completed")["attempts"] == 1
    assert pool.proc.poll() is None
    assert pool.output().count("keeping the settings in use") == 1


# A Ctrl-C that lands while the CLI is being imported: raised exactly there, at the import of
# click, by a finder put first on sys.meta_path (a signal's timing cannot be aimed that well).
INTERRUPTED_IMPORT = """
import sys

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["queuectl", "status"]
from queuectl.entry import main
main()
"""


def test_a_ctrl_c_while_the_cli_is_imported_ends_it_quietly_with_130(sqlite_cli):
    cli = sqlite_cli
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT],
        capture_output=True,
        text=True,
        cwd=cli.cwd,
        env=cli.env,
        timeout=DEADLINE,
    )
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "")
