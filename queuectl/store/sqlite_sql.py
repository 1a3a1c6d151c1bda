"""Schema migrations and named statements of the SQLite backend: every statement it runs.

Times are REAL epoch seconds, from the store's (injectable) clock, passed as `:now`. `seq` (the
rowid) is the insertion order; `id` is the user's id. Parameters are named, with the names
postgres_sql.py uses for the same statement, so that store/operations.py calls both alike.
"""

import functools
from collections.abc import Sequence

JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, "
    "created_at, updated_at, exit_code, last_error, worker_id, lease_until, "
    "unique_key, cwd, env_vars, after_ids"
)
RUN_COLUMNS = (
    "run_id, attempt, worker_id, host, started_at, finished_at, outcome, exit_code, error, "
    "output_tail, pid"
)

# -- the connection ---------------------------------------------------------------------------

BEGIN_WRITE = "BEGIN IMMEDIATE"  # takes the write lock up front: see sqlite.py
BEGIN_READ = "BEGIN"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
SCHEMA_VERSION = "PRAGMA user_version"
JOURNAL_WAL = "PRAGMA journal_mode = WAL"
COUNT_OBJECTS = "SELECT count(*) FROM sqlite_master"
# Incremented when another connection commits: the wake-up fallback without named pipes.
DATA_VERSION = "PRAGMA data_version"
# After a big write (a batch of prune): copy the WAL into the file, waiting for no one.
CHECKPOINT_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"


def set_schema_version(version: int) -> str:
    """PRAGMA takes no parameters: the version is a number of ours, never user data."""
    return f"PRAGMA user_version = {int(version)}"


def set_synchronous(mode: str) -> str:
    """`mode` is one of store.SYNC_MODES, checked before it gets here."""
    return f"PRAGMA synchronous = {mode}"


# -- jobs -------------------------------------------------------------------------------------

INSERT_JOB = """
INSERT INTO jobs (id, command, state, max_retries, priority, queue, run_at, timeout,
                  created_at, updated_at, unique_key, cwd, env_vars, after_ids)
VALUES (:id, :command, :state, :max_retries, :priority, :queue, :run_at, :timeout,
        :now, :now, :unique_key, :cwd, :env_vars, :after_ids)
"""

# add's bulk insert: many jobs per statement. The queue registry's insert trigger makes SQLite
# keep a statement journal for every statement that inserts a job, and one statement per job
# (an executemany of INSERT_JOB) paid it for every job: 2.6 times the CPU of the insert itself
# (26 against 10 µs per job in a 20 000-job add). Per INSERT_ROWS jobs it is paid once.
INSERT_KEYS = (
    "id", "command", "state", "max_retries", "priority", "queue", "run_at", "timeout",
    "now", "now", "unique_key", "cwd", "env_vars", "after_ids",
)  # fmt: skip
INSERT_ROWS = 999 // len(INSERT_KEYS)  # SQLite before 3.32 takes at most 999 parameters


@functools.lru_cache(maxsize=4)
def insert_jobs(count: int) -> str:
    """INSERT_JOB for `count` jobs (at most INSERT_ROWS), positional: each job's values in
    INSERT_KEYS order."""
    row = "(" + ", ".join("?" * len(INSERT_KEYS)) + ")"
    return (
        "INSERT INTO jobs (id, command, state, max_retries, priority, queue, run_at, timeout, "
        "created_at, updated_at, unique_key, cwd, env_vars, after_ids) VALUES "
        + ", ".join([row] * count)
    )


# -- dependencies and unique keys (SPEC §7); used by add's one-row-at-a-time path -------

