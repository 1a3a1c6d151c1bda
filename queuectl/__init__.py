"""queuectl: a background job queue for shell commands, on SQLite or PostgreSQL.

The public Python API (Queue, Job, JobState and the errors, all under QueueError: see
docs/api.md) loads on first use, so that `queuectl enqueue`, which runs in shell loops, and a
plain `import queuectl` import only what they need.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

# Each public name and the module that defines it, imported when the name is first used.
_LAZY = {
    "Queue": "queue",
    "Job": "models",
    "JobState": "models",
    "QueueError": "errors",
    "JobNotFound": "errors",
    "DuplicateJob": "errors",
    "DependencyError": "errors",
    "InvalidTransition": "errors",
    "StoreError": "errors",
    "StoreBusy": "errors",
    "StoreReadOnly": "errors",
    "ScheduleNotFound": "errors",
    "ScheduleExists": "errors",
    "BulkSpecError": "queue",
    "SpecError": "specs",
    "ConfigError": "config",
    "CronError": "cron",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'queuectl' has no attribute {name!r}")
    # __import__, not importlib.import_module: see cli/base.load_command (importtime).
    __import__(f"{__name__}.{module}")
    return getattr(sys.modules[f"{__name__}.{module}"], name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
