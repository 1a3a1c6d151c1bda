"""queuectl: a background job queue for shell commands, on SQLite or PostgreSQL.

The public Python API (Queue, Job, JobState) loads on first use, so that `queuectl enqueue`,
which runs in shell loops, imports only what it needs.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Job", "JobState", "Queue", "__version__"]


def __getattr__(name: str):
    if name == "Queue":
        from .queue import Queue

        return Queue
    if name in ("Job", "JobState"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'queuectl' has no attribute {name!r}")
