"""Stop signals as users send them (SPEC §4 `worker start`): one action is one stop request,
however many copies of its signal the process group delivers; a second action forces the stop.

Coreutils `timeout` signals its child and then its whole process group, so `queuectl` under it
gets the signal twice; a terminal sends Ctrl-C to the whole foreground process group. The
tests start real pools (under `timeout`, or in a session of their own, as a terminal would)
and synchronise on files the job writes and on what the pool prints, never on fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from clikit import enqueue
from workerkit import DEADLINE, Pool, alive, show, speed_up, status, wait_gone, wait_int, wait_state

from queuectl.stopping import STOP_COPY_SECONDS, StopSignals

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("timeout") is None,
    reason="POSIX process groups, coreutils timeout, /proc",
)

QUEUECTL = [sys.executable, "-m", "queuectl"]
# Runs until the test creates `release`, so a stop can never race with the job's end.
HELD_JOB = (
    "echo $$ > shell.$QUEUECTL_ATTEMPT;"
    " while [ ! -e release ]; do sleep 0.05; done; echo done > finished.txt"
)
# What the supervisor prints once the copy window of the first request has passed.
ANNOUNCED = "stopping once the running jobs finish"
FORCED = "a second stop signal: killing the running jobs"


class CommandPool(Pool):
    """A pool started by any command line (`timeout … queuectl worker start`, a worker on its
    own), optionally in a session of its own; killed with the test's other pools."""

    def __init__(self, cli, argv: list[str], new_session: bool = False) -> None:
        self.log = cli.cwd / f"workers-{time.monotonic_ns()}.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cli.cwd,
                env=cli.env,
                start_new_session=new_session,
            )


def start(pools, cli, argv: list[str], new_session: bool = False) -> CommandPool:
    pool = CommandPool(cli, argv, new_session)
    pools.started.append(pool)
    return pool


def held_job(cli) -> str:
    return enqueue(cli, id="held", command=HELD_JOB, max_retries=1)


def wait_running(cli, job: str) -> int:
    """Wait until a pool runs the held job; returns its shell's pid."""
    shell = wait_int(cli.cwd / "shell.1")
    assert show(cli, job)["state"] == "processing"
    return shell


def finish_gracefully(cli, pool, job: str, shell: int) -> None:
    """The stop was announced and the job still runs: let it end; it completes."""
    assert alive(shell), pool.output()
    assert show(cli, job)["state"] == "processing"
    (cli.cwd / "release").touch()
    wait_state(cli, job, "completed")


# -- the copy window, as a rule --------------------------------------------------------------


def test_copies_within_the_window_are_one_request_and_a_later_signal_is_the_second():
    signals = StopSignals(0.5)
    assert [signals.count(t) for t in (10.0, 10.0, 10.3, 10.49)] == [True, False, False, False]
    assert signals.requests == 1
    # Measured from the counted request: a stream of copies cannot postpone the second.
    assert signals.count(10.5) is True
    assert signals.requests == 2
    assert StopSignals(0.0).count(1.0) and StopSignals(0.0).count(1.0)


# -- coreutils timeout -------------------------------------------------------------------------


