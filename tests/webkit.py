"""Helpers for the dashboard's tests: the app in process (Starlette's TestClient), a store
holding hostile values, `queuectl web` as a subprocess, and reading its forms. Not a test
module itself.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from clikit import enqueue, run_burst
from conftest import CLI, wait_for

from queuectl.web.app import create_app

HOST, PORT = "127.0.0.1", 8765
BASE = f"http://{HOST}:{PORT}"
TOKEN = "s3cret-token-for-tests"

# Values a store may hold that must never reach a page as markup or terminal control.
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
ESC = "\x1b[31m"
HOSTILE = (SCRIPT, IMG, ESC)
CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


def client(target: str, *, token: str | None = None, read_only: bool = False):
    """A TestClient of the dashboard over `target`, as served on 127.0.0.1:8765."""
    from starlette.testclient import TestClient

    app = create_app(target, token=token, read_only=read_only, host=HOST, port=PORT)
    return TestClient(app, base_url=BASE, follow_redirects=False)


def page_path(job_id: str) -> str:
    return "/jobs/" + quote(job_id, safe="")


def csrf_of(http, path: str = "/") -> str:
    """The CSRF token the page at `path` gives this client's session."""
    answer = http.get(path)
    assert answer.status_code == 200, answer.text
    found = CSRF.search(answer.text)
    assert found, answer.text
    return found.group(1)


def assert_inert(body: str) -> None:
    """No hostile value reached the page as it was stored."""
    for value in HOSTILE:
        assert value not in body, (value, body)
    assert "\x1b" not in body


# Ids with HTML, quotes, an escape sequence, and URL-reserved bytes.
HOSTILE_DEAD = f"dead-{SCRIPT}"
HOSTILE_PENDING = f"pending{IMG}/x?y#z%2F"
HOSTILE_QUEUE = f"q{SCRIPT}"
HOSTILE_SCHEDULE = f"s{IMG}"


def hostile_store(cli: CLI) -> dict[str, str]:
    """A store whose ids, queue, commands, output, errors and schedule hold hostile values:
    a dead job (with a dependent canceled through it, whose last_error names it), a pending
    one in a paused queue, and a schedule. Returns the ids."""
    command = f"printf '%s\\n' '{ESC}{SCRIPT}' '{IMG}'; exit 3"
    dead = enqueue(cli, id=HOSTILE_DEAD, command=command, max_retries=0, queue=HOSTILE_QUEUE)
    dependent = enqueue(cli, id=f"after-{IMG}", command="true", after=[dead])
    run_burst(cli)
    pending = enqueue(cli, id=HOSTILE_PENDING, command=f"echo '{ESC}{IMG}'", queue="held")
    cli.ok("queue", "pause", "held")
    cli.ok("schedule", "add", HOSTILE_SCHEDULE, "@daily", "--command", f"echo '{SCRIPT}'")
    return {"dead": dead, "dependent": dependent, "pending": pending}


class WebProcess:
    """`queuectl web ARGS` running as a subprocess, its URL read from its stderr."""

    def __init__(self, cli: CLI, *args: str, env: dict | None = None) -> None:
        self.log = cli.cwd / f"web-{time.monotonic_ns()}.log"
        self.handle = open(self.log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queuectl", "web", *args],
            stdout=subprocess.PIPE,
            stderr=self.handle,
            text=True,
            cwd=cli.cwd,
            env={**cli.env, **(env or {})},
        )
        self.url = ""

    def stderr(self) -> str:
        return Path(self.log).read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> str:
        """The URL it printed once listening (fails if it exits first)."""

        def printed():
            found = re.search(r"(http://\S+/)", self.stderr())
            if found is None and self.proc.poll() is not None:
                raise AssertionError(f"web exited {self.proc.returncode}: {self.stderr()}")
            return found

        self.url = wait_for(printed, timeout=timeout).group(1)
        return self.url

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.handle.close()


@contextmanager
def web_process(cli: CLI, *args: str, env: dict | None = None):
    """A running `queuectl web ARGS`, killed at the end whatever happened."""
    web = WebProcess(cli, *args, env=env)
    try:
        yield web
    finally:
        web.stop()
