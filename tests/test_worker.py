"""Workers end to end: real `worker start` processes running real shell commands (SPEC §3-§5).

Every test synchronises on events (files the commands write, job states from `show --json`),
never on fixed sleeps, and kills whatever pool it started when it ends. Crash tests (kill -9)
live in test_worker_crash.py.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from clikit import enqueue, enqueue_many, run_burst
from conftest import wait_for
from workerkit import (
    DEADLINE,
    alive,
    epoch,
    rss_kib,
    show,
    speed_up,
    status,
    wait_gone,
    wait_int,
    wait_state,
)

from queuectl.store import ClaimRequest, open_store

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="looks at processes through /proc"
)


# -- 1. success --------------------------------------------------------------------------------


def test_successful_job_is_completed_with_its_output_in_logs(cli):
    speed_up(cli)
    job = enqueue(
        cli,
        id="hello",
        command='echo "out id=$QUEUECTL_JOB_ID attempt=$QUEUECTL_ATTEMPT"; echo err-line >&2',
    )
    run_burst(cli)

    shown = show(cli, job)
    assert shown["state"] == "completed"
    assert shown["attempts"] == 1
    assert shown["exit_code"] == 0
    assert shown["last_error"] is None
    assert [run["exit_code"] for run in shown["runs"]] == [0]
    logs = cli("logs", job)
    assert logs.returncode == 0, logs.stderr
    assert "out id=hello attempt=1" in logs.stdout
    assert "err-line" in logs.stdout


def test_a_job_holds_no_descriptor_of_its_worker(cli):
    """The store's files, its connection, the wake-up pipes: none of them reach a command
    (started directly or through the shell), on either backend."""
    speed_up(cli)
    direct = enqueue(cli, id="direct", command="ls /proc/self/fd")
    shell = enqueue(cli, id="shell", command="ls /proc/self/fd | cat")
    run_burst(cli)
    # `ls` lists 0-2 and the folder it opened itself (3). Under the shell, ls's stdout is the
    # pipe to `cat`, and dash keeps nothing else open.
    for job in (direct, shell):
        assert show(cli, job)["runs"][0]["output_tail"].split() == ["0", "1", "2", "3"], job


# -- 2. retries with exponential backoff, dead letters ------------------------------------------


def test_failing_job_backs_off_exponentially_then_is_dead_and_dlq_retry_runs_it_again(cli, pools):
    base = 1.5
    speed_up(cli, QUEUECTL_BACKOFF_BASE=str(base))
    runs_file = cli.cwd / "runs.txt"
    job = enqueue(cli, id="flaky", command="echo run >> runs.txt; exit 3", max_retries=2)
    pool = pools.start(cli)

    dead = wait_state(cli, job, "dead")
    assert dead["attempts"] == 3
    assert dead["exit_code"] == 3
    assert len(runs_file.read_text().splitlines()) == 3
    runs = dead["runs"]
    assert [run["exit_code"] for run in runs] == [3, 3, 3]
    starts = [epoch(run["started_at"]) for run in runs]
    ends = [epoch(run["finished_at"]) for run in runs]
    for retry in (1, 2):
        backoff = base**retry
        # Times are kept to the millisecond. A retry may not start before its backoff has
        # passed since the failed run ended, and an idle worker wakes for a due job at once
        # (poll-interval 0.1 s at most), so not much later either: 1.5 s and 2.25 s stay apart.
        pause = starts[retry] - ends[retry - 1]
        assert backoff - 0.002 <= pause < backoff + 0.7, (retry, pause, runs)
        assert starts[retry] - starts[retry - 1] >= backoff - 0.002

    assert [entry["id"] for entry in cli.json("dlq", "list")] == [job]

    pool.proc.send_signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
    retried = cli("dlq", "retry", job)
    assert retried.returncode == 0, retried.stderr
    shown = show(cli, job)
    assert shown["state"] == "pending"
    assert shown["attempts"] == 0
    assert len(shown["runs"]) == 3, "dlq retry keeps the run history"
    assert cli.json("dlq", "list") == []

    run_burst(cli)
    shown = show(cli, job)
    assert shown["attempts"] == 1
    assert shown["state"] == "failed"  # its first retry is scheduled 1.5 s later
    assert len(shown["runs"]) == 4
    assert len(runs_file.read_text().splitlines()) == 4


# -- 3. a command that does not exist -----------------------------------------------------------


def test_missing_command_fails_with_127_like_any_other_and_the_worker_carries_on(cli):
    speed_up(cli)
    missing = enqueue(
        cli, id="missing", command="queuectl-no-such-command-xyz --flag", max_retries=1
    )
    after = enqueue(cli, id="after", command="echo carried-on > after.txt")
    run_burst(cli)

    shown = show(cli, missing)
    assert shown["state"] == "dead"
    assert shown["attempts"] == 2, "retried under the usual rules"
    assert shown["exit_code"] == 127
    assert [run["exit_code"] for run in shown["runs"]] == [127, 127]
    assert "127" in shown["last_error"]
    assert show(cli, after)["state"] == "completed"
    assert (cli.cwd / "after.txt").read_text().strip() == "carried-on"


# -- 4. timeouts kill the whole process tree -----------------------------------------------------


def test_timeout_kills_every_process_the_command_started_and_counts_as_a_failed_run(cli, pools):
    speed_up(cli)
    job = enqueue(
        cli,
        id="slow",
        # A background child, and a grandchild that ignores SIGTERM (only SIGKILL stops it).
        command=(
            "sleep 300 & echo $! > child.pid;"
            ' (trap "" TERM; exec sleep 300) & echo $! > stubborn.pid;'
            " echo $$ > shell.pid; sleep 300"
        ),
        timeout=1,
        max_retries=0,
    )
    pools.start(cli)
    pids = [wait_int(cli.cwd / name) for name in ("child.pid", "stubborn.pid", "shell.pid")]

    dead = wait_state(cli, job, "dead")
    for pid in pids:
        wait_gone(pid)
    assert dead["attempts"] == 1
    assert re.search(r"time[d ]*out", dead["last_error"] or ""), dead["last_error"]
    run = dead["runs"][0]
    assert run["finished_at"] is not None
    assert epoch(run["finished_at"]) - epoch(run["started_at"]) < 20


# -- 5. priority and delayed jobs ---------------------------------------------------------------


def test_higher_priority_runs_first_and_a_delayed_job_waits_for_its_run_at(cli, pools):
    speed_up(cli)
    order = cli.cwd / "order.txt"
    enqueue(cli, id="low", command="echo low >> order.txt", priority=0)
    enqueue(cli, id="high", command="echo high >> order.txt", priority=5)
    pools.start(cli)
    wait_state(cli, "low", "completed")
    assert order.read_text().split() == ["high", "low"]
    high, low = show(cli, "high"), show(cli, "low")
    assert epoch(high["runs"][0]["started_at"]) <= epoch(low["runs"][0]["started_at"])

    # With the worker idle: the highest priority of all, but not due for 2 s, must wait; a job
    # enqueued after it runs meanwhile.
    later = enqueue(cli, id="later", command="echo later >> order.txt", priority=9, delay=2)
    enqueue(cli, id="now", command="echo now >> order.txt")
    shown = wait_state(cli, later, "completed")
    wait_state(cli, "now", "completed")
    assert order.read_text().split()[2:] in (["now", "later"], ["later", "now"])
    run_at = epoch(shown["run_at"])
    assert run_at - epoch(shown["created_at"]) == pytest.approx(2, abs=0.01)
    assert epoch(shown["runs"][0]["started_at"]) >= run_at - 0.002


# -- 6. many workers, many jobs: each runs exactly once ------------------------------------------


def test_four_workers_run_hundreds_of_jobs_exactly_once_including_jobs_added_meanwhile(cli, pools):
    speed_up(cli)
    command = "echo $QUEUECTL_JOB_ID >> ran.txt"
    first = enqueue_many(cli, [{"id": f"a{n:03d}", "command": command} for n in range(150)])
    pool = pools.start(cli, "--count", "4")
    wait_for(lambda: len(status(cli)["workers"]) == 4, timeout=DEADLINE)
    wait_for(lambda: status(cli)["jobs"]["completed"] >= 10, timeout=DEADLINE)
    second = enqueue_many(cli, [{"id": f"b{n:03d}", "command": command} for n in range(150)])

    everything = set(first) | set(second)
    assert len(everything) == 300
    wait_for(lambda: status(cli)["jobs"]["completed"] == 300, timeout=90, interval=0.2)
    ran = collections.Counter((cli.cwd / "ran.txt").read_text().split())
    assert set(ran) == everything
    assert [job for job, times in ran.items() if times != 1] == []
    jobs = cli.json("list", "--limit", "0")
    assert {job["state"] for job in jobs} == {"completed"}
    assert {job["attempts"] for job in jobs} == {1}

    pool.proc.send_signal(signal.SIGTERM)
    assert pool.wait_exit() == 0


# -- 7. stopping: signals and `worker stop` -------------------------------------------------------


def test_sigterm_lets_the_running_job_finish_starts_no_new_job_and_exits_0(cli, pools):
    speed_up(cli)
    # It runs until the test lets it end (a fixed sleep lost the race on a loaded machine).
    held = "touch started; while [ ! -e release ]; do sleep 0.05; done; echo done > finished.txt"
    first = enqueue(cli, id="first", command=held, priority=1)
    second = enqueue(cli, id="second", command="echo ran > second.txt")
    pool = pools.start(cli)
    wait_for(lambda: (cli.cwd / "started").exists(), timeout=DEADLINE)
    workers = status(cli)["workers"]
    assert len(workers) == 1
    assert workers[0]["current_job"] == first

    pool.proc.send_signal(signal.SIGTERM)
    pool.wait_output("stopping once the running jobs finish")
    (cli.cwd / "release").touch()
    assert pool.wait_exit() == 0, pool.output()
    assert (cli.cwd / "finished.txt").read_text().strip() == "done"
    assert show(cli, first)["state"] == "completed"
    shown = show(cli, second)
    assert (shown["state"], shown["attempts"]) == ("pending", 0)
    assert not (cli.cwd / "second.txt").exists()
    assert status(cli)["workers"] == []


def test_worker_stop_waits_for_running_jobs_and_exits_0_once_workers_are_gone(cli, pools):
    speed_up(cli)
    job = enqueue(cli, id="job", command="touch started; sleep 2; echo done > finished.txt")
    pool = pools.start(cli, "--count", "2")
    wait_for(lambda: (cli.cwd / "started").exists(), timeout=DEADLINE)
    wait_for(lambda: len(status(cli)["workers"]) == 2, timeout=DEADLINE)

    stopped = cli("worker", "stop", "--timeout", str(DEADLINE))
    assert stopped.returncode == 0, stopped.stderr
    # It returned only once the workers had exited, so the job had finished.
    assert (cli.cwd / "finished.txt").read_text().strip() == "done"
    assert show(cli, job)["state"] == "completed"
    assert status(cli)["workers"] == []
    assert pool.wait_exit() == 0, pool.output()


def test_worker_stop_exits_1_when_its_timeout_passes_before_the_workers_exit(cli, pools):
    speed_up(cli)
    job = enqueue(cli, id="long", command="touch started; sleep 60")
    pool = pools.start(cli)
    wait_for(lambda: (cli.cwd / "started").exists(), timeout=DEADLINE)

    began = time.monotonic()
    stopped = cli("worker", "stop", "--timeout", "0.5")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert time.monotonic() - began < 15
    assert "Traceback" not in stopped.stderr
    # Asked to stop, the worker still lets its job run.
    assert pool.proc.poll() is None
    assert show(cli, job)["state"] == "processing"


def test_second_sigterm_kills_the_running_command_which_is_retried_and_exits_nonzero(cli, pools):
    speed_up(cli)
    job = enqueue(
        cli,
        id="victim",
        command=(
            'echo $$ > shell.$QUEUECTL_ATTEMPT; [ "$QUEUECTL_ATTEMPT" -gt 1 ] || sleep 60;'
            " echo finished"
        ),
        max_retries=1,
    )
    pool = pools.start(cli)
    shell = wait_int(cli.cwd / "shell.1")

    pool.proc.send_signal(signal.SIGTERM)
    pool.wait_output("stopping")  # the worker saw the first signal
    assert alive(shell)
    pool.proc.send_signal(signal.SIGTERM)
    assert pool.wait_exit() != 0
    wait_gone(shell)

    shown = show(cli, job)
    assert shown["state"] == "failed", "a killed run is a failed run, retried as usual"
    assert shown["attempts"] == 1
    assert shown["runs"][0]["finished_at"] is not None
    assert "kill" in (shown["last_error"] or "")
    assert status(cli)["workers"] == []

    run_burst(cli)  # backoff base 0: the retry is due at once
    shown = show(cli, job)
    assert (shown["state"], shown["attempts"]) == ("completed", 2)


# -- 10. huge output --------------------------------------------------------------------------


def test_hundreds_of_megabytes_of_output_keep_worker_memory_flat(sqlite_cli, pools):
    cli = speed_up(sqlite_cli)
    size = 300_000_000
    job = enqueue(
        cli,
        id="loud",
        command=(
            "touch started; while [ ! -e go ]; do sleep 0.02; done;"
            f" yes 0123456789abcdef | head -c {size}; echo; echo LAST-LINE-MARK; touch written"
        ),
        timeout=0,
    )
    pools.start(cli)
    wait_for(lambda: (cli.cwd / "started").exists(), timeout=DEADLINE)
    holders = [w["pid"] for w in status(cli)["workers"] if w["current_job"] == job]
    assert len(holders) == 1
    worker_pid = holders[0]

    # Sample the worker's resident memory every 10 ms from the first byte printed until the
    # run is recorded (reading the tail back included), in a thread so CLI calls do not slow it.
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = rss_kib(worker_pid)
            if rss is not None:
                samples.append(rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        (cli.cwd / "go").touch()
        wait_for(lambda: (cli.cwd / "written").exists(), timeout=120, interval=0.05)
        shown = wait_state(cli, job, "completed")
        time.sleep(0.1)  # a few samples after the run was recorded
    finally:
        done.set()
        sampler.join()
    assert len(samples) >= 5
    assert max(samples) < 60 * 1024, f"worker RSS peaked at {max(samples)} KiB"

    with open(cli.cwd / "logs.out", "wb") as out:
        logs = subprocess.run(
            [sys.executable, "-m", "queuectl", "logs", job],
            stdout=out,
            stderr=subprocess.PIPE,
            cwd=cli.cwd,
            env=cli.env,
            timeout=120,
        )
    assert logs.returncode == 0, logs.stderr
    assert (cli.cwd / "logs.out").stat().st_size == size + len("\nLAST-LINE-MARK\n")
    with open(cli.cwd / "logs.out", "rb") as handle:
        handle.seek(-100, 2)
        assert handle.read().endswith(b"\nLAST-LINE-MARK\n")
    # The store keeps the output tail too (for `show` and runs on other hosts).
    store = open_store(cli.db)
    try:
        tail = store.runs(job)[0].output_tail
    finally:
        store.close()
    assert tail.endswith("LAST-LINE-MARK\n")
    assert len(tail) <= 64 * 1024
    assert shown["exit_code"] == 0


# -- 11. burst mode ----------------------------------------------------------------------------


def test_burst_requeues_expired_leases_first_and_exits_though_a_job_is_due_later(cli):
    speed_up(cli)
    stale = enqueue(cli, id="stale", command="echo rescued > stale.txt")
    later = enqueue(cli, id="later", command="echo too-early > later.txt", delay=3600)
    store = open_store(cli.db)
    try:  # a worker that claimed the job and died at once: its lease runs out in 10 ms
        claim = store.claim(ClaimRequest("ghost-worker", "ghost-host", None, 0.01))
    finally:
        store.close()
    assert claim is not None and claim.job.id == stale
    wait_for(lambda: epoch(show(cli, stale)["updated_at"]) + 0.05 < time.time(), timeout=5)

    began = time.monotonic()
    run_burst(cli)
    assert time.monotonic() - began < 20, "burst waited for the job due in an hour"

    shown = show(cli, stale)
    assert (shown["state"], shown["attempts"]) == ("completed", 2)
    assert shown["runs"][0]["worker_id"] == "ghost-worker"
    assert shown["runs"][0]["finished_at"] is not None
    assert (cli.cwd / "stale.txt").read_text().strip() == "rescued"
    pending = show(cli, later)
    assert (pending["state"], pending["attempts"]) == ("pending", 0)
    assert not (cli.cwd / "later.txt").exists()
    assert status(cli)["workers"] == []


# -- 12. cancel a running job -------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc")
def test_a_canceled_command_that_ends_before_its_worker_notices_leaves_nothing_running(cli, pools):
    """Its shell exits before the heartbeat that would kill it: what it started in the
    background is killed when its outcome is fenced out, as a cancel must (SPEC §4)."""
    speed_up(cli, QUEUECTL_LEASE_SECONDS="30")  # heartbeats a second apart
    job = enqueue(
        cli,
        id="quick",
        command="sleep 300 & echo $! > bg.pid; while [ ! -e go ]; do sleep 0.01; done",
    )
    pools.start(cli)
    background = wait_int(cli.cwd / "bg.pid")
    # Just after the run's first heartbeat (which names its log file): the next is a second
    # away, time enough for the cancel and for the shell to end before it.
    wait_for(lambda: os.path.exists(show(cli, job)["runs"][-1]["log_path"]), timeout=DEADLINE)
    # From "another host", so that this `cancel` neither waits for nor kills the command.
    canceled = cli("cancel", job, env={"QUEUECTL_HOSTNAME": "elsewhere"})
    assert canceled.returncode == 0, canceled.stderr
    (cli.cwd / "go").touch()  # the shell ends now, most likely before the next heartbeat
    wait_gone(background, timeout=10)
    assert show(cli, job)["state"] == "canceled"


def test_cancel_of_a_processing_job_kills_its_process_tree_and_does_not_retry_it(cli, pools):
    speed_up(cli)
    job = enqueue(
        cli,
        id="doomed",
        command="sleep 300 & echo $! > child.pid; echo $$ > shell.pid; wait",
        max_retries=3,
    )
    pools.start(cli)
    child = wait_int(cli.cwd / "child.pid")
    shell = wait_int(cli.cwd / "shell.pid")
    assert show(cli, job)["state"] == "processing"

    canceled = cli("cancel", job)
    assert canceled.returncode == 0, canceled.stderr
    wait_gone(child)
    wait_gone(shell)

    # The worker moves on to the next job; the canceled one is never run again.
    follow = enqueue(cli, id="follow", command="echo next > follow.txt")
    wait_state(cli, follow, "completed")
    shown = show(cli, job)
    assert shown["state"] == "canceled"
    assert shown["attempts"] == 1
    assert len(shown["runs"]) == 1
    assert shown["runs"][0]["finished_at"] is not None
