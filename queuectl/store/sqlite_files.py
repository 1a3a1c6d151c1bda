"""The SQLite store's file on disk: private creation and keeping it private, identity, why it
cannot be written, and a deleted store's leftovers.

Kept apart from sqlite.py, which is about the queue's SQL; this is about files and processes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from ..errors import StoreError
from ..models import OWNER_ONLY

GROUP_AND_OTHER = 0o077


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


def stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def lstat_or_none(path: str) -> os.stat_result | None:
    """Like stat_or_none, but of a symbolic link itself: SQLite never follows one to a -wal or
    -shm file, and neither does a chmod of ours."""
    try:
        return os.lstat(path)
    except OSError:
        return None


def mend_modes(
    path: str,
    info: os.stat_result,
    wal: os.stat_result | None,
    shm: os.stat_result | None,
) -> None:
    """Mend the modes of a store's files where this user owns them, as a writable open finds
    them: a store file, -wal or -shm that group or others can use (an older queuectl, a store
    made by hand) becomes 0600 again, and such a logs folder 0700.

    The -wal and -shm also get 0600 when they are not writable: SQLite gives them the store
    file's mode when it creates them, so a reader of a store chmod-ed 0444 leaves them 0444, and
    they would keep the store read-only after it is chmod-ed back. A store file that is not
    writable by its owner was made read-only on purpose and is left as it is, with its -wal and
    -shm; files of other users are never touched; a chmod that fails (a read-only file system)
    is no error: the store is then used as it is. `info`, `wal` and `shm` are stat results the
    caller needs anyway (`enqueue` runs in shell loops): only the logs folder is looked at here."""
    if not hasattr(os, "geteuid"):
        return  # Windows: the folder's ACLs decide (SECURITY.md)
    uid = os.geteuid()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == uid and mode & stat.S_IWUSR:
        if mode & GROUP_AND_OTHER:
            _chmod(path, mode & stat.S_IRWXU)
        for name, side in ((path + "-wal", wal), (path + "-shm", shm)):
            if _owned(side, uid, stat.S_ISREG) and stat.S_IMODE(side.st_mode) != OWNER_ONLY:
                _chmod(name, OWNER_ONLY)
    logs = os.path.join(os.path.dirname(path), "logs")
    folder = lstat_or_none(logs)
    if _owned(folder, uid, stat.S_ISDIR) and folder.st_mode & GROUP_AND_OTHER:
        _chmod(logs, stat.S_IMODE(folder.st_mode) & stat.S_IRWXU)


def _owned(info: os.stat_result | None, uid: int, is_kind: Callable[[int], bool]) -> bool:
    return info is not None and info.st_uid == uid and is_kind(info.st_mode)


def _chmod(path: str, mode: int) -> None:
    with suppress(OSError):
        os.chmod(path, mode)


def on_read_only_fs(path: str) -> bool:
    """Whether the file system holding `path` is mounted read-only (for everyone, root too)."""
    try:
        return bool(os.statvfs(os.path.dirname(path)).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


READ_ONLY_FS = "is on a read-only file system"


def read_only_cause(path: str) -> str | None:
    """Why the store at `path` cannot be written, as words that follow "store PATH", or None
    when nothing visible stops it (the error then came from elsewhere)."""
    if on_read_only_fs(path):
        return f"{READ_ONLY_FS}: it can be read (status, list, show, logs) but not changed"
    names = (
        (path, "the store file"),
        (path + "-wal", "its -wal file"),
        (path + "-shm", "its -shm file"),
    )
    for name, what in names:
        try:
            info = os.stat(name)
        except OSError:
            continue
        if not os.access(name, os.W_OK):
            owner = ""
            if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
                owner = f", owned by uid {info.st_uid}"
            mode = stat.S_IMODE(info.st_mode)
            return f"is read-only: {what} cannot be written by this user (mode {mode:04o}{owner})"
    folder = os.path.dirname(path)
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"is read-only: its folder {folder} cannot be written by this user, and SQLite "
            "keeps the store's -wal and -shm files there"
        )
    return None


def read_only_uri(path: str) -> str:
    """An SQLite URI that reads the store without writing anything beside it, not even -shm.

    `immutable=1` also skips locking and change detection: safe only when nothing can change
    the file while we read, which a read-only file system guarantees. (A read-only bind mount
    of a folder that others write through another path does not; but the caller uses this
    only when there is no -shm file, so no process had the store open, and its read is short.)"""
    from urllib.parse import quote  # only on read-only media: not on enqueue's path

    return f"file:{quote(path)}?mode=ro&immutable=1"


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
