"""The PostgreSQL store's footing: connecting, migrating, running each operation as one
transaction through a lost connection, and turning driver errors into StoreError.

Why a module of its own: postgres.py then reads as the queue's operations, each a body (and,
where it is not idempotent, a probe) handed to `_run`; reconnecting, retrying and error
messages change for other reasons (drivers, servers, networks) and live here.
`PostgresStore` (postgres.py) is the only subclass.

Connection loss (server restart, network drop) can hit at three points. While connecting, or
before the COMMIT went out, the server rolled everything back: the operation simply runs again
on a new connection. After the COMMIT (or a lone autocommit statement) went out and before its
answer came back, it may or may not have landed. Idempotent operations (heartbeat, set_run_pid,
rescue, config_set, register/unregister, request_stop, reads) just run again; the others first
ask the store whether it landed (their `probe`; postgres.py says what each one asks), so no
effect is ever applied twice.
Retries back off and give up after about `busy_timeout` (a heartbeat sooner, so the worker's
monitor keeps enforcing timeouts) with StoreError, which workers retry in their own loop and
the CLI reports in one line. Opening the store does not retry: a server that is down or a bad
URL is reported at once.

Driver messages pass through `scrub` first (postgres_messages.py): they quote URLs, and URLs
may hold passwords.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # the `postgres` extra is not installed
    psycopg = None

from ..errors import StoreBusy, StoreError
from . import postgres_sql as sql
from .postgres_messages import mask_password, message, scrub

INSTALL_HINT = (
    "PostgreSQL support needs psycopg 3: from the queuectl checkout run pip install '.[postgres]'"
)
# Connection settings we add unless the URL sets them: dead peers are noticed in ~30 s.
CONNECTION_DEFAULTS = (
    "application_name=queuectl keepalives=1 keepalives_idle=10 keepalives_interval=5 "
    "keepalives_count=3"
)
RETRY = object()  # a probe's answer: the lost transaction did not land; run it again


class PostgresStoreBase:
    """The connection and its transactions; the operations are PostgresStore's (postgres.py)."""

    def __init__(self, url: str, busy_timeout: float = 30.0) -> None:
        if psycopg is None:
            raise StoreError(INSTALL_HINT)
        self.target = url  # what a worker process passes to open_store
        self.description = mask_password(url)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._listener: psycopg.Connection | None = None
        self._worker_identity: dict[str, tuple[str, int]] = {}
        self._log_dir = None
        self._conninfo = self._build_conninfo(url)
        try:
            self._conn = self._connect()
            self._store_id = self._migrate(self._conn)
        except psycopg.Error as exc:
            if self._conn is None and isinstance(exc, psycopg.OperationalError):
                error = StoreError(
                    f"cannot connect to PostgreSQL at {self.description}: {self._text(exc)}"
                )
            else:
                error = self._error(exc)
            self.close()
            raise error from None

    # -- opening ---------------------------------------------------------------------------

    def _build_conninfo(self, url: str) -> str:
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(f"bad PostgreSQL URL {self.description}: {self._text(exc)}") from None
        extra = {k: v for k, v in conninfo_to_dict(CONNECTION_DEFAULTS).items() if k not in given}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = str(max(2, int(min(self._busy_timeout, 10))))
        return make_conninfo(url, **extra)

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        # A row lock held too long becomes StoreBusy instead of a hang (SPEC §5).
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)",
            (f"{max(1, int(self._busy_timeout * 1000))}ms",),
        )
        return conn

    def _migrate(self, conn: psycopg.Connection) -> str:
        """Apply pending migrations (once, whoever comes first); returns the store's id."""
        if conn.execute(sql.SCHEMA_TABLE_EXISTS).fetchone()[0]:
            row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            if row is not None and row[0] >= len(sql.MIGRATIONS):
                return row[1]
        with conn.transaction():
            conn.execute(sql.LOCK_MIGRATIONS)
            conn.execute(sql.CREATE_SCHEMA_TABLE)
            row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            if row is None:
                conn.execute(sql.INSERT_SCHEMA, (os.urandom(8).hex(),))
                row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            version, store_id = row
            for number in range(version, len(sql.MIGRATIONS)):
                conn.execute(sql.MIGRATIONS[number])
            if version < len(sql.MIGRATIONS):
                conn.execute(sql.SET_SCHEMA_VERSION, (len(sql.MIGRATIONS),))
        return store_id

    @property
    def log_dir(self):  # -> pathlib.Path
        """Run logs stay on the worker's host, one folder per store (run ids are per store)."""
        if self._log_dir is None:
            # Imported only when asked for: `enqueue` needs neither (start-up time).
            from pathlib import Path

            import click

            self._log_dir = Path(click.get_app_dir("queuectl"), "logs", f"pg-{self._store_id}")
        return self._log_dir

    def close(self) -> None:
        close_quietly(self._conn)
        close_quietly(self._listener)
        self._conn = self._listener = None

    # -- transactions and errors -----------------------------------------------------------

    def _run(self, body: Callable, probe=None, single: bool = False, budget=None):
        """Run body(cursor) as one transaction (`single`: one autocommit statement), reconnecting
        after a lost connection; see the module docstring for when `probe` is asked first."""
        deadline = time.monotonic() + (self._busy_timeout if budget is None else budget)
        delay = 0.05
        unsure = False  # a COMMIT went out and its answer never came back
        while True:
            sent = False
            try:
                with self._lock:
                    conn = self._connection()
                    with conn.cursor() as cur:
                        if unsure and probe is not None:
                            with conn.transaction():
                                answer = probe(cur)
                            if answer is not RETRY:
                                return answer
                        unsure = False
                        if single:
                            sent = True
                            return body(cur)
                        with conn.transaction():
                            result = body(cur)
                            sent = True
                        return result
            except UnicodeEncodeError as exc:
                raise StoreError(f"text that cannot be stored (not valid Unicode): {exc}") from None
            except psycopg.Error as exc:
                if not self._lost(exc):
                    raise self._error(exc) from None
                self._drop_connection()
                unsure = unsure or sent
                if time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"lost the connection to PostgreSQL at {self.description} and could "
                        f"not get it back: {self._text(exc)}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _lost(self, exc: psycopg.Error) -> bool:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return True
        return isinstance(exc, (pg_errors.AdminShutdown, pg_errors.CannotConnectNow))

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        close_quietly(conn)

    def _rows(self, statement: str, params: Sequence | dict = ()) -> list[tuple]:
        """One autocommit statement's rows."""
        return self._run(lambda cur: cur.execute(statement, params).fetchall(), single=True)

    def _value(self, statement: str, params: Sequence | dict = ()):
        """The first column of one autocommit statement's only row."""
        return self._run(lambda cur: cur.execute(statement, params).fetchone()[0], single=True)

    def _write(self, statement: str, params: Sequence | dict = ()) -> int:
        """One autocommit (idempotent) statement; the number of rows it changed."""
        return self._run(lambda cur: cur.execute(statement, params).rowcount, single=True)

    def _error(self, exc: BaseException) -> StoreError:
        where = f"PostgreSQL store {self.description}"
        text = self._text(exc)
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreBusy(
                f"{where} is locked by another session; gave up after {self._busy_timeout:g}s"
            )
        if isinstance(exc, pg_errors.QueryCanceled):  # the server's statement_timeout, or admin
            return StoreBusy(f"{where}: a statement was canceled ({text}); is the server busy?")
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreError(f"{where} is read-only (a standby server?): {text}")
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreError(f"{where}: permission denied: {text}")
        if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.UndefinedColumn)):
            return StoreError(f"{where} is not a queuectl store or its tables were changed: {text}")
        if isinstance(exc, pg_errors.DiskFull):
            return StoreError(f"{where}: the server's disk is full; nothing was written")
        return StoreError(f"{where}: {text}")

    def _text(self, exc: BaseException) -> str:
        """The driver's message on one line, without any password the URL holds."""
        return scrub(message(exc), self.target, self.description)

    def now(self) -> float:
        return self._value(sql.SERVER_TIME)


def close_quietly(conn: psycopg.Connection | None) -> None:
    # Closing a broken connection can fail; it is gone either way.
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
