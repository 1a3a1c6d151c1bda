"""The SQLite store's footing: opening and migrating the file, transactions, waiting out locks,
and turning driver errors into StoreError with a message a user can act on.

Why a module of its own: sqlite.py then reads as the queue's operations, each one transaction
of named statements; what every operation stands on, and changes for other reasons (SQLite
versions, lock waits, a store file deleted or replaced under a running worker), lives here.
`SQLiteStore` (sqlite.py) is the only subclass.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import StoreBusy, StoreError
from . import sqlite_sql as sql
from .sqlite_files import create_owner_only, file_identity, io_error_cause
from .wakeup import FifoWakeup, wake_dir_for

MIN_SQLITE = (3, 35, 0)
# Waiting for a lock: SQLite's own busy handler sleeps at least a millisecond per try, while a
# claim holds the write lock for tens of microseconds; we retry ourselves, starting far shorter.
FIRST_BUSY_PAUSE = 20e-6
LAST_BUSY_PAUSE = 0.002


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def translate(method: Callable) -> Callable:
    """Retry while the store is locked (up to the busy timeout), then turn driver errors into
    StoreError with a message a user can act on.

    Retrying a whole method is safe: every method is one transaction, rolled back on error."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStoreBase, *args, **kwargs):
        deadline = None
        pause = FIRST_BUSY_PAUSE
        while True:
            try:
                if self._conn is None:
                    self._reopen()  # the file was deleted or replaced under us (see heartbeat)
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise self._store_error(exc) from None
                now = time.monotonic()
                deadline = deadline or now + self._busy_timeout
                if now >= deadline:
                    raise self._store_error(exc) from None
            time.sleep(pause)
            pause = min(pause * 2, LAST_BUSY_PAUSE)

    return wrapper


class SQLiteStoreBase:
    """The connection and its transactions; the operations are SQLiteStore's (sqlite.py)."""

    def __init__(
        self,
        path: str | os.PathLike,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
        create_parent: bool = False,
        synchronous: str = "NORMAL",
    ) -> None:
        # Plain strings, not pathlib: `enqueue` runs in shell loops and pathlib costs 2 ms to
        # import; log_dir (for workers, show and logs) is a Path, made when asked for.
        self.path = os.path.abspath(path)
        self.description = self.path
        self.target = self.path  # what a worker process passes to open_store
        self._busy_timeout = busy_timeout
        self._clock = clock or time.time
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._conn = self._connect(create_parent, synchronous)
        # Which file we have open, to notice when the path names another one (or none).
        self._identity = file_identity(self.path)
        # Claims made through the current connection; those made through a connection to a
        # file that was since deleted or replaced are stale: they no longer hold anything.
        self._open_claims: set[tuple] = set()
        self._stale_claims: set[tuple] = set()
        self._worker_identity: dict[str, tuple[str, int, float]] = {}  # host, pid, started
        self._wake_dir = wake_dir_for(self.path)
        self._wakeup: FifoWakeup | None = None
        self._wakeup_tried = False

    # -- opening ---------------------------------------------------------------------------

    def _connect(self, create_parent: bool, synchronous: str) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: queuectl needs 3.35 or newer "
                "(for UPDATE … RETURNING); use a Python built with a newer SQLite"
            )
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            if not create_parent:
                raise StoreError(f"cannot open store {self.path}: folder {parent} does not exist")
            try:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create folder {parent}: {exc.strerror}") from None
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open store {self.path}: it is a folder")
        self._create_owner_only()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=0,  # lock waits happen in translate
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._store_error(exc) from None
        self._conn = conn
        self._set_synchronous(synchronous)
        self._migrate()
        return conn

    @translate
    def _set_synchronous(self, synchronous: str) -> None:
        # This pragma reads the schema, so it can meet a lock (another process recovering the
        # WAL as it opens the store): wait for it like for any lock, do not fail at once.
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")

    def _create_owner_only(self) -> None:
        create_owner_only(self.path)

    @translate
    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(sql.MIGRATIONS):
            return
        if version == 0:
            self._refuse_foreign_database(self._conn)  # before WAL mode changes the file
            # Outside a transaction by necessity; persistent once set.
            self._conn.execute("PRAGMA journal_mode = WAL")
        with self._write() as conn:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._refuse_foreign_database(conn)
            for number in range(version, len(sql.MIGRATIONS)):
                for statement in sql.MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(sql.MIGRATIONS)}")

    def _refuse_foreign_database(self, conn: sqlite3.Connection) -> None:
        """A file with tables but no queuectl schema version belongs to something else (the
        first migration sets the version in the transaction that creates the tables): say so
        rather than add queuectl's tables to it."""
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(
                f"{self.path} is an SQLite database of another program, not a queuectl store; "
                "queuectl leaves it unchanged: choose another file"
            )

    def _store_error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        where = f"store {self.path}"
        if "locked" in text or "busy" in text:
            return StoreBusy(
                f"{where} is locked by another process; gave up after {self._busy_timeout:g}s"
            )
        if "readonly" in text or "read-only" in text:
            # SQLite gives -wal and -shm the store file's mode when it creates them: after a
            # chmod of a read-only store, they may still be read-only.
            return StoreError(
                f"{where} is read-only: check the permissions of the file, of its -wal and -shm "
                "files and of the folder"
            )
        if "not a database" in text or "malformed" in text:
            return StoreError(f"{where} is corrupt or not a queuectl store ({text})")
        if "unable to open" in text:
            return StoreError(f"cannot open {where}: check that it exists and is readable")
        if "full" in text:
            return StoreError(f"{where}: the disk is full ({text}); nothing was written")
        if "disk I/O error" in text:
            # A failed read or write: say which, and what usually causes it.
            name = getattr(exc, "sqlite_errorname", "") or "SQLITE_IOERR"
            return StoreError(f"{where}: disk I/O error ({name}): {io_error_cause(self.path)}")
        return StoreError(f"{where}: {text}")

    @property
    def log_dir(self):  # -> pathlib.Path
        from pathlib import Path

        return Path(os.path.dirname(self.path), "logs")

    def close(self) -> None:
        if self._wakeup is not None:
            self._wakeup.close()
        if self._conn is not None:
            self._conn.close()

    def _check_file(self) -> None:
        """If the path no longer names the file we have open (the store was deleted or replaced
        while we ran), let go of the old file, whose jobs are no longer anyone's, and reopen."""
        if file_identity(self.path) == self._identity:
            return
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None
        self._wakeup_tried = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._stale_claims |= self._open_claims
        self._open_claims.clear()
        self._reopen()

    def _reopen(self) -> None:
        if not os.path.exists(self.path):
            raise StoreError(
                f"store {self.path} was deleted while in use; waiting for a store there again"
            )
        self._conn = self._connect(False, self._synchronous)
        self._identity = file_identity(self.path)
        raise StoreError(
            f"store {self.path} was deleted or replaced while in use: now using the file there"
        )

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def now(self) -> float:
        return self._clock()
