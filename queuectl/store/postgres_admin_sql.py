"""PostgreSQL's named statements for the operators' commands of SPEC §8: queue settings, run
counts, prune and schedules. Kept apart from postgres_sql.py (the statements of every job's
path) and imported on first use, so that `enqueue` never loads them. Same parameter names as
sqlite_admin_sql.py; the rules that use them are written once (operations.py and the
store's feature modules).
"""

from .postgres_sql import NOW

# -- queues ----------------------------------------------------------------------------------

SET_QUEUE_PAUSED = """
INSERT INTO queuectl_queues (name, paused) VALUES (%(name)s, %(paused)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
"""
SET_QUEUE_LIMIT = """
INSERT INTO queuectl_queues (name, max_running) VALUES (%(name)s, %(limit)s)
ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running
"""
QUEUE_SETTINGS = "SELECT name, paused, max_running FROM queuectl_queues"
QUEUE_JOB_COUNTS = "SELECT queue, state, count(*) FROM queuectl_jobs GROUP BY queue, state"
# Through the (queue, run_at) index of waiting jobs: failed ones (retries) are read past.
QUEUE_OLDEST_READY = f"""
SELECT queue, {NOW} - min(run_at) FROM queuectl_jobs
WHERE state = 'pending' AND run_at <= {NOW} GROUP BY queue
"""
PAUSED_QUEUES = "SELECT name FROM queuectl_queues WHERE paused ORDER BY name"

# -- run counts ------------------------------------------------------------------------------

RUN_COUNTS = """
SELECT queue, outcome, sum(runs)::bigint, sum(seconds) FROM queuectl_run_counts
GROUP BY queue, outcome ORDER BY queue, outcome
"""

# -- prune -----------------------------------------------------------------------------------

# -- schedules -------------------------------------------------------------------------------
