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

A network that goes silent (packets dropped, no reset) must not hold a call forever (SPEC §5).
Every connection carries limits (postgres_limits.py): the kernel gives up on a peer that stops
acknowledging (tcp_user_timeout, keepalives), the server on statements and locks that take
too long, and a watchdog cuts a call's connection at its cut-off (generous by default; exact
with `call_timeout` or a `deadline`). Driver messages pass through `scrub` first
(postgres_messages.py): they quote URLs, and URLs may hold passwords.
"""

from __future__ import annotations

import contextlib
import math
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

from ..errors import StoreBusy, StoreError, StoreReadOnly
from . import postgres_schema as schema
from . import postgres_sql as sql
from .operations import RETRY
from .postgres_limits import MIN_CONNECT_TIMEOUT, Limits, Watchdog
from .postgres_messages import mask_password, message, scrub

INSTALL_HINT = (
    "PostgreSQL support needs psycopg 3: from the queuectl checkout run pip install '.[postgres]'"
)


class PostgresStoreBase:
    """The connection and its transactions; the operations are PostgresStore's (postgres.py).

    Options, beside the URL:

    busy_timeout: seconds a call waits for a locked row, and keeps trying to get a lost
        connection back, before it fails (StoreBusy / StoreError). The CLI's is 30 s (SPEC §5).
    call_timeout: None, or the most seconds one call (one store method) may take whatever the
        server or the network does: a lock, a slow statement, a silent network, reconnecting.
        Past it the call fails with StoreError (StoreBusy when the server reported a lock or a
        slow statement, which it does first, at half and 0.8 of it); a connection left
        blocked is cut and the next call opens a fresh one. It also tightens the network limits
        (see `Limits`). For callers that must hear back in time, such as a worker's heartbeat
        during a partition (a few seconds: 3 is a good value; under 2 s, connecting cannot be
        bounded as tightly, libpq counts whole seconds). It bounds every call, bulk adds too:
        leave it None for big `add`s. None (the default): the limits of `Limits.choose`, in
        which a silent network is given up after about NETWORK_TIMEOUT per try and a call is
        cut after 2 * busy_timeout + NETWORK_TIMEOUT (70 s for the CLI) at the latest.
    deadline: None, or a time.monotonic() value no call waits past (the CLI's commands with a
        --timeout of their own, SPEC §5); calls at or after it fail at once. Settable later
        as the `deadline` attribute.
    """

    def __init__(
        self,
        url: str,
        busy_timeout: float = 30.0,
        call_timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        if psycopg is None:
            raise StoreError(INSTALL_HINT)
        if call_timeout is not None and not call_timeout > 0:
            raise ValueError(f"call_timeout must be a positive number of seconds: {call_timeout}")
        self.target = url  # what a worker process passes to open_store
        self.description = mask_password(url)
        self.deadline = deadline
        self._busy_timeout = busy_timeout
        self._call_timeout = call_timeout
        self._limits = Limits.choose(busy_timeout, call_timeout)
        self._lock = threading.RLock()
        self._watchdog = Watchdog()
        self._conn: psycopg.Connection | None = None
        self._listener: psycopg.Connection | None = None
        self._worker_identity: dict[str, dict] = {}
        self._log_dir = None
        self._conninfo, self._session = self._build_conninfo(url)
        start = time.monotonic()
        cut_at = self._cut_at(start)
        if start >= cut_at:
            raise self._no_answer(start, cut_at, None)
        cut = None
        try:
            self._conn = self._connect(cut_at)
            with self._watchdog.watch(self._conn, cut_at) as cut:
                self._store_id = self._migrate(self._conn)
        except psycopg.Error as exc:
            if self._conn is None and isinstance(exc, psycopg.OperationalError):
                error = StoreError(
                    f"cannot connect to PostgreSQL at {self.description}: {self._text(exc)}"
                )
            elif cut is not None and cut.fired:
                error = self._no_answer(start, cut_at, None)
            else:
                error = self._error(exc)
            self.close()
            raise error from None

    # -- opening ---------------------------------------------------------------------------

    def _build_conninfo(self, url: str) -> tuple[str, list[str]]:
        """The conninfo to connect with (the URL's own settings win over ours), and the
        session limits to set on each connection (name, value, …; those the URL's options
        set are left out). Also notes the connect timeout in effect."""
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(f"bad PostgreSQL URL {self.description}: {self._text(exc)}") from None
        extra = {k: v for k, v in self._limits.connection_params().items() if k not in given}
        # Settings the URL's options (`-c statement_timeout=…`) choose are left to them.
        options = str(given.get("options", ""))
        session: list[str] = []
        for name, value in self._limits.session_values():
            if name not in options:
                session += [name, value]
        try:
            self._connect_timeout = float(given.get("connect_timeout") or self._limits.network)
        except ValueError:  # psycopg says so when connecting
            self._connect_timeout = self._limits.network
        try:
            return make_conninfo(url, **extra), session
        except psycopg.Error as exc:
            raise StoreError(f"bad PostgreSQL URL {self.description}: {self._text(exc)}") from None

    def _cut_at(self, start: float, seconds: float | None = None) -> float:
        """When a call started at `start` is cut: `Limits.call` later (or `seconds` later, a
        bulk add's own bound, unless the caller chose call_timeout), never past the deadline."""
        if seconds is None or self._call_timeout is not None:
            seconds = self._limits.call
        end = start + seconds
        return end if self.deadline is None else min(end, self.deadline)

    def _connect(self, cut_at: float) -> psycopg.Connection:
        """A new connection with the session limits set; bounded by `cut_at` as closely as
        libpq's whole seconds allow."""
        timeout = {}
        left = math.ceil(cut_at - time.monotonic())
        if left < self._connect_timeout:
            timeout["connect_timeout"] = max(MIN_CONNECT_TIMEOUT, left)
        conn = psycopg.connect(self._conninfo, autocommit=True, **timeout)
        try:
            if self._session:
                with self._watchdog.watch(conn, cut_at):
                    conn.execute(sql.set_session(len(self._session) // 2), self._session)
        except BaseException:
            close_quietly(conn)
            raise
        return conn

    def _migrate(self, conn: psycopg.Connection) -> str:
        """Apply pending migrations (once, whoever comes first); returns the store's id."""
        if conn.execute(sql.SCHEMA_TABLE_EXISTS).fetchone()[0]:
            row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            if row is not None and row[0] >= len(schema.MIGRATIONS):
                return row[1]
        with conn.transaction():
            conn.execute(sql.NO_STATEMENT_TIMEOUT)  # a migration may rewrite a big table
            conn.execute(sql.LOCK_MIGRATIONS)
            conn.execute(sql.CREATE_SCHEMA_TABLE)
            row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            if row is None:
                conn.execute(sql.INSERT_SCHEMA, (os.urandom(8).hex(),))
                row = conn.execute(sql.SELECT_SCHEMA).fetchone()
            version, store_id = row
            for number in range(version, len(schema.MIGRATIONS)):
                conn.execute(schema.MIGRATIONS[number])
            if version < len(schema.MIGRATIONS):
                conn.execute(sql.SET_SCHEMA_VERSION, (len(schema.MIGRATIONS),))
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

    def _run(self, body: Callable, probe=None, single: bool = False, budget=None, cut=None):
        """Run body(cursor) as one transaction (`single`: one autocommit statement), reconnecting
        after a lost connection; see the module docstring for when `probe` is asked first.
        Retries end after `budget` (default busy_timeout); the whole call ends at its cut-off
        (`_cut_at`; `cut`: seconds instead of Limits.call, for a bulk add)."""
        start = time.monotonic()
        cut_at = self._cut_at(start, cut)
        retry_until = min(cut_at, start + (self._busy_timeout if budget is None else budget))
        delay = 0.05
        unsure = False  # a COMMIT went out and its answer never came back
        while True:
            sent = False
            watch = None
            if time.monotonic() >= cut_at:
                raise self._no_answer(start, cut_at, None)
            try:
                with self._lock:
                    # Connecting is bounded by the retry budget: a silent server is not
                    # worth a try longer than the time left to try.
                    conn = self._connection(retry_until)
                    with self._watchdog.watch(conn, cut_at) as watch, conn.cursor() as cur:
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
                # The next try, and the next call, start on a fresh connection.
                self._drop_connection()
                unsure = unsure or sent
                now = time.monotonic()
                if watch is not None and watch.fired:
                    raise self._no_answer(start, cut_at, None) from None
                if now + delay >= cut_at:
                    raise self._no_answer(start, cut_at, exc) from None
                if now + delay > retry_until:
                    raise StoreError(
                        f"lost the connection to PostgreSQL at {self.description} and could "
                        f"not get it back: {self._text(exc)}"
                    ) from None
                time.sleep(delay)
                # Short enough that a network back from a partition is used within about a
                # second (each try to connect is bounded by connect_timeout, too).
                delay = min(delay * 2, 0.5)

    def _connection(self, cut_at: float) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = None
            self._conn = self._connect(cut_at)
        return self._conn

    def _no_answer(self, start: float, cut_at: float, exc: BaseException | None) -> StoreError:
        why = f": {self._text(exc)}" if exc is not None else ""
        return StoreError(
            f"no answer from PostgreSQL at {self.description} within the "
            f"{max(0.0, cut_at - start):.3g}s allowed (is the network or the server down?){why}"
        )

    def _text(self, exc: BaseException) -> str:
        """The driver's message on one line, without any password the URL holds."""
        return scrub(message(exc), self.target, self.description)

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
                f"{where} is locked by another session; gave up after {self._limits.lock:g}s"
            )
        if isinstance(exc, pg_errors.QueryCanceled):  # the server's statement_timeout, or admin
            return StoreBusy(f"{where}: a statement was canceled ({text}); is the server busy?")
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreReadOnly(f"{where} is read-only (a standby server?): {text}")
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreReadOnly(f"{where}: permission denied: {text}")
        if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.UndefinedColumn)):
            return StoreError(f"{where} is not a queuectl store or its tables were changed: {text}")
        if isinstance(exc, pg_errors.DiskFull):
            return StoreError(f"{where}: the server's disk is full; nothing was written")
        return StoreError(f"{where}: {text}")

    def now(self) -> float:
        return self._value(sql.SERVER_TIME)


def close_quietly(conn: psycopg.Connection | None) -> None:
    # Closing a broken connection can fail; it is gone either way.
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
