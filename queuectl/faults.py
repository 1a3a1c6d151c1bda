"""Crash points for the fault-injection tests (issue #5).

`QUEUECTL_CRASH_AT=<point>` makes a process SIGKILL itself when it reaches that point, like a
power cut or `kill -9` at the worst moment. With `QUEUECTL_CRASH_ONCE=<file>` it crashes only
if it can create that file, so a replacement worker carries on. Outside those tests the
variable is unset and a crash point costs one comparison.
"""

from __future__ import annotations

import os

CRASH_AT = os.environ.get("QUEUECTL_CRASH_AT")
POINTS = (
    "claim-before-commit",  # the claim's UPDATE ran, its transaction is not committed
    "after-claim",  # claimed and committed, command not started
    "after-start",  # the command started, its pid not yet recorded
    "after-exit",  # the command exited, its outcome is not recorded
    "finish-before-commit",  # the outcome's UPDATE ran, its transaction is not committed
)


def crash_point(name: str) -> None:
    if name != CRASH_AT:
        return
    once = os.environ.get("QUEUECTL_CRASH_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
