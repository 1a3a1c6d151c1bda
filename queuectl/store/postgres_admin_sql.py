"""PostgreSQL's named statements for the operators' commands of SPEC §8: queue settings, run
counts, prune and schedules. Kept apart from postgres_sql.py (the statements of every job's
path) and imported on first use, so that `enqueue` never loads them. Same parameter names as
sqlite_admin_sql.py; the rules that use them are written once (operations.py and the
store's feature modules).
"""

from collections.abc import Sequence

from .postgres_sql import NOW

# -- queues ----------------------------------------------------------------------------------

# -- run counts ------------------------------------------------------------------------------

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
