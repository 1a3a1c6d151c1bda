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
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import StoreBusy, StoreError
from ..models import OWNER_ONLY_FOLDER
from . import sqlite_schema as schema
from . import sqlite_sql as sql
from .sqlite_files import (
    READ_ONLY_FS,
    create_owner_only,
    file_identity,
    io_error_cause,
    lstat_or_none,
    mend_modes,
    on_read_only_fs,
    read_only_cause,
    read_only_uri,
    stat_or_none,
)
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
        reads_only: bool = False,
    ) -> None:
        # Plain strings, not pathlib: `enqueue` runs in shell loops and pathlib costs 2 ms to
        # import; log_dir (for workers, show and logs) is a Path, made when asked for.
        self.path = os.path.abspath(path)
        self.description = self.path
        self.target = self.path  # what a worker process passes to open_store
        self._busy_timeout = busy_timeout
        self._clock = clock or time.time
        self._synchronous = synchronous
        self._reads_only = reads_only
        # Which file we have open, to notice when the path names another one (or none).
        self._identity: tuple[int, int] | None = None
        self._conn: sqlite3.Connection | None = None
        self._conn = self._connect(create_parent, synchronous)
        # Claims made through the current connection; those made through a connection to a
        # file that was since deleted or replaced are stale: they no longer hold anything.
        self._open_claims: set[tuple] = set()
        self._stale_claims: set[tuple] = set()
        self._worker_identity: dict[str, dict] = {}  # see operations.Operations
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
        # One stat of each file serves every check below: `enqueue` runs in shell loops.
        info = stat_or_none(self.path)
        wal = shm = None
        if info is None:
            parent = os.path.dirname(self.path)
            if not os.path.isdir(parent):
                if not create_parent:
                    raise StoreError(
                        f"cannot open store {self.path}: folder {parent} does not exist"
                    )
                try:
                    os.makedirs(parent, mode=OWNER_ONLY_FOLDER, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create folder {parent}: {exc.strerror}") from None
            self._create_owner_only()
            info = stat_or_none(self.path)
        elif stat.S_ISDIR(info.st_mode):
            raise StoreError(f"cannot open store {self.path}: it is a folder")
        else:
            wal, shm = lstat_or_none(self.path + "-wal"), lstat_or_none(self.path + "-shm")
            mend_modes(self.path, info, wal, shm)
            if shm is not None and not self._reads_only and on_read_only_fs(self.path):
                # SQLite reads a store on read-only media through an existing -shm without
                # complaint, and only a write would fail: say so now, before `worker start`
                # starts workers that could only wait.
                raise StoreError(f"store {self.path} {read_only_cause(self.path)}")
        # Taken before SQLite opens the file: a file swapped in meanwhile is then noticed.
        self._identity = None if info is None else (info.st_dev, info.st_ino)
        try:
            return self._open(self.path, synchronous)
        except StoreError:
            # With a -shm there, SQLite needed none of ours: the error is about something else.
            if not self._reads_only or shm is not None or not on_read_only_fs(self.path):
                raise
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return self._open_read_only(synchronous, wal)

    def _open_read_only(self, synchronous: str, wal: os.stat_result | None) -> sqlite3.Connection:
        """A store on a read-only file system, for a command that only reads.

        SQLite reads a WAL store only through its -shm file, which it cannot create there
        (the plain open above just failed for that): unless the store is opened immutable,
        which reads the main file alone, with no -shm and no locks. A -wal file that holds
        something may hold committed jobs that reading the main file alone would miss."""
        if wal is not None and wal.st_size > 0:
            raise StoreError(
                f"store {self.path} {READ_ONLY_FS}, and its -wal file holds changes that SQLite "
                "can read there only with the store's -shm file, which is missing: copy the "
                "store and its -wal file to a writable folder to read them"
            )
        return self._open(read_only_uri(self.path), synchronous, uri=True)

    def _open(self, database: str, synchronous: str, uri: bool = False) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                database,
                timeout=0,  # lock waits happen in translate
                isolation_level=None,
                check_same_thread=False,
                uri=uri,
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
        self._conn.execute(sql.set_synchronous(synchronous))

    def _create_owner_only(self) -> None:
        create_owner_only(self.path)

    @translate
    def _migrate(self) -> None:
        version = self._conn.execute(sql.SCHEMA_VERSION).fetchone()[0]
        if version >= len(schema.MIGRATIONS):
            return
        if version == 0:
            self._refuse_foreign_database(self._conn)  # before WAL mode changes the file
            # Outside a transaction by necessity; persistent once set.
            self._conn.execute(sql.JOURNAL_WAL)
        with self._write() as conn:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute(sql.SCHEMA_VERSION).fetchone()[0]
            if version == 0:
                self._refuse_foreign_database(conn)
            for number in range(version, len(schema.MIGRATIONS)):
                for statement in schema.statements(schema.MIGRATIONS[number]):
                    conn.execute(statement)
            conn.execute(sql.set_schema_version(len(schema.MIGRATIONS)))

    def _refuse_foreign_database(self, conn: sqlite3.Connection) -> None:
        """A file with tables but no queuectl schema version belongs to something else (the
        first migration sets the version in the transaction that creates the tables): say so
        rather than add queuectl's tables to it."""
        if conn.execute(sql.COUNT_OBJECTS).fetchone()[0]:
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
            cause = read_only_cause(self.path)
            if cause is not None:
                return StoreError(f"{where} {cause}")
            return StoreError(
                f"{where} is read-only: check the permissions of the file, of its -wal and -shm "
                "files and of the folder"
            )
        if "not a database" in text or "malformed" in text:
            return StoreError(f"{where} is corrupt or not a queuectl store ({text})")
        if "unable to open" in text:
            # Opening a WAL store also opens (or creates) its -wal and -shm files: one that
            # cannot be written fails the open, although the store file itself is readable.
            cause = read_only_cause(self.path)
            if cause is not None:
                return StoreError(f"{where} {cause}")
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
        raise StoreError(
            f"store {self.path} was deleted or replaced while in use: now using the file there"
        )

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute(sql.BEGIN_WRITE)
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute(sql.ROLLBACK)
            raise
        conn.execute(sql.COMMIT)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute(sql.BEGIN_READ)
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute(sql.COMMIT)

    def now(self) -> float:
        return self._clock()