INSERT_ONE_JOB = INSERT_JOB + "RETURNING seq"
# Nothing is written while an unfinished job holds the key (the partial unique index).
INSERT_UNIQUE_JOB = (
    INSERT_JOB
    + """
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
    AND state IN ('waiting', 'pending', 'processing', 'failed') DO NOTHING
RETURNING seq
"""
)
SELECT_KEY_HOLDER = """
SELECT id FROM jobs
WHERE unique_key = :key AND state IN ('waiting', 'pending', 'processing', 'failed')
"""
# The unfinished job other than :job that holds :job's key (a dlq retry may not take it).
SELECT_OTHER_KEY_HOLDER = """
SELECT h.id FROM jobs j JOIN jobs h ON h.unique_key = j.unique_key AND h.seq <> j.seq
WHERE j.id = :job AND h.state IN ('waiting', 'pending', 'processing', 'failed')
"""
SELECT_DEPENDENCY = "SELECT seq, state FROM jobs WHERE id = :job"
INSERT_DEPENDENCY = """
INSERT INTO job_deps (dep_seq, job_seq) VALUES (:dep_seq, :job_seq) ON CONFLICT DO NOTHING
"""
# A new job's dependencies not completed yet; with none, it is ready (`pending`) at once.
SET_DEPS_LEFT = """
UPDATE jobs SET deps_left = :left, state = CASE WHEN :left = 0 THEN 'pending' ELSE state END
WHERE seq = :seq
"""
# :job completed: each job waiting on it has one dependency less; the last one releases it.
RELEASE_DEPENDENTS = """
UPDATE jobs
SET deps_left = deps_left - 1,
    state = CASE WHEN deps_left <= 1 THEN 'pending' ELSE state END, updated_at = :now
WHERE state = 'waiting' AND seq IN (
    SELECT job_seq FROM job_deps WHERE dep_seq = (SELECT seq FROM jobs WHERE id = :job)
)
"""
# :job ended :state (dead or canceled): every job waiting on it, and on those, is canceled,
# each naming the dependency it waited on that ended.
CANCEL_DEPENDENTS = """
WITH RECURSIVE doomed(seq, cause, cause_state) AS (
    SELECT job_seq, :job, :state FROM job_deps
    WHERE dep_seq = (SELECT seq FROM jobs WHERE id = :job)
    UNION
    SELECT e.job_seq, j.id, 'canceled'
    FROM doomed JOIN jobs j ON j.seq = doomed.seq JOIN job_deps e ON e.dep_seq = doomed.seq
    WHERE j.state = 'waiting'
)
UPDATE jobs
SET state = 'canceled', worker_id = NULL, lease_until = NULL, updated_at = :now,
    last_error = (
        SELECT 'dependency ' || cause || ' ended ' || cause_state FROM doomed
        WHERE doomed.seq = jobs.seq ORDER BY cause LIMIT 1
    )
WHERE state = 'waiting' AND seq IN (SELECT seq FROM doomed)
"""

# Waiting jobs whose dependencies all completed, or one ended badly, without their release or
# cancel having happened (see chaining.settle_stranded): released here; the others listed.
RELEASE_STRANDED = """
UPDATE jobs SET state = 'pending', deps_left = 0, updated_at = :now
WHERE state = 'waiting' AND NOT EXISTS (
    SELECT 1 FROM job_deps e JOIN jobs d ON d.seq = e.dep_seq
    WHERE e.job_seq = jobs.seq AND d.state <> 'completed'
)
"""
SELECT_FAILED_DEPENDENCIES = """
SELECT DISTINCT d.id, d.state FROM jobs w
JOIN job_deps e ON e.job_seq = w.seq JOIN jobs d ON d.seq = e.dep_seq
WHERE w.state = 'waiting' AND d.state IN ('dead', 'canceled')
"""

# Which ids of a batch are taken, after its insert failed; {marks}: ?, ?, … (ID_CHUNK at most).
SELECT_EXISTING_IDS = "SELECT id FROM jobs WHERE id IN ({marks})"
# SQLite limits host parameters per statement; stay well under it when looking up ids.
ID_CHUNK = 500

SELECT_JOB = f"SELECT seq, {JOB_COLUMNS} FROM jobs WHERE id = :job"

SELECT_RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE job_seq = :seq ORDER BY run_id"

# {where}: JOB_FILTERS joined with AND, or `true`; {limit}: LIMIT or nothing.
LIST_JOBS = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {{where}} ORDER BY seq {{limit}}"
JOB_FILTERS = {"state": "state = :state", "queue": "queue = :queue"}
LIMIT = "LIMIT :limit"
OFFSET = "OFFSET :offset"

SELECT_STATE = "SELECT state FROM jobs WHERE id = :job"
SELECT_COMMAND = "SELECT command FROM jobs WHERE id = :job"

# Jobs per state: job_counts, kept by triggers (sqlite_schema.py), rather than the jobs.
COUNT_BY_STATE = "SELECT state, sum(jobs) FROM job_counts GROUP BY state"

# -- running ----------------------------------------------------------------------------------

