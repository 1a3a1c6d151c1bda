"""SQLite's named statements for the operators' commands of SPEC §8: queue settings, run
counts, prune and schedules. Kept apart from sqlite_sql.py (the statements of every job's
path) and imported on first use, so that `enqueue` never loads them. Same parameter names as
postgres_admin_sql.py; the rules that use them are written once (operations.py and the
store's feature modules).
"""

import json
from collections.abc import Sequence

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
# Kept by triggers as jobs come, move and go (sqlite_schema.py): a few rows, however many jobs.
QUEUE_JOB_COUNTS = "SELECT queue, state, jobs FROM job_counts WHERE jobs <> 0"
# The triggers update job_counts in place: nothing to fold (see postgres_admin_sql.py).
FOLD_JOB_COUNTS = None
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
# The run-time histogram's buckets (store/run_stats.py), not cumulative: summed over shards.
RUN_DURATIONS = """
SELECT queue, le, sum(runs), sum(seconds) FROM run_durations GROUP BY queue, le
"""

# -- activity (the dashboard, SPEC §9) -------------------------------------------------------
# Runs that ended in the last :span seconds, by how many whole minutes ago (0: this minute),
# through the runs_finished index.
RUNS_PER_MINUTE = """
SELECT CAST((:now - finished_at) / 60 AS INTEGER), count(*) FROM runs INDEXED BY runs_finished
WHERE finished_at > :now - :span AND finished_at <= :now GROUP BY 1
"""

# -- prune -----------------------------------------------------------------------------------
# Used by store/pruning.py. A job of :state (a finished state) last changed at or before
# :cutoff, past seq :after (batches walk jobs_state in seq order, each from where the last one
# ended). A dead or canceled job that a `waiting` job still points at is kept: that job is yet to
# be canceled through it (chaining.settle_stranded), and would be released if its edge went.
# A completed one may go: its dependents no longer count it, and a missing edge counts as met.
PRUNABLE = """
state = :state AND seq > :after AND updated_at <= :cutoff
AND (state = 'completed' OR NOT EXISTS (
    SELECT 1 FROM job_deps e JOIN jobs w ON w.seq = e.job_seq
    WHERE e.dep_seq = jobs.seq AND w.state = 'waiting'
))
"""
# The next batch: at most :limit jobs, with their runs (their log files are deleted after).
SELECT_PRUNABLE = f"""
WITH batch AS (
    SELECT seq, id FROM jobs INDEXED BY jobs_state WHERE {PRUNABLE} ORDER BY seq LIMIT :limit
)
SELECT b.seq, b.id, r.run_id, r.worker_id
FROM batch b LEFT JOIN runs r ON r.job_seq = b.seq
"""
COUNT_PRUNABLE = f"SELECT count(*) FROM jobs INDEXED BY jobs_state WHERE {PRUNABLE}"
# The batch's jobs (:seqs, as seq_list gives them) that are still prunable; their runs and
# edges go with them (the jobs_deleted trigger). NOT INDEXED: found by rowid, not by a walk of
# jobs_state from :after.
DELETE_PRUNABLE = f"""
DELETE FROM jobs NOT INDEXED
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND {PRUNABLE}
RETURNING seq, id
"""
# After a COMMIT whose answer was lost (PostgreSQL only): which of the batch are still there.
SELECT_SEQS_LEFT = "SELECT seq FROM jobs WHERE seq IN (SELECT value FROM json_each(:seqs))"

# A chore (:name) done at most once per :every seconds for the whole store: a row back means
# the caller is the one to do it now. A time more than :every ahead means the clock went back.
CLAIM_CHORE = """
INSERT INTO chores (name, ran_at) VALUES (:name, :now)
ON CONFLICT (name) DO UPDATE SET ran_at = excluded.ran_at
WHERE chores.ran_at <= excluded.ran_at - :every OR chores.ran_at > excluded.ran_at + :every
RETURNING ran_at
"""


def seq_list(seqs: Sequence[int]) -> str:
    """The :seqs parameter of DELETE_PRUNABLE: JSON text, read by json_each."""
    return json.dumps(list(seqs))


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
