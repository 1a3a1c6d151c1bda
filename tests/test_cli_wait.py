"""`queuectl wait` and `queuectl logs --follow` (SPEC §7): real CLI processes waiting on jobs
that real workers run. Every test synchronises on events (gate files the test creates, lines
read, job states), never on fixed sleeps; timings are measured, and asserted loosely.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from clikit import assert_error, assert_ok, enqueue, run_burst
from conftest import CLI, wait_for
from workerkit import DEADLINE, epoch, show, speed_up, status, wait_int, wait_state

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="looks at processes through /proc"
)

FAILED_LINE = re.compile(r"^(?P<id>\S+): (?P<state>dead|canceled) \((?P<error>.*)\)$")
GATED = "while [ ! -e {gate} ]; do sleep 0.02; done"


@contextlib.contextmanager
def background(cli: CLI, *args: str, **popen) -> Iterator[subprocess.Popen]:
    """`queuectl ARGS` running in the background, its output in pipes; killed at the end."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl", *args], cwd=cli.cwd, env=cli.env, **options
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def finish(proc: subprocess.Popen, timeout: float = DEADLINE) -> tuple[int, str, str]:
    """Wait for a background command to end; its exit status, stdout and stderr."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, (out or b"").decode(), (err or b"").decode()


def read_until(proc: subprocess.Popen, text: str, timeout: float = DEADLINE) -> str:
    """Read the command's stdout until `text` has appeared (while it still runs)."""
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{text!r} not printed within {timeout}s; got {seen!r}"
        if select.select([fd], [], [], remaining)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"stdout closed before {text!r}; got {seen!r}"
            seen += chunk
    return seen.decode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store_open_by(pid: int, cli: CLI) -> bool:
    """Whether the process has the SQLite store file open (it is past start-up)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{name}") == cli.db:
                    return True
    return False


# ---------------------------------------------------------------------------------------------
# wait


def test_wait_exits_0_once_every_job_has_completed(cli, pools):
    speed_up(cli)
    gate = cli.cwd / "gate"
    enqueue(cli, id="quick", command="true")
    enqueue(cli, id="gated", command=GATED.format(gate=gate))
    with background(cli, "wait", "quick", "gated", "quick") as waiting:
        pools.start(cli, "--count", "2")
        wait_state(cli, "quick", "completed")
        assert waiting.poll() is None, "one job is still running"
        gate.touch()
        assert finish(waiting) == (0, "", "")


def test_wait_exits_3_naming_each_dead_or_canceled_job(cli, pools):
    speed_up(cli)
    enqueue(cli, id="fine", command="echo fine")
    enqueue(cli, id="doomed", command="exit 7", max_retries=0)
    enqueue(cli, id="dropped", command="true", delay=3600)
    with background(cli, "wait", "fine", "doomed", "dropped") as waiting:
        pools.start(cli)
        wait_state(cli, "doomed", "dead")
        wait_state(cli, "fine", "completed")
        assert waiting.poll() is None, "a job is still pending"
        assert_ok(cli("cancel", "dropped"))
        code, out, err = finish(waiting)
    assert (code, out) == (3, ""), err
    lines = err.splitlines()
    assert [FAILED_LINE.match(line)["id"] for line in lines] == ["doomed", "dropped"], err
    assert lines[0] == f"doomed: dead ({show(cli, 'doomed')['last_error']})", err
    assert FAILED_LINE.match(lines[1])["state"] == "canceled", err


def test_wait_timeout_exits_124_and_leaves_the_jobs_alone(cli):
    enqueue(cli, id="never-run", command="true")
    started = time.monotonic()
    result = cli("wait", "never-run", "--timeout", "0.5")
    assert result.returncode == 124, result
    assert time.monotonic() - started < 20
    assert result.stdout == "" and "never-run" in result.stderr, result
    job = show(cli, "never-run")
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert cli("wait", "never-run", "--timeout", "0").returncode == 124


def test_wait_for_an_unknown_id_exits_1_at_once_naming_it(cli):
    enqueue(cli, id="known", command="true")  # never run: waiting for it would never end
    err = assert_error(cli("wait", "known", "no-such-job", timeout=20), 1, mentions=["no-such-job"])
    assert "known" not in err.replace("no-such-job", "")
    assert_error(cli("wait", timeout=20), 2)  # at least one id


def test_wait_on_a_store_that_cannot_be_used_exits_1(tmp_path):
    (tmp_path / "garbage.db").write_text("not a database\n")
    for command in (["wait", "job1"], ["logs", "job1", "--follow"]):
        cli = CLI(str(tmp_path / "garbage.db"), tmp_path)
        assert_error(cli(*command, timeout=20), 1, mentions=["corrupt"])


def test_wait_escapes_control_characters_in_the_ids_it_names(sqlite_cli):
    # Stored ids have none (SPEC §2), but the ids typed may, and they are named back.
    result = sqlite_cli("wait", "evil\x1b[2J\nid", timeout=20)
    err = assert_error(result, 1)
    assert "\x1b" not in err and "evil\\x1b[2J\\nid" in err, err


def test_wait_a_job_retried_twice_then_completed_exits_0(cli, pools):
    speed_up(cli)
    command = 'echo "try $QUEUECTL_ATTEMPT"; [ "$QUEUECTL_ATTEMPT" -ge 3 ]'
    enqueue(cli, id="flaky", command=command, max_retries=3)
    with background(cli, "wait", "flaky") as waiting:
        pools.start(cli)
        assert finish(waiting) == (0, "", "")
    job = show(cli, "flaky")
    assert (job["state"], job["attempts"]) == ("completed", 3)


def test_wait_outlives_a_worker_killed_with_kill_9_and_sees_the_rescued_job(cli, pools):
    # Short leases through the stored setting, as an operator would set them.
    assert_ok(cli("config", "set", "lease-seconds", "2"))
    cli.env.update(QUEUECTL_POLL_INTERVAL="0.1", QUEUECTL_BACKOFF_BASE="0")
    command = (
        "echo $$ > shell.$QUEUECTL_ATTEMPT;"
        ' if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 60; fi; echo done'
    )
    enqueue(cli, id="survivor", command=command, max_retries=3)
    with background(cli, "wait", "survivor") as waiting:
        pools.start(cli)  # one worker: its supervisor replaces it
        wait_int(cli.cwd / "shell.1")
        holders = [w for w in status(cli)["workers"] if w["current_job"] == "survivor"]
        assert len(holders) == 1, status(cli)
        os.kill(holders[0]["pid"], signal.SIGKILL)
        assert waiting.poll() is None
        assert finish(waiting) == (0, "", "")
    job = show(cli, "survivor")
    assert (job["state"], job["attempts"]) == ("completed", 2)
    assert job["runs"][0]["outcome"] == "lost"


def test_wait_returns_soon_after_the_last_job_finishes(cli, pools):
    # SPEC §7: within half a second of the final state being recorded. Asserted loosely (a
    # loaded test machine); the median is printed for the record (pytest -s).
    speed_up(cli)
    pools.start(cli)
    delays = []
    for n in range(5):
        gate = cli.cwd / f"gate{n}"
        job = enqueue(cli, id=f"timed{n}", command=GATED.format(gate=gate))
        with background(cli, "wait", job) as waiting:
            wait_state(cli, job, "processing")
            gate.touch()
            waiting.wait(timeout=DEADLINE)
            returned = time.time()
            assert finish(waiting)[0] == 0
        recorded = epoch(show(cli, job)["updated_at"])
        delays.append(returned - recorded)
    median = statistics.median(delays)
    print(f"\nwait returned after the finish: p50 {median * 1000:.0f} ms, max {max(delays):.3f} s")
    assert max(delays) < 2.0, delays


def test_an_idle_wait_costs_no_measurable_cpu(sqlite_cli):
    cli = sqlite_cli
    enqueue(cli, id="idle", command="true")  # no worker: it stays pending
    with background(cli, "wait", "idle", "--timeout", "60") as waiting:
        wait_for(lambda: store_open_by(waiting.pid, cli))  # started up: idle from here on
        before, started = cpu_seconds(waiting.pid), time.monotonic()
        time.sleep(3)  # the measurement itself
        used = cpu_seconds(waiting.pid) - before
        share = used / (time.monotonic() - started)
        assert waiting.poll() is None
    print(f"\nidle wait: {share * 100:.2f} % of a core")
    assert share < 0.05, share


def test_ctrl_c_ends_wait_quietly_with_status_130(sqlite_cli):
    cli = sqlite_cli
    enqueue(cli, id="pending", command="true")
    with background(cli, "wait", "pending") as waiting:
        wait_for(lambda: store_open_by(waiting.pid, cli))
        waiting.send_signal(signal.SIGINT)
        assert finish(waiting) == (130, "", "")


def test_a_progress_bar_only_on_a_terminal(sqlite_cli):
    cli = sqlite_cli
    enqueue(cli, id="one", command="true")
    run_burst(cli)
    enqueue(cli, id="two", command="true")
    result = cli("wait", "one", "two", "--timeout", "0")
    assert (result.returncode, result.stdout) == (124, ""), result
    assert "/2" not in result.stderr, "no bar when stderr is not a terminal"

    main, other = pty.openpty()
    try:
        with background(cli, "wait", "one", "two", stderr=other) as waiting:
            os.close(other)
            other = -1
            drawn = read_terminal(main, b"1/2")
            run_burst(cli)
            code, out, _ = finish(waiting)
            drawn += read_terminal(main, b"2/2")
    finally:
        os.close(main)
        if other >= 0:
            os.close(other)
    assert (code, out) == (0, "")
    assert b"finished" in drawn, drawn


def read_terminal(fd: int, text: bytes, timeout: float = DEADLINE) -> bytes:
    """What was drawn on a pseudo-terminal, until `text` has been."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and select.select([fd], [], [], remaining)[0], seen
        seen += os.read(fd, 4096)
    return seen


