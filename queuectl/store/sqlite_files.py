"""The SQLite store's file on disk: private creation, identity, and a deleted store's leftovers.

Kept apart from sqlite.py, which is about the queue's SQL; this is about files and processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from ..errors import StoreError

OWNER_ONLY = 0o600


def create_owner_only(path: str) -> None:
    """Create the store file with mode 0600 unless it exists.

    SQLite gives the -wal and -shm files the mode of the database file, so creating the file
    ourselves keeps all three private (commands and output hold secrets)."""
    if os.path.exists(path):
        return
    with _folder_lock(os.path.dirname(path)):
        if os.path.exists(path):
            return  # another process created it meanwhile
        _remove_orphans(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreError(f"cannot create store {path}: {exc.strerror}") from None
        os.close(fd)


def _remove_orphans(path: str) -> None:
    """A -wal or -shm file without its store belongs to a store that was deleted: SQLite would
    read that store's pages into the new one. Remove them, unless a process (a worker started
    before the deletion) still uses them."""
    wal, shm = path + "-wal", path + "-shm"
    if not (os.path.exists(wal) or os.path.exists(shm)):
        return
    if _shm_in_use(shm):
        raise StoreError(
            f"store {path} was deleted while processes still use it (its -wal and -shm "
            "files are open); stop them (workers notice within a heartbeat), then try again"
        )
    for leftover in (wal, shm):
        try:
            os.unlink(leftover)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot remove the leftover {leftover}: {exc.strerror}") from None


def io_error_cause(path: str) -> str:
    try:
        disk = os.statvfs(os.path.dirname(path))
        if disk.f_bavail * disk.f_frsize < 65536:
            return "the disk is full"
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    return (
        "a write failed: check free space, file-size limits (ulimit -f) and that the disk is "
        "writable and healthy"
    )


def file_identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


@contextmanager
def _folder_lock(folder: str) -> Iterator[None]:
    """Serialise store creation in a folder between processes (POSIX; elsewhere a no-op)."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# Every SQLite connection to a WAL store holds a shared lock on this byte of the -shm file
# (the unix VFS's "DMS" lock, UNIX_SHM_DMS) for as long as it is open.
SHM_DMS_BYTE = 128


def _shm_in_use(shm: str) -> bool:
    """Whether any process has this -shm file open through SQLite (POSIX record locks)."""
    try:
        import fcntl
    except ImportError:
        return False  # Windows: open files cannot be deleted there in the first place
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume the worst
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SHM_DMS_BYTE)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False
