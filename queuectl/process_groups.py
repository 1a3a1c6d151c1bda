"""Process groups: signal a run's group, tell whether it is gone, and kill what a lost run left.

Every command leads a session (and so a process group) of its own, so a signal to the group
reaches everything it started. This module is the one place that signals groups and reads
/proc for them: the runner's timeout and stop kills, and every path that kills the leftovers of
a run whose worker is gone:

- a worker that requeues a lost run of this host, or claims one again (kill_lost_run);
- a worker whose run was canceled, or whose lease was lost, as the command ended
  (kill_orphaned_run);
- `cancel` of a job whose worker was killed with the whole pool (end_canceled_run);
- the supervisor, a child subreaper that adopts the commands of a worker that died
  (become_subreaper, reap_adopted).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from .liveness import host_name
from .models import CommandFate, Run

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")
# After SIGTERM, a job gets this long to clean up before its whole group is SIGKILLed.
KILL_GRACE_SECONDS = 2.0
_PR_SET_CHILD_SUBREAPER = 36

# -- signalling a running command's group ------------------------------------------------------


def stop_group(
    pgid: int, poll: Callable[[], int | None], grace: float = KILL_GRACE_SECONDS
) -> None:
    """Stop the process tree led by `pgid`: SIGTERM, then SIGKILL after `grace` seconds, or
    as soon as nothing live is left in the group. `poll` reaps the leader (Popen.poll)."""
    if IS_WINDOWS:
        _kill_tree_windows(pgid)
        return
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    # Reap the leader once it exits: a zombie still counts as a member of its group, and
    # waiting out the whole grace period for it would also starve the heartbeat.
    while time.monotonic() < deadline and (poll() is None or group_alive(pgid)):
        time.sleep(0.05)
    signal_group(pgid, signal.SIGKILL)


def kill_group_now(pgid: int) -> None:
    """SIGKILL the process tree led by `pgid` at once; safe to call from a signal handler."""
    if IS_WINDOWS:
        _kill_tree_windows(pgid)
    else:
        signal_group(pgid, signal.SIGKILL)


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to a process group; a group that is gone (or not ours) is left alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def tree_kill_argv(pid: int) -> list[str]:
    """The command that kills a process and every process it started on Windows, which has
    no process groups to signal: taskkill /F (force) /T (the tree) /PID."""
    return ["taskkill", "/F", "/T", "/PID", str(pid)]


def _kill_tree_windows(pid: int) -> None:
    subprocess.run(
        tree_kill_argv(pid),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


# -- is a group gone? --------------------------------------------------------------------------


def group_exists(pgid: int) -> bool:
    """Whether any process, zombies included, is left in the process group (always True on
    Windows, where this cannot be told)."""
    if IS_WINDOWS:
        return True
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Whether a live process is left in the process group (POSIX).

    killpg(pgid, 0) alone counts zombies: a killed command's children wait there until the
    supervisor (or init) reaps them, so on Linux the group's members are read from /proc."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not IS_LINUX:
        return True
    return any(state not in b"ZX" for _, state, _ in _group_members(pgid))


def wait_group_gone(pgid: int, timeout: float, poll: float = 0.05) -> bool:
    """Wait up to `timeout` seconds for a process group to be gone; returns whether it is."""
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def _group_members(pgid: int) -> Iterator[tuple[int, bytes, str]]:
    """(pid, state, path of /proc/PID) of each process in a process group (Linux)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) == pgid:
                yield int(entry.name), fields[0], entry.path
        except (OSError, IndexError, ValueError):
            continue


# -- what a lost run left ----------------------------------------------------------------------


def kill_lost_run(job_id: str, runs: Sequence[Run], host: str, log_dir: str) -> bool:
    """Kill what the job's last lost run left running, if that run was on `host` (this one):
    its worker died with the whole pool, so no supervisor killed it. Called before the job can
    run again, so two runs never overlap; returns once the kill is seen through (or after 2 s).
    Returns whether anything was killed."""
    lost = [run for run in runs if run.outcome == "lost"]
    if not lost or lost[-1].host != host:
        return False
    run = lost[-1]
    if not run.pid:  # its worker died before recording the pid
        return kill_unrecorded_run(job_id, run.attempt, log_dir)
    killed = kill_orphaned_run(run.pid, job_id)
    if killed:
        wait_group_gone(run.pid, 2.0, poll=0.01)  # SIGKILL is not instant: see it gone
    return killed


