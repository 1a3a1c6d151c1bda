"""PostgreSQL's named statements for the operators' commands of SPEC §8: queue settings, run
counts, prune and schedules. Kept apart from postgres_sql.py (the statements of every job's
path) and imported on first use, so that `enqueue` never loads them. Same parameter names as
sqlite_admin_sql.py; the rules that use them are written once (operations.py and the
store's feature modules).
"""

from collections.abc import Sequence

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
# The folded counts plus the changes not folded yet (postgres_schema.py), in one snapshot.
QUEUE_JOB_COUNTS = """
SELECT queue, state, sum(jobs)::bigint FROM (
    SELECT queue, state, jobs FROM queuectl_job_counts
    UNION ALL
    SELECT queue, state, jobs FROM queuectl_job_count_changes
) AS counted
GROUP BY queue, state HAVING sum(jobs) <> 0
"""
# Moves the changes into the counts, in one statement, by one folder at a time (another one
# folding now: nothing to do, the changes are on their way); counts rows in key order.
FOLD_LOCK = 0x71756575_636F756E  # "queucoun" in ASCII; fits a signed bigint
FOLD_JOB_COUNTS = f"""
WITH folding AS (SELECT pg_try_advisory_xact_lock({FOLD_LOCK}) AS mine),
moved AS (
    DELETE FROM queuectl_job_count_changes WHERE (SELECT mine FROM folding)
    RETURNING queue, state, jobs
)
INSERT INTO queuectl_job_counts AS c (queue, state, jobs)
SELECT queue, state, sum(jobs) FROM moved GROUP BY queue, state ORDER BY queue, state
ON CONFLICT (queue, state) DO UPDATE SET jobs = c.jobs + excluded.jobs
"""
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
# The run-time histogram's buckets (store/run_stats.py), not cumulative: summed over shards.
RUN_DURATIONS = """
SELECT queue, le, sum(runs)::bigint, sum(seconds) FROM queuectl_run_durations GROUP BY queue, le
"""

# -- activity (the dashboard, SPEC §9) -------------------------------------------------------
# See sqlite_admin_sql.py; the server's clock.
RUNS_PER_MINUTE = f"""
SELECT floor(({NOW} - finished_at) / 60)::bigint, count(*) FROM queuectl_runs
WHERE finished_at > {NOW} - %(span)s AND finished_at <= {NOW} GROUP BY 1
"""

# -- prune -----------------------------------------------------------------------------------
# See sqlite_admin_sql.py. Runs and dependency edges go with their job (ON DELETE CASCADE).
PRUNABLE = """
j.state = %(state)s AND j.seq > %(after)s AND j.updated_at <= %(cutoff)s
AND (j.state = 'completed' OR NOT EXISTS (
    SELECT 1 FROM queuectl_job_deps e JOIN queuectl_jobs w ON w.seq = e.job_seq
    WHERE e.dep_seq = j.seq AND w.state = 'waiting'
))
"""
SELECT_PRUNABLE = f"""
WITH batch AS (
    SELECT j.seq, j.id FROM queuectl_jobs j WHERE {PRUNABLE} ORDER BY j.seq LIMIT %(limit)s
)
SELECT b.seq, b.id, r.run_id, r.worker_id
FROM batch b LEFT JOIN queuectl_runs r ON r.job_seq = b.seq
"""
COUNT_PRUNABLE = f"SELECT count(*) FROM queuectl_jobs j WHERE {PRUNABLE}"
# SKIP LOCKED: a job locked by someone else (an enqueue naming it in `after` holds it FOR
# SHARE until it commits) is left for the next prune, and no claim ever waits on a prune.
DELETE_PRUNABLE = f"""
DELETE FROM queuectl_jobs WHERE seq IN (
    SELECT j.seq FROM queuectl_jobs j
    WHERE j.seq = ANY(%(seqs)s::bigint[]) AND {PRUNABLE}
    FOR UPDATE SKIP LOCKED
)
RETURNING seq, id
"""
SELECT_SEQS_LEFT = "SELECT seq FROM queuectl_jobs WHERE seq = ANY(%(seqs)s::bigint[])"

CLAIM_CHORE = f"""
INSERT INTO queuectl_chores AS c (name, ran_at) VALUES (%(name)s, {NOW})
ON CONFLICT (name) DO UPDATE SET ran_at = excluded.ran_at
WHERE c.ran_at <= excluded.ran_at - %(every)s OR c.ran_at > excluded.ran_at + %(every)s
RETURNING ran_at
"""


def seq_list(seqs: Sequence[int]) -> list[int]:
    """The %(seqs)s parameter of DELETE_PRUNABLE: a list, sent as an array."""
    return list(seqs)


# -- schedules -------------------------------------------------------------------------------

SCHEDULE_COLUMNS = (
    "name, cron, tz, command, queue, priority, max_retries, timeout, overlap, paused, "
    "created_at, next_run_at, last_enqueued_at, last_job_id"
)
# Nothing is written when the name is taken (the caller says so); an insert racing another's
# waits for it to commit, then does nothing.
INSERT_SCHEDULE = """
INSERT INTO queuectl_schedules (name, cron, tz, command, queue, priority, max_retries, timeout,
                                overlap, paused, created_at, next_run_at)
VALUES (%(name)s, %(cron)s, %(tz)s, %(command)s, %(queue)s, %(priority)s, %(max_retries)s,
        %(timeout)s, %(overlap)s, false, %(now)s, %(next_run_at)s)
ON CONFLICT (name) DO NOTHING
"""
SELECT_SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM queuectl_schedules ORDER BY name"
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM queuectl_schedules WHERE name = %(name)s"
PAUSE_SCHEDULE = """
UPDATE queuectl_schedules SET paused = true, next_run_at = NULL WHERE name = %(name)s
"""
RESUME_SCHEDULE = """
UPDATE queuectl_schedules SET paused = false, next_run_at = %(next_run_at)s
WHERE name = %(name)s AND paused
"""
DELETE_SCHEDULE = "DELETE FROM queuectl_schedules WHERE name = %(name)s"
# With the server's time: every host measures the wait to the next fire time on one clock.
NEXT_SCHEDULES = f"""
SELECT name, next_run_at, {NOW} FROM queuectl_schedules
WHERE next_run_at IS NOT NULL AND NOT paused
ORDER BY next_run_at LIMIT %(limit)s
"""
# Compare-and-set: a second worker firing the same fire time waits on the row lock, then
# finds next_run_at moved on and updates nothing (READ COMMITTED re-checks the WHERE).
ADVANCE_SCHEDULE = """
UPDATE queuectl_schedules
SET next_run_at = %(next_run_at)s,
    last_enqueued_at = coalesce(%(enqueued_at)s::double precision, last_enqueued_at),
    last_job_id = coalesce(%(job_id)s::text, last_job_id)
WHERE name = %(name)s AND next_run_at = %(expected)s AND NOT paused
"""