# ---------------------------------------------------------------------------------------------
# logs --follow


def test_logs_follow_prints_lines_as_they_are_written(cli, pools):
    speed_up(cli)
    gate = cli.cwd / "gate"
    command = f"echo first-line; {GATED.format(gate=gate)}; echo second-line"
    enqueue(cli, id="talker", command=command)
    pools.start(cli)
    with background(cli, "logs", "talker", "--follow") as following:
        assert read_until(following, "first-line\n") == "first-line\n"
        assert show(cli, "talker")["state"] == "processing", "printed while the job runs"
        gate.touch()
        code, rest, err = finish(following)
    assert (code, rest) == (0, "second-line\n"), err
    assert err == "=== attempt 1 (running) ===\n"


def test_logs_follow_shows_each_run_with_its_header(cli, pools):
    speed_up(cli)
    command = 'echo "run-$QUEUECTL_ATTEMPT"; [ "$QUEUECTL_ATTEMPT" -ge 2 ]'
    enqueue(cli, id="twice", command=command, max_retries=1)
    with background(cli, "logs", "twice", "--follow") as following:
        pools.start(cli)
        code, out, err = finish(following)
    assert (code, out) == (0, "run-1\nrun-2\n"), err
    headers = err.splitlines()
    assert [h.split(" (")[0] for h in headers] == ["=== attempt 1", "=== attempt 2"], err
    assert headers[0] in ("=== attempt 1 (running) ===", "=== attempt 1 (exited, exit 1) ===")


