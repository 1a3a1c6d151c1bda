"""This host's name, and whether a worker on it still runs: its process tells at once, its lease
only later.

A pool killed with `kill -9` leaves its workers' rows behind until their lease runs out (30 s by
default); `status` listed them and `worker stop` waited for them. On the worker's own host the
process table answers at once, so dead workers are left out there; on other hosts the lease is
all there is to go by (SPEC §4).

The host name (QUEUECTL_HOSTNAME or the system's) must therefore name one machine and one pid
namespace, as `cancel` already assumes when it kills a run's process group.
"""

from __future__ import annotations

import os
import sys

# Linux and most containers have /proc; macOS and the BSDs answer through kill(pid, 0).
HAVE_PROC = os.path.exists("/proc/self/stat")


def host_name() -> str:
    """This host's name as workers record it: QUEUECTL_HOSTNAME, else the system's."""
    import socket

    return os.environ.get("QUEUECTL_HOSTNAME") or socket.gethostname()


def process_alive(pid: int) -> bool | None:
    """Whether a process with this pid runs on this machine: True, False, or None where that
    cannot be told without side effects (Windows, where os.kill(pid, 0) would terminate it).

    A zombie (dead, not yet reaped by its parent) counts as gone."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return None
    if HAVE_PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        except (OSError, IndexError):
            return None
        return state not in (b"Z", b"X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but a process
    return True
