"""Shared fixtures: real stores in tmp_path, the CLI through a subprocess, condition waits.

Backends: every contract test runs against each store in BACKENDS. PostgreSQL joins when a
server is reachable (QUEUECTL_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres);
each test run gets a database of its own. When none is reachable the tests are skipped and the
run says so loudly (see pytest_terminal_summary).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from queuectl.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.02):
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


def base_env(db: str, home: Path) -> dict[str, str]:
    """The environment for a CLI or worker process: this store, no stray config, and a config
    folder of the test's own (PostgreSQL run logs go there, not into the real home)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env.update(
        QUEUECTL_DB=db,
        XDG_CONFIG_HOME=str(home / "xdg-config"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
    )
    return env


class CLI:
    """Runs `python -m queuectl` as a user would, against one store."""

    def __init__(self, db: str, cwd: Path) -> None:
        self.db = db
        self.cwd = cwd
        self.env = base_env(db, cwd)

    def __call__(
        self, *args: str, input: str | None = None, env: dict | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "queuectl", *args],
            input=input,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=timeout,
        )

    def ok(self, *args: str, **kwargs) -> str:
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"{args} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def json(self, *args: str, **kwargs):
        return json.loads(self.ok(*args, "--json", **kwargs))

    def start_workers(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """`worker start ARGS` in the background; stderr goes to a file for debugging."""
        log = open(self.cwd / f"workers-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "queuectl", "worker", "start", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
        )


# ---------------------------------------------------------------------------------------------
# backends

PG_URL = os.environ.get("QUEUECTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_state: dict[str, object] = {}


def postgres_admin_url() -> str | None:
    """The server URL if one answers and the backend exists, else None (cached)."""
    if "url" not in _pg_state:
        _pg_state["url"] = None
        try:
            import psycopg

            import queuectl.store.postgres  # noqa: F401  (backend present?)
        except ImportError as exc:
            _pg_state["why"] = f"PostgreSQL backend unavailable: {exc}"
            return None
        try:
            with psycopg.connect(PG_URL, connect_timeout=3):
                _pg_state["url"] = PG_URL
        except psycopg.Error as exc:
            _pg_state["why"] = f"no PostgreSQL server at {PG_URL}: {exc}"
    return _pg_state["url"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def pg_database(worker_id: str) -> Iterator[str]:
    """A fresh database for this test session (and xdist worker); dropped at the end."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(str(_pg_state.get("why")))
    import psycopg

    name = f"queuectl_test_{os.getpid()}_{worker_id}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _private_schema(url: str) -> Iterator[str]:
    """A schema of this test's own, selected through the URL: a worker left over from an
    earlier test can never touch this test's tables."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def db_target(request, tmp_path: Path) -> Iterator[str]:
    """A store target for each backend, empty at the start of the test."""
    if request.param == "sqlite":
        yield str(tmp_path / "queue.db")
        return
    with _private_schema(request.getfixturevalue("pg_database")) as url:
        yield url


@pytest.fixture
def pg_url(request) -> Iterator[str]:
    """A PostgreSQL store of this test's own (no SQLite twin): for multi-host tests."""
    with _private_schema(request.getfixturevalue("pg_database")) as url:
        yield url


@pytest.fixture
def ns(pg_url: str):
    """A network namespace reaching the server of pg_url through a forwarder (netkit.py)."""
    import netkit

    with netkit.namespace(pg_url) as made:
        yield made


@pytest.fixture
def sqlite_target(tmp_path: Path) -> str:
    return str(tmp_path / "queue.db")


@pytest.fixture
def store(db_target: str):
    opened = open_store(db_target)
    yield opened
    opened.close()


@pytest.fixture
def timed(db_target: str):
    """A store of each backend with a clock the test can move forward (storekit.Timed)."""
    from storekit import FakeClock, Timed  # storekit imports this module

    clock = FakeClock()
    opened = open_store(db_target, clock=clock)
    supported = opened.now() == clock.time
    yield Timed(opened, clock if supported else None)
    opened.close()


@pytest.fixture
def cli(db_target: str, tmp_path: Path) -> CLI:
    return CLI(db_target, tmp_path)


@pytest.fixture
def pools():
    """Worker pools a test starts; every one of them (supervisor, workers, commands) is killed
    at the end, pass or fail. Request it after `cli`, so it is torn down first."""
    from workerkit import pool_cleanup  # workerkit imports this module

    with pool_cleanup() as started:
        yield started


@pytest.fixture
def sqlite_cli(sqlite_target: str, tmp_path: Path) -> CLI:
    return CLI(sqlite_target, tmp_path)


def pytest_addoption(parser):
    parser.addoption(
        "--soak",
        action="store_true",
        help="also run the long tests marked slow (QUEUECTL_SOAK=N does too)",
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only with --soak or QUEUECTL_SOAK set."""
    if config.getoption("--soak") or os.environ.get("QUEUECTL_SOAK"):
        return
    skip = pytest.mark.skip(reason="long test: run with --soak or QUEUECTL_SOAK=N")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when PostgreSQL or network-partition tests were skipped: a green run must
    not hide it."""
    skipped = terminalreporter.stats.get("skipped", [])
    for word, title in (
        ("PostgreSQL", "PostgreSQL TESTS WERE SKIPPED"),
        ("network namespace", "NETWORK PARTITION TESTS WERE SKIPPED"),
    ):
        reasons = {str(report.longrepr[-1]) for report in skipped if word in str(report.longrepr)}
        if reasons:
            terminalreporter.write_sep("!", title, red=True, bold=True)
            for reason in sorted(reasons):
                terminalreporter.write_line(reason)
