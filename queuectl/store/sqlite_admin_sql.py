"""SQLite's named statements for the operators' commands of SPEC §8: queue settings, run
counts, prune and schedules. Kept apart from sqlite_sql.py (the statements of every job's
path) and imported on first use, so that `enqueue` never loads them. Same parameter names as
postgres_admin_sql.py; the rules that use them are written once (operations.py and the
store's feature modules).
"""

# -- queues ----------------------------------------------------------------------------------

SET_QUEUE_PAUSED = """
INSERT INTO queues (name, paused) VALUES (:name, :paused)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
"""
SET_QUEUE_LIMIT = """
INSERT INTO queues (name, max_running) VALUES (:name, :limit)
ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running
"""
QUEUE_SETTINGS = "SELECT name, paused, max_running FROM queues"
QUEUE_JOB_COUNTS = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
# Through the (queue, run_at) index of waiting jobs (its condition spelled out, as SQLite
# uses a partial index only for a query that repeats it): failed ones (retries) are read past.
QUEUE_OLDEST_READY = """
SELECT queue, :now - min(run_at) FROM jobs INDEXED BY jobs_queue_due
WHERE state IN ('pending', 'failed') AND state = 'pending' AND run_at <= :now GROUP BY queue
"""
PAUSED_QUEUES = "SELECT name FROM queues WHERE paused ORDER BY name"

# -- run counts ------------------------------------------------------------------------------

RUN_COUNTS = """
SELECT queue, outcome, sum(runs), sum(seconds) FROM run_counts
GROUP BY queue, outcome ORDER BY queue, outcome
"""

# -- prune -----------------------------------------------------------------------------------

# -- schedules -------------------------------------------------------------------------------