def test_sigterm_to_timeout_is_one_graceful_stop_and_queuectl_exits_0(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    # --preserve-status: timeout exits with queuectl's own status.
    argv = ["timeout", "--preserve-status", "600", *QUEUECTL, "worker", "start", "--count", "2"]
    pool = start(pools, cli, argv)
    shell = wait_running(cli, job)

    os.kill(pool.pid, signal.SIGTERM)  # timeout relays it to queuectl, then to its group
    pool.wait_output(ANNOUNCED)
    finish_gracefully(cli, pool, job, shell)
    assert pool.wait_exit() == 0, pool.output()
    output = pool.output()
    assert "got SIGTERM: stopping" in output
    assert FORCED not in output
    assert (cli.cwd / "finished.txt").read_text().strip() == "done"
    assert status(cli)["workers"] == []


def test_timeout_expiring_stops_gracefully_and_reports_124(sqlite_cli, pools):
    """The CI case: `timeout N queuectl worker start --count 2` with a job still running."""
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    limit = 4.0
    began = time.monotonic()
    argv = ["timeout", "-s", "TERM", str(limit), *QUEUECTL, "worker", "start", "--count", "2"]
    pool = start(pools, cli, argv)
    shell = wait_running(cli, job)
    assert time.monotonic() - began < limit, "the pool took too long to start the job"

    pool.wait_output(ANNOUNCED, timeout=limit + DEADLINE)
    finish_gracefully(cli, pool, job, shell)
    assert pool.wait_exit() == 124, pool.output()  # timeout's own status when it had to signal
    assert FORCED not in pool.output()
    assert show(cli, job)["attempts"] == 1


def test_a_worker_run_on_its_own_under_timeout_counts_the_copies_once(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    worker = [sys.executable, "-m", "queuectl.worker", "--db", cli.db]
    pool = start(pools, cli, ["timeout", "--preserve-status", "600", *worker])
    shell = wait_running(cli, job)

    os.kill(pool.pid, signal.SIGTERM)
    pool.wait_output("stopping after the current job (got SIGTERM)")
    finish_gracefully(cli, pool, job, shell)
    assert pool.wait_exit() == 0, pool.output()


# -- Ctrl-C: SIGINT to the whole process group ----------------------------------------------


@pytest.mark.parametrize("copies", [1, 2], ids=["group", "group-and-direct"])
def test_sigint_to_the_process_group_is_one_graceful_stop_named_sigint(sqlite_cli, pools, copies):
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    pool = start(pools, cli, [*QUEUECTL, "worker", "start", "--count", "2"], new_session=True)
    shell = wait_running(cli, job)

    os.killpg(pool.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    if copies == 2:
        # A copy straight to the process, late as on a loaded machine, but within the window.
        time.sleep(STOP_COPY_SECONDS / 10)
        os.kill(pool.pid, signal.SIGINT)
    pool.wait_output(ANNOUNCED)
    finish_gracefully(cli, pool, job, shell)
    assert pool.wait_exit() == 0, pool.output()
    output = pool.output()
    assert "got SIGINT: stopping" in output
    assert "SIGTERM" not in output, "the pool names the signal the user sent"
    assert FORCED not in output


def test_a_second_ctrl_c_after_the_announcement_kills_the_job_which_is_retried(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    pool = start(pools, cli, [*QUEUECTL, "worker", "start", "--count", "2"], new_session=True)
    shell = wait_running(cli, job)

    first = time.monotonic()
    os.killpg(pool.pid, signal.SIGINT)
    pool.wait_output(ANNOUNCED)
    assert time.monotonic() - first >= STOP_COPY_SECONDS
    assert alive(shell)
    os.killpg(pool.pid, signal.SIGINT)
    assert pool.wait_exit() != 0, pool.output()
    wait_gone(shell)
    assert FORCED in pool.output()

    shown = show(cli, job)
    assert shown["state"] == "failed", "a killed run is a failed run, retried as usual"
    assert shown["attempts"] == 1
    assert "kill" in (shown["last_error"] or "")
    assert status(cli)["workers"] == []


# -- `worker stop` is not a signal -----------------------------------------------------------


def test_one_sigterm_after_worker_stop_is_still_the_first_request(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    pool = pools.start(cli)
    shell = wait_running(cli, job)

    stopped = cli("worker", "stop", "--timeout", "0")
    assert stopped.returncode == 1, stopped.stderr  # the job still runs
    pool.wait_output("asked to stop through the store")
    pool.proc.send_signal(signal.SIGTERM)
    pool.wait_output(ANNOUNCED)
    finish_gracefully(cli, pool, job, shell)
    assert pool.wait_exit() == 0, pool.output()
    assert FORCED not in pool.output()


# -- the supervisor killed during a graceful stop --------------------------------------------


def test_a_supervisor_killed_during_a_graceful_stop_leaves_its_job_to_finish(sqlite_cli, pools):
    """Its workers then get their parent-death signal: no second request, so the running job
    still finishes (README: only the supervisor killed → workers stop gracefully)."""
    cli = speed_up(sqlite_cli)
    job = held_job(cli)
    pool = pools.start(cli)
    shell = wait_running(cli, job)
    (worker,) = [w["pid"] for w in status(cli)["workers"]]

    pool.proc.send_signal(signal.SIGTERM)
    pool.wait_output(ANNOUNCED)
    pool.proc.send_signal(signal.SIGKILL)
    pool.proc.wait(timeout=DEADLINE)
    pool.wait_output("its supervisor is gone")
    assert alive(worker) and alive(shell)
    (cli.cwd / "release").touch()
    wait_state(cli, job, "completed")
    wait_gone(worker)
    assert show(cli, job)["attempts"] == 1