# Queues no claim may take from (SPEC §8): paused, or with as many jobs running as their limit,
# counted through jobs_running (only running jobs: a handful of entries).
BLOCKED_QUEUES = """
SELECT name FROM queues INDEXED BY queues_set
WHERE (paused OR max_running > 0) AND (paused OR max_running <= (
    SELECT count(*) FROM jobs INDEXED BY jobs_running
    WHERE state = 'processing' AND queue = queues.name))
"""
SETTINGS_IN_FORCE = "EXISTS (SELECT 1 FROM queues WHERE paused OR max_running > 0)"

# The best ready job. With no queue paused or limited, one walk of jobs_ready (INDEXED BY:
# without statistics the planner prefers jobs_state and sorts every waiting job). Otherwise
# the best job of each queue that may run one, through jobs_queue_ready, then the best of
# those: a paused or full queue's backlog, however long, is never walked past. All inside the
# write transaction, so a limit is never exceeded. {queue_filter} and {name_filter} are empty
# or restrict to the worker's queues (queue_filter below).
CLAIM_JOB = f"""
UPDATE jobs
SET state = 'processing', attempts = attempts + 1, worker_id = :worker,
    lease_until = :now + :lease, updated_at = :now
WHERE seq = CASE WHEN NOT {SETTINGS_IN_FORCE} THEN (
    SELECT seq FROM jobs INDEXED BY jobs_ready
    WHERE state IN ('pending', 'failed') AND run_at <= :now {{queue_filter}}
    ORDER BY priority DESC, run_at, seq
    LIMIT 1
) ELSE (
    SELECT j.seq FROM (
        SELECT (SELECT r.seq FROM jobs AS r INDEXED BY jobs_queue_ready
                WHERE r.queue = q.name AND r.state IN ('pending', 'failed') AND r.run_at <= :now
                ORDER BY r.priority DESC, r.run_at, r.seq LIMIT 1) AS seq
        FROM queues q
        WHERE q.name NOT IN ({BLOCKED_QUEUES}) {{name_filter}}
    ) AS head JOIN jobs j ON j.seq = head.seq
    ORDER BY j.priority DESC, j.run_at, j.seq
    LIMIT 1
) END
RETURNING seq, {JOB_COLUMNS}
"""

QUEUE_LIMITED = "SELECT 1 FROM queues WHERE name = :queue AND max_running > 0"

# When the next job a claim could take is due: the earliest run_at of each queue that may
# run one (a paused or full queue's due jobs would wake an idle worker for nothing).
NEXT_RUN_AT = f"""
SELECT min(due) FROM (
    SELECT (SELECT min(run_at) FROM jobs INDEXED BY jobs_queue_due
            WHERE queue = q.name AND state IN ('pending', 'failed')) AS due
    FROM queues q
    WHERE q.name NOT IN ({BLOCKED_QUEUES}) {{name_filter}}
)
"""

INSERT_RUN = """
INSERT INTO runs (job_seq, attempt, worker_id, host, started_at)
VALUES (:seq, :attempt, :worker, :host, :now)
"""

SET_RUN_PID = "UPDATE runs SET pid = :pid WHERE run_id = :run_id"

# A claim's run still open is part of the fence: after a dlq retry, attempts start again from
# 0, and a claim from before it could otherwise match a new claim by the same worker id.
RUN_STILL_OPEN = """
NOT EXISTS (SELECT 1 FROM runs WHERE run_id = :run_id AND finished_at IS NOT NULL)
"""

EXTEND_LEASE = f"""
UPDATE jobs SET lease_until = :now + :lease
WHERE id = :job AND state = 'processing' AND worker_id = :worker AND attempts = :attempt
      AND {RUN_STILL_OPEN}
"""

WORKER_HEARTBEAT = """
UPDATE workers SET last_heartbeat = :now WHERE id = :worker
RETURNING stop_requested
    OR EXISTS (SELECT 1 FROM stop_request s WHERE s.requested_at > workers.started_at)
"""
# For a worker that registers again after its row was pruned: asked to stop meanwhile?
STOP_REQUESTED_SINCE = "SELECT EXISTS (SELECT 1 FROM stop_request WHERE requested_at > :started)"

# Fencing: the outcome only lands while this worker still holds this attempt. A :delay of
# NULL keeps run_at (a completed or dead job).
FINISH_JOB = f"""
UPDATE jobs
SET state = :state, run_at = CASE WHEN :delay IS NULL THEN run_at ELSE :now + :delay END,
    exit_code = :exit_code, last_error = :error,
    worker_id = NULL, lease_until = NULL, updated_at = :now
WHERE id = :job AND state = 'processing' AND worker_id = :worker AND attempts = :attempt
      AND {RUN_STILL_OPEN}
"""