def end_canceled_run(job_id: str, runs: Sequence[Run], wait: float) -> CommandFate:
    """See a canceled job's running command gone, for `cancel` (queue.Canceled.command).

    On this host, wait up to `wait` seconds until its worker has killed the command; if it is
    still there then (its worker was killed with the whole pool, say), kill it here: a canceled
    job has no worker left to do it. LEFT_TO_WORKER: on another host, its pid not recorded
    yet, or it cannot be killed from here."""
    pid = runs[-1].pid if runs and runs[-1].host == host_name() else None
    if not pid:
        return CommandFate.LEFT_TO_WORKER
    if wait_group_gone(pid, wait):
        return CommandFate.ENDED
    if kill_orphaned_run(pid, job_id) and wait_group_gone(pid, 1.0):
        return CommandFate.KILLED  # SIGKILL: gone once the kernel tore it down
    return CommandFate.LEFT_TO_WORKER if group_alive(pid) else CommandFate.ENDED


def kill_orphaned_run(pgid: int, job_id: str) -> bool:
    """Kill what is left of a lost run on this host: its process group, if the group still
    holds a process started for this job (checked through /proc, so a recycled id is never
    hit). Linux only; returns whether a group was killed."""
    marker = f"QUEUECTL_JOB_ID={job_id}".encode()
    for _, _, proc_path in _group_members(pgid) if IS_LINUX else ():
        if marker in _environment(proc_path):
            signal_group(pgid, signal.SIGKILL)
            return True
    return False


def kill_unrecorded_run(job_id: str, attempt: int, log_dir: str) -> bool:
    """Kill what is left of a lost run whose pid was never recorded: its worker died within
    its first heartbeat (job_run.FIRST_BEAT_SECONDS), with the whole pool, so no supervisor
    killed it.

    Its processes are found through /proc: the job id and attempt in their environment, and
    stdout or stderr open on a file in this store's logs folder (a store of its own: another
    store's job with the same id and attempt is never hit). A command that redirected both
    elsewhere is not found. Linux only; returns whether anything was killed."""
    if not IS_LINUX:
        return False
    markers = (f"QUEUECTL_JOB_ID={job_id}".encode(), f"QUEUECTL_ATTEMPT={attempt}".encode())
    folder = os.path.join(os.path.realpath(log_dir), "")
    groups = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        environ = _environment(entry.path)
        if not all(marker in environ for marker in markers):
            continue
        if any(_fd_target(entry.path, fd).startswith(folder) for fd in (1, 2)):
            with contextlib.suppress(OSError):  # gone meanwhile
                groups.add(os.getpgid(int(entry.name)))
    for pgid in groups:
        signal_group(pgid, signal.SIGKILL)
    return bool(groups)


def _environment(proc_path: str) -> list[bytes]:
    """A process's environment as NAME=value entries, or [] if it cannot be read (gone
    meanwhile, or another user's)."""
    try:
        with open(f"{proc_path}/environ", "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:
        return []


def _fd_target(proc_path: str, fd: int) -> str:
    """What a process's descriptor is open on ("/x/logs/#123 (deleted)" for an anonymous log
    file), or "" if that cannot be read."""
    try:
        return os.readlink(f"{proc_path}/fd/{fd}")
    except OSError:
        return ""


# -- the supervisor: adopted commands of dead workers ------------------------------------------


def become_subreaper() -> None:
    """Have the commands of a worker that dies re-parented to this process, not to init, so
    reap_adopted can kill them at once (Linux; elsewhere nothing happens)."""
    if not IS_LINUX:
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        pass


def reap_adopted(workers: set[int], kill: bool) -> None:
    """Collect the adopted children (not in `workers`) that exited; with `kill`, first kill
    their process groups: they are commands orphaned by a worker that just died. Linux only."""
    if not IS_LINUX:
        return
    for pid in _adopted_children(workers):
        if kill:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _adopted_children(workers: set[int]) -> list[int]:
    """Children that are not workers: commands orphaned by a dead worker, or leftovers."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as handle:
            pids = [int(text) for text in handle.read().split()]
    except OSError:
        return []
    return [pid for pid in pids if pid not in workers]
