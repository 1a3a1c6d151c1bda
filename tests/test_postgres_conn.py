"""The PostgreSQL store's connections: passwords never in a message, and no driver noise on
stderr.

Against the shared test server, in a schema of the test's own (skipped, loudly, without one).
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from conftest import CLI, _private_schema

from queuectl.models import build_spec
from queuectl.store import open_store
from queuectl.store.postgres_messages import mask_password, scrub

pytestmark = pytest.mark.postgres

DEFAULTS = {"max-retries": 3, "job-timeout": 300}


@pytest.fixture
def pg_url(request) -> str:
    with _private_schema(request.getfixturevalue("pg_database")) as url:
        yield url


def specs(count: int) -> list:
    return [build_spec({"command": "true"}, DEFAULTS) for _ in range(count)]


def with_host(url: str, host_port: str) -> str:
    """The same URL with another host:port (the test server's URL has no password)."""
    scheme, rest = url.split("://", 1)
    userinfo, _, after = rest.partition("@")
    return f"{scheme}://{userinfo}@{host_port}/{after.split('/', 1)[1]}"


# ---------------------------------------------------------------------------------------------
# passwords


# (URL, text that must never be shown, text the message must hold to be useful)
BAD_URLS = [
    ("postgresql://u:S3cretPw@[]/db", "S3cretPw", "IPv6 host address may not be empty"),
    ("postgresql://u:S3cretPw@[::1:5432/db", "S3cretPw", 'matching "]"'),
    ("postgresql://u:S3cr%zzPw@host/db", "S3cr%zzPw", "percent-encoded"),
    ("postgresql://u@[]/db?password=S3cretPw", "S3cretPw", "IPv6 host address may not be empty"),
    ("postgresql://u@[]/db?sslmode=require&password=S3cret%50w", "S3cret", "IPv6 host"),
    ("postgresql://u:S3c?retPw@[]/db", "retPw", "IPv6 host address may not be empty"),
    # An unescaped @ in the password: libpq takes the rest for the host name and quotes it.
    ("postgresql://u:S3c@retPw@127.0.0.1:1/db", "retPw", "cannot connect"),
    ("postgresql://u:S3cretPw@127.0.0.1/db?connect_timeout=abc", "S3cretPw", "connect_timeout"),
    (
        "postgresql://u:S3cretPw@127.0.0.1/db?bogus=1",
        "S3cretPw",
        'invalid URI query parameter: "bogus"',
    ),
]


@pytest.mark.parametrize(("url", "secret", "useful"), BAD_URLS)
def test_a_password_never_appears_in_an_error_of_a_malformed_url(url, secret, useful, tmp_path):
    result = CLI(url, tmp_path)("status")
    assert result.returncode == 1, result
    assert secret not in result.stdout + result.stderr, result.stderr
    assert useful in result.stderr, result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "u:***@" in result.stderr or "password=***" in result.stderr, result.stderr


def test_status_shows_the_store_without_its_password(pg_url, tmp_path):
    database = pg_url.split("://", 1)[1].split("@", 1)[1]
    url = f"postgresql://postgres:S3cretPw@{database}&password=S3cretPw"
    result = CLI(url, tmp_path)("status")
    assert result.returncode == 0, result.stderr
    assert "S3cretPw" not in result.stdout + result.stderr
    assert "postgres:***@" in result.stdout and "password=***" in result.stdout


def test_scrub_masks_every_form_of_the_password():
    url = "postgresql://u:p%40ss@w0rd@host/db?password=Other"
    masked = mask_password(url)
    assert masked == "postgresql://u:***@host/db?password=***"
    text = f'bad "{url}" p@ss@w0rd p%40ss w0rd Other, host "w0rd@host"'
    cleaned = scrub(text, url, masked)
    for secret in ("p@ss", "p%40ss", "w0rd", "Other"):
        assert secret not in cleaned, cleaned
    assert masked in cleaned


# ---------------------------------------------------------------------------------------------
# driver noise


def slow_inserts(url: str, seconds_per_row: float) -> None:
    """Every job insert of the test's schema sleeps this long (a slow server, on demand)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({seconds_per_row}); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE OR REPLACE TRIGGER slow_insert BEFORE INSERT ON queuectl_jobs "
            "FOR EACH ROW EXECUTE FUNCTION slow_insert()"
        )


def test_connections_terminated_during_a_bulk_enqueue_print_one_clear_error(pg_url, tmp_path):
    import psycopg

    open_store(pg_url).close()  # the tables, for the trigger
    slow_inserts(pg_url, 0.001)  # a COPY of 3000 jobs takes about 3 s
    app = f"qc-noise-{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}&application_name={app}"
    killed = []
    done = threading.Event()

    def terminate_copies() -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            while not done.is_set():
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s AND query LIKE '%%COPY queuectl_jobs%%'",
                    (app,),
                ).fetchone()
                killed.append(row[0])
                time.sleep(0.05)

    killer = threading.Thread(target=terminate_copies)
    killer.start()
    try:
        # Rows big enough that the client is still writing when its connection goes: the
        # COPY then fails inside psycopg's block, whose cleanup used to log the noise.
        lines = f'{{"command": "true #{"x" * 2000}"}}\n' * 3000
        result = CLI(url, tmp_path)(
            "enqueue", "-", input=lines, env={"QUEUECTL_BUSY_TIMEOUT": "1.5"}
        )
    finally:
        done.set()
        killer.join()
    assert sum(killed) >= 1
    assert result.returncode == 1
    assert "error ignored" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: lost the connection to PostgreSQL"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
