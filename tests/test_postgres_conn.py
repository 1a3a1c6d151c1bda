"""The PostgreSQL store's connections: passwords never in a message, the limits every
connection carries, a hung server cut off in time, and no driver noise on stderr.

Against the shared test server, in a schema of the test's own (skipped, loudly, without one).
Silent networks are in test_partitions.py (network namespaces); a hung server is simulated
here by a proxy that accepts and then forwards nothing (its kernel still acknowledges, as a
stopped server's does).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid

import pytest
from conftest import CLI
from storekit import spec

from queuectl.errors import StoreBusy, StoreError
from queuectl.store import open_store
from queuectl.store.postgres_messages import mask_password, scrub

pytestmark = pytest.mark.postgres


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
# the limits every connection carries


def show(store, name: str) -> str:
    return store._run(lambda cur: cur.execute(f"SHOW {name}").fetchone()[0], single=True)


def test_every_connection_has_network_and_server_limits(pg_url):
    store = open_store(pg_url)
    try:
        params = store._conn.info.get_parameters()
        assert params["tcp_user_timeout"] == "10000" and params["keepalives"] == "1"
        assert params["connect_timeout"] == "10"
        assert show(store, "lock_timeout") == "30s"  # the CLI waits 30 s for a lock (SPEC §5)
        assert show(store, "statement_timeout") == "1min"
        assert show(store, "idle_in_transaction_session_timeout") == "10s"
    finally:
        store.close()
    tight = open_store(pg_url, call_timeout=3)
    try:
        params = tight._conn.info.get_parameters()
        assert params["tcp_user_timeout"] == "3000" and params["connect_timeout"] == "3"
        assert show(tight, "lock_timeout") == "1500ms"
        assert show(tight, "statement_timeout") == "2400ms"
    finally:
        tight.close()


def test_settings_in_the_url_win(pg_url):
    url = pg_url.replace("options=", "options=-cstatement_timeout%3D12345%20") + (
        "&tcp_user_timeout=4321"
    )
    store = open_store(url)
    try:
        assert store._conn.info.get_parameters()["tcp_user_timeout"] == "4321"
        assert show(store, "statement_timeout") == "12345ms"
        assert show(store, "lock_timeout") == "30s"
    finally:
        store.close()


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


def test_a_bulk_add_is_not_cut_by_the_statement_timeout_of_short_statements(pg_url, monkeypatch):
    monkeypatch.setenv("QUEUECTL_BUSY_TIMEOUT", "0.5")  # statement_timeout 1 s
    store = open_store(pg_url)
    try:
        slow_inserts(pg_url, 0.002)
        start = time.monotonic()
        assert (
            len(store.add([spec(command="true") for _ in range(1000)])) == 1000
        )  # about 2 s of COPY
        assert time.monotonic() - start > 1.0
        # A single statement that long is a stuck server: reported, the connection kept.
        slow_inserts(pg_url, 1.5)
        with pytest.raises(StoreBusy, match="statement was canceled"):
            store.add([spec(command="true")])
        assert store.counts()["pending"] == 1000
    finally:
        store.close()


def test_with_call_timeout_a_held_lock_is_reported_before_the_deadline(pg_url):
    import psycopg

    store = open_store(pg_url, call_timeout=2)
    try:
        store.register_worker("w1", "host-a", 1)
        with psycopg.connect(pg_url) as locker:
            locker.execute("SELECT 1 FROM queuectl_workers WHERE id = 'w1' FOR UPDATE")
            start = time.monotonic()
            with pytest.raises(StoreBusy, match="locked by another session"):
                store.heartbeat("w1", 30, None)
            assert 0.8 < time.monotonic() - start < 1.8
        assert store.heartbeat("w1", 30, None).held
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# a hung server: its kernel acknowledges, nothing answers


class FreezingProxy:
    """A TCP proxy to the test server that can stop forwarding (and start again)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target)
                self.sockets += [client, server]
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.frozen.is_set():  # held, not lost: the kernel acknowledged it
                    time.sleep(0.02)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy(pg_url):
    from urllib.parse import urlsplit

    parts = urlsplit(pg_url)
    made = FreezingProxy((parts.hostname, parts.port or 5432))
    yield made
    made.close()


def test_a_hung_server_is_cut_off_at_call_timeout_and_the_next_call_reconnects(pg_url, proxy):
    store = open_store(with_host(pg_url, f"127.0.0.1:{proxy.port}"), call_timeout=2)
    try:
        store.now()
        proxy.frozen.set()
        start = time.monotonic()
        with pytest.raises(StoreError, match="no answer from PostgreSQL .* within the 2s allowed"):
            store.now()
        assert 1.9 < time.monotonic() - start < 2.5
        proxy.frozen.clear()
        start = time.monotonic()
        store.now()  # a fresh connection, at once
        assert time.monotonic() - start < 1.0
    finally:
        store.close()


def test_without_call_timeout_a_hung_server_is_still_cut_off(pg_url, proxy, monkeypatch):
    # The CLI's limits, shortened: statement_timeout 2 s, network 2 s, cut-off at 4 s.
    monkeypatch.setenv("QUEUECTL_BUSY_TIMEOUT", "1")
    store = open_store(with_host(pg_url, f"127.0.0.1:{proxy.port}"))
    try:
        store.now()
        proxy.frozen.set()
        start = time.monotonic()
        with pytest.raises(StoreError, match="no answer from PostgreSQL"):
            store.now()
        assert 3.5 < time.monotonic() - start < 5.0
    finally:
        proxy.frozen.clear()
        store.close()


# ---------------------------------------------------------------------------------------------
# driver noise


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
