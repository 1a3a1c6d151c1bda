"""The PostgreSQL backend's claim statements (postgres.py runs them; the rest of its SQL is
postgres_sql.py's).

A claim is one round trip: pick with SKIP LOCKED (concurrent claimers pass over each other's
rows instead of waiting), mark processing, count the attempt, open the run. With no queue
paused or limited (SPEC §8), the pick is one walk of queuectl_jobs_ready. Otherwise it takes
the best job of each open queue through queuectl_jobs_queue_ready, so that a paused or full
queue's backlog is never walked past, and then the best of those.

A limit is where one statement is not enough: its count of running jobs comes from the
statement's snapshot, and two claimers at once would both see room for one more. So the pick
does not take a job of a limited queue: it names the queue (`limited`), and postgres.py then
claims from it in a transaction that first locks the queue's row (LOCK_LIMITED_QUEUE) and
only then counts (CLAIM_LIMITED, a fresh snapshot in READ COMMITTED): every claim of that
queue holds the lock until it commits, so the count always sees the others. Ending a run only
lowers the count, so nothing else needs the lock.
"""

from __future__ import annotations

from .postgres_sql import FINISH_CTES, FINISHED, JOB_COLUMNS, NOW, OPEN_QUEUE

READY = f"state IN ('pending', 'failed') AND run_at <= {NOW}"
SETTINGS_IN_FORCE = "EXISTS (SELECT 1 FROM queuectl_queues WHERE paused OR max_running > 0)"


def _claiming(pick: str, guard: str = "true") -> str:
    """The CTEs that claim the job whose seq `pick` gives (NULL: none), only when `guard` (SQL)
    holds, and open its run."""
    return f"""claimed AS (
    UPDATE queuectl_jobs
    SET state = 'processing', attempts = attempts + 1, worker_id = %(claimer)s,
        lease_until = {NOW} + %(lease)s, updated_at = {NOW}
    WHERE {guard} AND seq = {pick}
    RETURNING *
), run AS (
    INSERT INTO queuectl_runs (job_seq, attempt, worker_id, host, started_at, token)
    SELECT seq, attempts, %(claimer)s, %(host)s, {NOW}, %(token)s FROM claimed
    RETURNING run_id
)"""


# With no queue paused or limited, the walk of the ready index; otherwise the best head.
FAST_OR_BEST = f"""coalesce((
        SELECT seq FROM queuectl_jobs
        WHERE {READY} {{queue_filter}} AND NOT {SETTINGS_IN_FORCE}
        ORDER BY priority DESC, run_at, seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ), (SELECT seq FROM best WHERE NOT limited))"""


def claim_ctes(guard: str = "true") -> str:
    """The claim's CTEs, whose `claimed` claims only when `guard` (SQL) holds.

    `heads`: each open queue's best ready job (locked, SKIP LOCKED, so that claimers at once
    take different ones), with whether its queue has a limit; `best`: the best of them. Queues
    in %(passed)s are left out: their claim under the lock just found them full. {queue_filter}
    and {name_filter} restrict to the worker's queues (postgres_sql.queue_filter).
    """
    return f"""
heads AS (
    SELECT h.seq, h.priority, h.run_at, q.max_running > 0 AS limited, q.name
    FROM queuectl_queues q CROSS JOIN LATERAL (
        SELECT seq, priority, run_at FROM queuectl_jobs j
        WHERE j.queue = q.name AND {READY}
        ORDER BY j.priority DESC, j.run_at, j.seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) AS h
    WHERE {SETTINGS_IN_FORCE} AND {OPEN_QUEUE} {{name_filter}}
          AND q.name <> ALL(%(passed)s::text[])
), best AS (
    SELECT * FROM heads ORDER BY priority DESC, run_at, seq LIMIT 1
), {_claiming(FAST_OR_BEST, guard)}"""


CLAIMED = f"claimed.seq, {', '.join('claimed.' + c for c in JOB_COLUMNS.split(', '))}, run.run_id"
# The limited queue whose job was best, when the pick left it to CLAIM_LIMITED.
LIMITED = "(SELECT name FROM best WHERE limited)"

# Always one row: the limited queue (or NULL), then the claim (NULLs when none).
CLAIM_JOB = f"""
WITH {claim_ctes()}
SELECT {LIMITED}, {CLAIMED}
FROM (SELECT 1) AS one LEFT JOIN (claimed CROSS JOIN run) ON true
"""

# An outcome and the worker's next claim in one statement: one round trip and one commit per
# job. The claim sees the statement's snapshot, in which the finished job is still processing
# and the jobs it releases (SPEC §7) still waiting. So when that job's queue has a limit (it
# held a place there), the queue would look full, and when it released jobs, they would not
# look ready: the claim would take a worse job, or none. Such a finish (`afresh`) claims
# nothing here, and postgres.py claims next with a fresh snapshot.
AFRESH = """(coalesce((SELECT q.max_running > 0
                      FROM queuectl_queues q JOIN finished f ON q.name = f.queue), false)
           OR EXISTS (SELECT 1 FROM released))"""
FINISH_AND_CLAIM = f"""
WITH {FINISH_CTES}, {claim_ctes(f"NOT {AFRESH}")}
SELECT {FINISHED}, {AFRESH}, {LIMITED}, {CLAIMED}
FROM (SELECT 1) AS one LEFT JOIN (claimed CROSS JOIN run) ON true
"""

LOCK_LIMITED_QUEUE = "SELECT 1 FROM queuectl_queues WHERE name = %(limited)s FOR UPDATE"

# Under that lock: the queue's best ready job, if it is still open.
LIMITED_PICK = f"""(
        SELECT seq FROM queuectl_jobs
        WHERE queue = %(limited)s AND {READY}
              AND EXISTS (SELECT 1 FROM queuectl_queues q
                          WHERE q.name = %(limited)s AND {OPEN_QUEUE})
        ORDER BY priority DESC, run_at, seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )"""
CLAIM_LIMITED = f"""
WITH {_claiming(LIMITED_PICK)}
SELECT {CLAIMED} FROM claimed CROSS JOIN run
"""