def test_logs_follow_exits_as_wait_does(cli):
    enqueue(cli, id="doomed", command="echo last words; exit 5", max_retries=0)
    with background(cli, "logs", "doomed", "--follow") as following:
        run_burst(cli)
        code, out, err = finish(following)
    assert (code, out) == (3, "last words\n"), err
    assert err.splitlines()[-1] == f"doomed: dead ({show(cli, 'doomed')['last_error']})"

    enqueue(cli, id="never", command="true", delay=3600)
    with background(cli, "logs", "never", "--follow") as following:
        wait_for(lambda: show(cli, "never"))
        assert_ok(cli("cancel", "never"))
        code, out, err = finish(following)
    assert (code, out) == (3, ""), err
    assert FAILED_LINE.match(err.strip())["state"] == "canceled", err

    assert_error(cli("logs", "no-such-job", "--follow", timeout=20), 1, mentions=["no-such-job"])


def test_logs_follow_prints_a_run_on_another_host_when_it_ends(cli, pools):
    # A run's log file is on the host that ran it: from here, only the store's tail is seen,
    # once the run has ended; its header then says how it ended.
    speed_up(cli)
    gate = cli.cwd / "gate"
    command = f"echo from-afar; {GATED.format(gate=gate)}; echo bye"
    enqueue(cli, id="remote", command=command)
    pools.start(cli, env={"QUEUECTL_HOSTNAME": "box-b"})
    with background(cli, "logs", "remote", "--follow") as following:
        wait_state(cli, "remote", "processing")
        gate.touch()
        code, out, err = finish(following)
    assert (code, out) == (0, "from-afar\nbye\n"), err
    assert err.splitlines()[0] == "=== attempt 1 (exited, exit 0) ===", err


# ---------------------------------------------------------------------------------------------
# the Python API


def test_queue_wait_returns_each_jobs_state(cli):
    from queuectl import Queue
    from queuectl.errors import JobNotFound

    enqueue(cli, id="done", command="true")
    enqueue(cli, id="doomed", command="exit 1", max_retries=0)
    run_burst(cli)
    enqueue(cli, id="later", command="true", delay=3600)
    seen = []

    def progress(finished: int, total: int) -> None:
        seen.append((finished, total))

    with Queue.open(cli.db) as queue:
        result = queue.wait(["done", "later", "doomed"], timeout=0.3, on_progress=progress)
        assert result.timed_out
        assert [job.id for job in result.unfinished] == ["later"]
        assert [job.id for job in result.failed] == ["doomed"]
        assert list(result.jobs) == ["done", "later", "doomed"]
        assert seen == [(2, 3)]
        with pytest.raises(JobNotFound):
            queue.wait(["done", "nope"])
        result = queue.wait(["done", "done"], timeout=0)
        assert not result.timed_out and result.jobs["done"].state == "completed"