# A run closed already (by cancel or by the rescuer) keeps that verdict; the tail still lands.
CLOSE_RUN = """
UPDATE runs
SET finished_at = coalesce(finished_at, min(:now, started_at + coalesce(:seconds, :now))),
    outcome = coalesce(outcome, :outcome),
    exit_code = coalesce(exit_code, :exit_code), error = coalesce(error, :error),
    output_tail = :tail
WHERE run_id = :run_id
"""

SELECT_EXPIRED = """
SELECT seq, id, attempts, max_retries, worker_id FROM jobs
WHERE state = 'processing' AND lease_until < :now
"""

RESCUE_JOB = """
UPDATE jobs
SET state = :state, run_at = :now + :delay, last_error = :error, exit_code = NULL,
    worker_id = NULL, lease_until = NULL, updated_at = :now
WHERE seq = :seq AND state = 'processing' AND attempts = :attempt AND lease_until < :now
"""

CLOSE_LOST_RUN = """
UPDATE runs SET finished_at = :now, outcome = 'lost', error = :error
WHERE job_seq = :seq AND attempt = :attempt AND finished_at IS NULL
"""

PRUNE_WORKERS = "DELETE FROM workers WHERE last_heartbeat < :now - :kept"

# -- user operations --------------------------------------------------------------------------

RETRY_DEAD = """
UPDATE jobs
SET state = 'pending', attempts = 0, run_at = :now, updated_at = :now,
    worker_id = NULL, lease_until = NULL
WHERE id = :job AND state = 'dead'
"""

SELECT_DEAD_IDS = "SELECT id FROM jobs WHERE state = 'dead' ORDER BY seq"

SELECT_FOR_CANCEL = "SELECT seq, state, attempts FROM jobs WHERE id = :job"

CANCEL_JOB = """
UPDATE jobs SET state = 'canceled', last_error = 'canceled', worker_id = NULL,
    lease_until = NULL, updated_at = :now
WHERE id = :job AND state IN ('waiting', 'pending', 'failed', 'processing')
"""

CLOSE_CANCELED_RUN = """
UPDATE runs SET finished_at = :now, outcome = 'canceled', error = 'canceled'
WHERE job_seq = :seq AND attempt = :attempt AND finished_at IS NULL
"""

SELECT_CONFIG = "SELECT key, value FROM config"
UPSERT_CONFIG = """
INSERT INTO config (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""
DELETE_CONFIG = "DELETE FROM config WHERE key = :key"
SELECT_CONFIG_KEY = "SELECT 1 FROM config WHERE key = :key"

# -- workers ----------------------------------------------------------------------------------

# A worker registering again (its row pruned after a long silence) keeps the start time it
# had (:started, None the first time): `status` shows when it started, not when it came back.
REGISTER_WORKER = """
INSERT INTO workers (id, host, pid, started_at, last_heartbeat)
VALUES (:id, :host, :pid, coalesce(:started, :now), :now)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat
RETURNING started_at
"""
UNREGISTER_WORKER = "DELETE FROM workers WHERE id = :worker"
# A worker's current job is derived, not stored: whatever it holds in `processing`.
LIVE_WORKERS = """
SELECT w.id, w.host, w.pid, w.started_at, w.last_heartbeat,
       (SELECT j.id FROM jobs j WHERE j.state = 'processing' AND j.worker_id = w.id LIMIT 1)
FROM workers w
WHERE w.last_heartbeat >= :now - :lease ORDER BY w.started_at, w.id
"""
NOTE_STOP_REQUEST = """
INSERT INTO stop_request (id, requested_at) VALUES (1, :now)
ON CONFLICT (id) DO UPDATE SET requested_at = excluded.requested_at
"""
REQUEST_STOP = """
UPDATE workers SET stop_requested = 1 WHERE last_heartbeat >= :now - :lease RETURNING id
"""


def queue_filter(queues: Sequence[str] | None) -> tuple[dict[str, str], dict]:
    """The {queue_filter} (on jobs) and {name_filter} (on queues) of CLAIM_JOB and NEXT_RUN_AT
    for these queues, and their parameters."""
    if not queues:
        return {"queue_filter": "", "name_filter": ""}, {}
    names = {f"q{index}": name for index, name in enumerate(queues)}
    marks = ", ".join(f":{key}" for key in names)
    filters = {"queue_filter": f"AND queue IN ({marks})", "name_filter": f"AND q.name IN ({marks})"}
    return filters, names
