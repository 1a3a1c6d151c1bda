"""Schema migrations and named statements of the PostgreSQL backend.

Times are double precision epoch seconds, as on SQLite, so client-supplied times round-trip
exactly and lease arithmetic stays plain numbers; every "now" is the server's clock (`NOW`),
never a host's. Tables carry a `queuectl_` prefix because a PostgreSQL database is often shared
with an application that may already have a `jobs` or `config` table.

Statements use psycopg's `%(name)s` parameters, named as in sqlite_sql.py for the same
statement (store/operations.py calls both alike); `{queue_filter}` is filled in per call, never
with user data. The small functions at the end turn values into parameters and rows into
objects. The claim's statements are postgres_claim_sql.py's.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Claim, Job

# The server's clock at the start of the transaction: one value for every row a statement
# touches, so a run's start and its job's update agree.
NOW = "date_part('epoch', now())"

# Serializes migrations of one database across every process that opens it at the same time.
MIGRATION_LOCK = 0x71756575_6563746C  # "queuectl" in ASCII; fits a signed bigint

CHANNEL = "queuectl_jobs"


def set_session(count: int) -> str:
    """One round trip setting `count` session settings; parameters: name, value, name, …
    (postgres_conn.py's Limits chooses the values and says why)."""
    return "SELECT " + ", ".join(["set_config(%s, %s, false)"] * count)


# For the rest of one transaction: no statement_timeout. Migrations and bulk adds may
# legitimately run long; a silent network still ends them (TCP keepalives and user timeout).
NO_STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', '0', true)"

SCHEMA_TABLE_EXISTS = "SELECT to_regclass('queuectl_schema_version') IS NOT NULL"
SELECT_SCHEMA = "SELECT version, store_id FROM queuectl_schema_version"
LOCK_MIGRATIONS = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"
CREATE_SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS queuectl_schema_version (
    version  integer NOT NULL,
    store_id text    NOT NULL
)
"""
INSERT_SCHEMA = "INSERT INTO queuectl_schema_version (version, store_id) VALUES (0, %s)"
SET_SCHEMA_VERSION = "UPDATE queuectl_schema_version SET version = %s"

JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, "
    "created_at, updated_at, exit_code, last_error, worker_id, lease_until, "
    "unique_key, cwd, env_vars, after_ids"
)
RUN_COLUMNS = (
    "run_id, attempt, worker_id, host, started_at, finished_at, outcome, exit_code, error, "
    "output_tail, pid"
)

SERVER_TIME = "SELECT date_part('epoch', clock_timestamp())"

NOTIFY = f"SELECT pg_notify('{CHANNEL}', %s)"  # the payload says why, for debugging
LISTEN = f"LISTEN {CHANNEL}"
ANY_READY = f"""
SELECT EXISTS (SELECT 1 FROM queuectl_jobs WHERE state IN ('pending', 'failed') AND run_at <= {NOW})
"""

# Bulk insert with COPY, the server's fastest path (about 2.5 times the rows per second of an
# INSERT from parallel arrays here). A taken id fails the whole COPY (unique violation); the
# caller then names the first taken id of the batch.
COPY_JOBS = """
COPY queuectl_jobs (id, command, state, max_retries, priority, queue, run_at, timeout,
                    created_at, updated_at, unique_key, cwd, env_vars, after_ids) FROM STDIN
"""
# The time every row of the COPY is stamped with: the transaction's, like NOW in a statement.
TRANSACTION_TIME = f"SELECT {NOW}"
# The same for a bulk add, which also lifts the statement timeout for its COPY (one round trip).
BULK_TRANSACTION_TIME = f"SELECT {NOW}, set_config('statement_timeout', '0', true)"

ANALYZE_JOBS = "ANALYZE queuectl_jobs"

# -- dependencies and unique keys (SPEC §7); used by add's one-row-at-a-time path -------

INSERT_JOB = """
INSERT INTO queuectl_jobs (id, command, state, max_retries, priority, queue, run_at, timeout,
                           created_at, updated_at, unique_key, cwd, env_vars, after_ids)
VALUES (%(id)s, %(command)s, %(state)s, %(max_retries)s, %(priority)s, %(queue)s, %(run_at)s,
        %(timeout)s, %(now)s, %(now)s, %(unique_key)s, %(cwd)s, %(env_vars)s, %(after_ids)s)
"""
INSERT_ONE_JOB = INSERT_JOB + "RETURNING seq"
# Nothing is written while an unfinished job holds the key (the partial unique index); an
# insert racing another's waits for it to commit, then does nothing.
INSERT_UNIQUE_JOB = (
    INSERT_JOB
    + """
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
    AND state IN ('waiting', 'pending', 'processing', 'failed') DO NOTHING
RETURNING seq
"""
)
SELECT_KEY_HOLDER = """
SELECT id FROM queuectl_jobs
WHERE unique_key = %(key)s AND state IN ('waiting', 'pending', 'processing', 'failed')
"""
SELECT_OTHER_KEY_HOLDER = """
SELECT h.id FROM queuectl_jobs j
JOIN queuectl_jobs h ON h.unique_key = j.unique_key AND h.seq <> j.seq
WHERE j.id = %(job)s AND h.state IN ('waiting', 'pending', 'processing', 'failed')
"""
# FOR SHARE: a dependency cannot finish while its dependent is being linked to it; if it
# finished first, the linker sees its final state.
SELECT_DEPENDENCY = "SELECT seq, state FROM queuectl_jobs WHERE id = %(job)s FOR SHARE"
INSERT_DEPENDENCY = """
INSERT INTO queuectl_job_deps (dep_seq, job_seq) VALUES (%(dep_seq)s, %(job_seq)s)
ON CONFLICT DO NOTHING
"""
SET_DEPS_LEFT = """
UPDATE queuectl_jobs
SET deps_left = %(left)s, state = CASE WHEN %(left)s = 0 THEN 'pending' ELSE state END
WHERE seq = %(seq)s
"""
RELEASE_DEPENDENTS = f"""
UPDATE queuectl_jobs
SET deps_left = deps_left - 1,
    state = CASE WHEN deps_left <= 1 THEN 'pending' ELSE state END, updated_at = {NOW}
WHERE state = 'waiting' AND seq IN (
    SELECT job_seq FROM queuectl_job_deps
    WHERE dep_seq = (SELECT seq FROM queuectl_jobs WHERE id = %(job)s)
)
"""
CANCEL_DEPENDENTS = f"""
WITH RECURSIVE doomed(seq, cause, cause_state) AS (
    SELECT job_seq, %(job)s::text, %(state)s::text FROM queuectl_job_deps
    WHERE dep_seq = (SELECT seq FROM queuectl_jobs WHERE id = %(job)s)
    UNION
    SELECT e.job_seq, j.id, 'canceled'::text
    FROM doomed JOIN queuectl_jobs j ON j.seq = doomed.seq
    JOIN queuectl_job_deps e ON e.dep_seq = doomed.seq
    WHERE j.state = 'waiting'
)
UPDATE queuectl_jobs
SET state = 'canceled', worker_id = NULL, lease_until = NULL, updated_at = {NOW},
    last_error = (
        SELECT 'dependency ' || cause || ' ended ' || cause_state FROM doomed
        WHERE doomed.seq = queuectl_jobs.seq ORDER BY cause LIMIT 1
    )
WHERE state = 'waiting' AND seq IN (SELECT seq FROM doomed)
"""

SELECT_IDS_COMMANDS = "SELECT id, command FROM queuectl_jobs WHERE id = ANY(%s::text[])"

SELECT_JOB = f"SELECT seq, {JOB_COLUMNS} FROM queuectl_jobs WHERE id = %(job)s"

SELECT_RUNS = f"SELECT {RUN_COLUMNS} FROM queuectl_runs WHERE job_seq = %(seq)s ORDER BY run_id"

# {where}: JOB_FILTERS joined with AND, or `true`; {limit}: LIMIT or nothing.
LIST_JOBS = f"SELECT {JOB_COLUMNS} FROM queuectl_jobs WHERE {{where}} ORDER BY seq {{limit}}"
JOB_FILTERS = {"state": "state = %(state)s", "queue": "queue = %(queue)s"}
LIMIT = "LIMIT %(limit)s"
OFFSET = "OFFSET %(offset)s"

# Jobs per state: the folded counts plus the changes not folded yet (postgres_schema.py).
COUNT_BY_STATE = """
SELECT state, sum(jobs)::bigint FROM (
    SELECT state, jobs FROM queuectl_job_counts
    UNION ALL
    SELECT state, jobs FROM queuectl_job_count_changes
) AS counted
GROUP BY state
"""

# After a lost COMMIT of a claim: did it land? The token names this claim and nothing else.
FIND_CLAIM = f"""
SELECT j.seq, {", ".join("j." + c for c in JOB_COLUMNS.split(", "))}, r.run_id
FROM queuectl_jobs j JOIN queuectl_runs r ON r.job_seq = j.seq AND r.attempt = j.attempts
WHERE j.state = 'processing' AND j.worker_id = %(worker)s AND r.token = %(token)s
"""


SET_RUN_PID = "UPDATE queuectl_runs SET pid = %(pid)s WHERE run_id = %(run_id)s"

# A claim's run still open is part of the fence: after a dlq retry, attempts start again from
# 0, and a claim from before it could otherwise match a new claim by the same worker id.
RUN_STILL_OPEN = """
NOT EXISTS (SELECT 1 FROM queuectl_runs r WHERE r.run_id = %(run_id)s AND r.finished_at IS NOT NULL)
"""

EXTEND_LEASE = f"""
UPDATE queuectl_jobs SET lease_until = {NOW} + %(lease)s
WHERE id = %(job)s AND state = 'processing' AND worker_id = %(worker)s AND attempts = %(attempt)s
      AND {RUN_STILL_OPEN}
"""

WORKER_HEARTBEAT = f"""
UPDATE queuectl_workers w SET last_heartbeat = {NOW} WHERE id = %(worker)s
RETURNING stop_requested
    OR EXISTS (SELECT 1 FROM queuectl_stop_request s WHERE s.requested_at > w.started_at)
"""
# For a worker that registers again after its row was pruned: asked to stop meanwhile?
STOP_REQUESTED_SINCE = (
    "SELECT EXISTS (SELECT 1 FROM queuectl_stop_request WHERE requested_at > %(started)s)"
)

# Fencing: the outcome only lands while this worker still holds this attempt. A run closed
# already (by cancel or by the rescuer) keeps that verdict; the tail still lands. A retry
# scheduled wakes idle workers so they can plan for it. All in one round trip.
FINISH_CTES = f"""
finished AS (
    UPDATE queuectl_jobs
    SET state = %(state)s,
        run_at = CASE WHEN %(delay)s::float8 IS NULL THEN run_at ELSE {NOW} + %(delay)s END,
        exit_code = %(exit_code)s, last_error = %(error)s,
        worker_id = NULL, lease_until = NULL, updated_at = {NOW}
    WHERE id = %(job)s AND state = 'processing' AND worker_id = %(worker)s
          AND attempts = %(attempt)s AND {RUN_STILL_OPEN}
    RETURNING seq, state, queue
), released AS (
    -- A job completed: those waiting on it have one dependency less (SPEC §7); the last
    -- releases them. (Dead: postgres.py cancels them in a transaction of two statements.)
    UPDATE queuectl_jobs d
    SET deps_left = d.deps_left - 1,
        state = CASE WHEN d.deps_left <= 1 THEN 'pending' ELSE d.state END, updated_at = {NOW}
    FROM queuectl_job_deps e, finished f
    WHERE f.state = 'completed' AND e.dep_seq = f.seq AND d.seq = e.job_seq
          AND d.state = 'waiting'
    RETURNING d.seq
), closed AS (
    UPDATE queuectl_runs
    SET finished_at = coalesce(
            finished_at, LEAST({NOW}, started_at + coalesce(%(seconds)s::float8, {NOW}))
        ),
        outcome = coalesce(outcome, %(outcome)s),
        exit_code = coalesce(exit_code, %(exit_code)s), error = coalesce(error, %(error)s),
        output_tail = %(tail)s
    -- Reading `finished` first locks the job row before the run row, the order cancel and
    -- the rescuer use too, so they can never deadlock.
    WHERE run_id = %(run_id)s AND (SELECT count(*) FROM finished) >= 0
)"""
# A retry scheduled, dependents released, or a place freed in a limited queue wakes idle workers.
FINISHED = f"""(SELECT count(*) FROM finished),
       (SELECT pg_notify('{CHANNEL}', 'retry') FROM finished f
        WHERE f.state = 'failed' OR EXISTS (SELECT 1 FROM released)
           OR EXISTS (SELECT 1 FROM queuectl_queues q
                      WHERE q.name = f.queue AND q.max_running > 0))"""

FINISH_JOB = f"""
WITH {FINISH_CTES}
SELECT {FINISHED}
"""

SELECT_RUN_OUTCOME = "SELECT outcome FROM queuectl_runs WHERE run_id = %(run_id)s"

# SKIP LOCKED: two rescuers never wait on each other, and a job whose worker is heartbeating
# right now is left alone (the rescue below re-checks the lease anyway).
SELECT_EXPIRED = f"""
SELECT seq, id, attempts, max_retries, worker_id FROM queuectl_jobs
WHERE state = 'processing' AND lease_until < {NOW}
FOR UPDATE SKIP LOCKED
"""

RESCUE_JOB = f"""
UPDATE queuectl_jobs
SET state = %(state)s, run_at = {NOW} + %(delay)s, last_error = %(error)s, exit_code = NULL,
    worker_id = NULL, lease_until = NULL, updated_at = {NOW}
WHERE seq = %(seq)s AND state = 'processing' AND attempts = %(attempt)s
      AND lease_until < {NOW}
"""

CLOSE_LOST_RUN = f"""
UPDATE queuectl_runs SET finished_at = {NOW}, outcome = 'lost', error = %(error)s
WHERE job_seq = %(seq)s AND attempt = %(attempt)s AND finished_at IS NULL
"""

PRUNE_WORKERS = f"DELETE FROM queuectl_workers WHERE last_heartbeat < {NOW} - %(kept)s"

RETRY_DEAD = f"""
UPDATE queuectl_jobs
SET state = 'pending', attempts = 0, run_at = {NOW}, updated_at = {NOW},
    worker_id = NULL, lease_until = NULL
WHERE id = %(job)s AND state = 'dead'
"""

SELECT_DEAD_IDS = "SELECT id FROM queuectl_jobs WHERE state = 'dead' ORDER BY seq FOR UPDATE"
RELEASE_STRANDED = f"""
UPDATE queuectl_jobs SET state = 'pending', deps_left = 0, updated_at = {NOW}
WHERE state = 'waiting' AND NOT EXISTS (
    SELECT 1 FROM queuectl_job_deps e JOIN queuectl_jobs d ON d.seq = e.dep_seq
    WHERE e.job_seq = queuectl_jobs.seq AND d.state <> 'completed'
)
"""
SELECT_FAILED_DEPENDENCIES = """
SELECT DISTINCT d.id, d.state FROM queuectl_jobs w
JOIN queuectl_job_deps e ON e.job_seq = w.seq JOIN queuectl_jobs d ON d.seq = e.dep_seq
WHERE w.state = 'waiting' AND d.state IN ('dead', 'canceled')
"""

SELECT_STATE = "SELECT state FROM queuectl_jobs WHERE id = %(job)s"
SELECT_COMMAND = "SELECT command FROM queuectl_jobs WHERE id = %(job)s"
# Only asked after a lost COMMIT (see store/operations.py): did a dlq retry land?
COUNT_DEAD = "SELECT count(*) FROM queuectl_jobs WHERE id = ANY(%(ids)s::text[]) AND state = 'dead'"

SELECT_FOR_CANCEL = "SELECT seq, state, attempts FROM queuectl_jobs WHERE id = %(job)s FOR UPDATE"

CANCEL_JOB = f"""
UPDATE queuectl_jobs SET state = 'canceled', last_error = 'canceled', worker_id = NULL,
    lease_until = NULL, updated_at = {NOW}
WHERE id = %(job)s AND state IN ('waiting', 'pending', 'failed', 'processing')
"""

CLOSE_CANCELED_RUN = f"""
UPDATE queuectl_runs SET finished_at = {NOW}, outcome = 'canceled', error = 'canceled'
WHERE job_seq = %(seq)s AND attempt = %(attempt)s AND finished_at IS NULL
"""

SELECT_CONFIG = "SELECT key, value FROM queuectl_config"
UPSERT_CONFIG = """
INSERT INTO queuectl_config (key, value) VALUES (%(key)s, %(value)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""
DELETE_CONFIG = "DELETE FROM queuectl_config WHERE key = %(key)s"
SELECT_CONFIG_KEY = "SELECT 1 FROM queuectl_config WHERE key = %(key)s"

# A worker registering again (its row pruned after a long silence, or a retry whose first try
# landed) keeps the start time it had: `status` shows when it started, not when it came back.
REGISTER_WORKER = f"""
INSERT INTO queuectl_workers (id, host, pid, started_at, last_heartbeat)
VALUES (%(id)s, %(host)s, %(pid)s, COALESCE(%(started)s, {NOW}), {NOW})
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat
RETURNING started_at
"""
UNREGISTER_WORKER = "DELETE FROM queuectl_workers WHERE id = %(worker)s"
# A worker's current job is derived, not stored: whatever it holds in `processing`.
LIVE_WORKERS = f"""
SELECT w.id, w.host, w.pid, w.started_at, w.last_heartbeat,
       (SELECT j.id FROM queuectl_jobs j
        WHERE j.state = 'processing' AND j.worker_id = w.id LIMIT 1)
FROM queuectl_workers w
WHERE w.last_heartbeat >= {NOW} - %(lease)s ORDER BY w.started_at, w.id
"""
NOTE_STOP_REQUEST = f"""
INSERT INTO queuectl_stop_request (id, requested_at) VALUES (1, {NOW})
ON CONFLICT (id) DO UPDATE SET requested_at = excluded.requested_at
"""
REQUEST_STOP = f"""
UPDATE queuectl_workers SET stop_requested = true
WHERE last_heartbeat >= {NOW} - %(lease)s RETURNING id
"""


# ---------------------------------------------------------------------------------------------
# parameters and rows


# The order of COPY_JOBS's columns, as keys of operations.new_job_row.
COPY_KEYS = (
    "id",
    "command",
    "state",
    "max_retries",
    "priority",
    "queue",
    "run_at",
    "timeout",
    "now",
    "now",
    "unique_key",
    "cwd",
    "env_vars",
    "after_ids",
)


def without_nul(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; job output can."""
    return None if text is None else text.replace("\x00", "\ufffd")


def to_claim(row: Sequence | None, worker_id: str) -> Claim | None:
    """A claim from a CLAIM_JOB or FIND_CLAIM row: seq, the job's columns, run_id."""
    if row is None:
        return None
    job = Job.from_row(row[1:-1])
    return Claim(job=job, worker_id=worker_id, attempt=job.attempts, run_id=row[-1])


# A queue a claim may take from (SPEC §8), for a row `q` of queuectl_queues: not paused, and
# with fewer jobs running than its limit, if it has one. The running jobs are few (one per busy
# worker), found through queuectl_jobs_state.
OPEN_QUEUE = """
NOT q.paused AND (q.max_running = 0 OR q.max_running > (
    SELECT count(*) FROM queuectl_jobs p WHERE p.state = 'processing' AND p.queue = q.name))
"""

# When the next job a claim could take is due: the earliest run_at of each open queue (a paused
# or full queue's due jobs would wake an idle worker for nothing), through queuectl_jobs_queue_due.
NEXT_RUN_AT = f"""
SELECT min(due) FROM queuectl_queues q CROSS JOIN LATERAL (
    SELECT min(run_at) AS due FROM queuectl_jobs
    WHERE queue = q.name AND state IN ('pending', 'failed')) AS d
WHERE {OPEN_QUEUE} {{name_filter}}
"""


def queue_filter(queues: Sequence[str] | None) -> tuple[dict[str, str], dict]:
    """The {queue_filter} (on jobs) and {name_filter} (on queues) of the claim and NEXT_RUN_AT
    for these queues, and their parameters."""
    if not queues:
        return {"queue_filter": "", "name_filter": ""}, {}
    return {
        "queue_filter": "AND queue = ANY(%(queues)s::text[])",
        "name_filter": "AND q.name = ANY(%(queues)s::text[])",
    }, {"queues": list(queues)}
