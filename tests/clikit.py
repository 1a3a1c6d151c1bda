"""Helpers for tests that drive the CLI: what a failure must look like to a user, enqueueing,
burst workers, and reading times. Not a test module itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import CLI

# Fields SPEC §2 promises in `show --json` / `list --json`.
REQUIRED_FIELDS = {
    "id",
    "command",
    "state",
    "attempts",
    "max_retries",
    "priority",
    "queue",
    "run_at",
    "created_at",
    "updated_at",
    "exit_code",
    "last_error",
}
STATES = ("waiting", "pending", "processing", "completed", "failed", "dead", "canceled")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def describe(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"


def assert_ok(result: subprocess.CompletedProcess) -> str:
    """Exit 0 and no traceback; returns stdout."""
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    return result.stdout


def assert_error(result: subprocess.CompletedProcess, code: int = 1, mentions=()) -> str:
    """A refused command as SPEC §4 wants it: this exit status, nothing on stdout (scripts read
    ids from there), no traceback; for status 1 a one-line message. Returns stderr."""
    detail = describe(result)
    assert result.returncode == code, detail
    assert "Traceback" not in result.stderr, detail
    assert result.stdout == "", detail
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, detail
    else:
        assert "Usage" in result.stderr or "Error" in result.stderr, detail
    for needle in mentions:
        assert needle.lower() in result.stderr.lower(), detail
    return result.stderr


def all_jobs(cli: CLI, *args: str) -> list[dict]:
    return cli.json("list", "--limit", "0", *args)


def job_ids(cli: CLI, *args: str) -> list[str]:
    return [job["id"] for job in all_jobs(cli, *args)]


def enqueue(cli: CLI, **spec) -> str:
    """Enqueue one JSON spec; returns the id printed (the only thing on stdout)."""
    out = assert_ok(cli("enqueue", json.dumps(spec)))
    assert out.endswith("\n") and out.count("\n") == 1, repr(out)
    return out.strip()


def enqueue_many(
    cli: CLI, specs: list[dict], chunk: int = 10_000, timeout: float = 60
) -> list[str]:
    """Enqueue specs as JSON lines on stdin, `chunk` of them a call; returns the ids printed."""
    ids: list[str] = []
    for start in range(0, len(specs), chunk):
        text = "".join(json.dumps(spec) + "\n" for spec in specs[start : start + chunk])
        ids += assert_ok(cli("enqueue", "-", input=text, timeout=timeout)).split()
    return ids


def run_burst(cli: CLI, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """One burst worker (`worker start --burst ARGS`) in the foreground: runs every job that is
    ready now, then must exit 0. Retries are immediate unless the test set a backoff base, in
    `cli.env` (speed_up) or in `env`."""
    backoff = {"QUEUECTL_BACKOFF_BASE": cli.env.get("QUEUECTL_BACKOFF_BASE", "0")}
    result = cli("worker", "start", "--burst", *args, env={**backoff, **(env or {})})
    assert_ok(result)
    return result


def make_dead(cli: CLI, *ids: str, extra: dict | None = None) -> None:
    """Jobs that fail with exit 3 and no retries, run by one burst worker, so they are dead.
    `extra` maps more ids to specs enqueued first (e.g. a delayed job that must stay pending)."""
    for job_id, spec in (extra or {}).items():
        enqueue(cli, id=job_id, **spec)
    for job_id in ids:
        enqueue(cli, id=job_id, command="echo dying; exit 3", max_retries=0)
    run_burst(cli)
    dead = set(job_ids(cli, "--state", "dead"))
    assert set(ids) <= dead, dead


def utc_time(text: str) -> datetime:
    """Parse a time from --json output, checking it is ISO-8601 in UTC."""
    assert isinstance(text, str) and ISO_UTC.match(text), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() == timedelta(0), text
    return moment


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def run_queuectl(
    args: list[str], env: dict, cwd: Path, umask: int | None = None, preexec=None
) -> subprocess.CompletedProcess:
    """`python -m queuectl ARGS` with a full environment of our choosing (CLI() cannot drop a
    variable) and optionally another umask or a pre-exec hook."""
    argv = [sys.executable, "-m", "queuectl", *args]
    if umask is not None:
        argv = ["/bin/sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *argv]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        preexec_fn=preexec,
    )


def files_under(root: Path) -> set[str]:
    """Every file below root, as paths relative to it."""
    found = set()
    for folder, _dirs, names in os.walk(root):
        for name in names:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def each_case(cases: dict, check) -> None:
    """Run check(*case) for every named case and report every failing one, not just the first:
    one test (one store, one fixture set-up) for a whole table of inputs."""
    failures = []
    for name, case in cases.items():
        try:
            check(*case)
        except AssertionError as exc:
            failures.append(f"[{name}] {exc}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)


def drop_root_file_powers() -> None:
    """Pre-exec hook: take away the capabilities that let root ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so chmod 0400 binds as for any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for capability in (1, 2, 3):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            os._exit(99)


def modes_bind_preexec():
    """A pre-exec hook under which file modes bind for the child (None when not root), or skip
    the test where that cannot be set up (root elsewhere than Linux, or without CAP_SETPCAP)."""
    if os.geteuid() != 0:
        return None
    if not sys.platform.startswith("linux"):
        pytest.skip("running as root and cannot drop file capabilities on this platform")
    probe = subprocess.run(["true"], preexec_fn=drop_root_file_powers, check=False)
    if probe.returncode != 0:
        pytest.skip("running as root without the right to drop CAP_DAC_OVERRIDE")
    return drop_root_file_powers


# SPEC §4: every command a user may type, groups' subcommands as "group sub".
SPEC_COMMANDS = frozenset(
    {
        "enqueue",
        "worker start",
        "worker stop",
        "status",
        "list",
        "show",
        "logs",
        "cancel",
        "dlq list",
        "dlq retry",
        "config list",
        "config get",
        "config set",
        "config unset",
        "wait",
        "queue list",
        "queue pause",
        "queue resume",
        "queue limit",
        "schedule add",
        "schedule list",
        "schedule show",
        "schedule pause",
        "schedule resume",
        "schedule remove",
        "prune",
        "metrics",
        "web",
    }
)
