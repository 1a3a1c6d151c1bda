"""queuectl: a background job queue for shell commands, on SQLite or PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"

from .models import Job, JobState  # noqa: E402
from .queue import Queue  # noqa: E402

__all__ = ["Job", "JobState", "Queue", "__version__"]
