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

SCHEDULE_COLUMNS = (
    "name, cron, tz, command, queue, priority, max_retries, timeout, overlap, paused, "
    "created_at, next_run_at, last_enqueued_at, last_job_id"
)
# Nothing is written when the name is taken (the caller says so).
INSERT_SCHEDULE = """
INSERT INTO schedules (name, cron, tz, command, queue, priority, max_retries, timeout, overlap,
                       paused, created_at, next_run_at)
VALUES (:name, :cron, :tz, :command, :queue, :priority, :max_retries, :timeout, :overlap,
        0, :now, :next_run_at)
ON CONFLICT (name) DO NOTHING
"""
SELECT_SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = :name"
# Paused: no fire time is due (next_run_at NULL) until resumed.
PAUSE_SCHEDULE = "UPDATE schedules SET paused = 1, next_run_at = NULL WHERE name = :name"
RESUME_SCHEDULE = """
UPDATE schedules SET paused = 0, next_run_at = :next_run_at WHERE name = :name AND paused = 1
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE name = :name"
# The schedules whose next fire time comes first, with the store's time: those due are fired,
# the first one not due says how long an idle worker may wait.
NEXT_SCHEDULES = """
SELECT name, next_run_at, :now FROM schedules
WHERE next_run_at IS NOT NULL AND paused = 0
ORDER BY next_run_at LIMIT :limit
"""
# Compare-and-set: only the worker that still sees the fire time it read moves the schedule
# on; any other gets no row and enqueues nothing. :job_id and :enqueued_at are NULL for a fire
# time skipped.
ADVANCE_SCHEDULE = """
UPDATE schedules
SET next_run_at = :next_run_at, last_enqueued_at = coalesce(:enqueued_at, last_enqueued_at),
    last_job_id = coalesce(:job_id, last_job_id)
WHERE name = :name AND next_run_at = :expected AND paused = 0
"""
