"""The SQLite backend's schema: its numbered migrations, applied in order by
sqlite_conn.py, each once (the version is kept in the store). Never edit one that has shipped:
add the next. The statements that use the tables are sqlite_sql.py's.
"""

import sqlite3
from collections.abc import Iterator


def statements(script: str) -> Iterator[str]:
    """The statements of one migration, in order: split at each `;` that ends a complete
    statement (a trigger's body holds `;` of its own)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


# Migration N brings the schema from user_version N-1 to N. Never edit one that has shipped.
MIGRATIONS = [
    """
    CREATE TABLE jobs (
        seq         INTEGER PRIMARY KEY,
        id          TEXT    NOT NULL UNIQUE,
        command     TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        max_retries INTEGER NOT NULL,
        priority    INTEGER NOT NULL DEFAULT 0,
        queue       TEXT    NOT NULL,
        run_at      REAL    NOT NULL,
        timeout     REAL    NOT NULL,
        created_at  REAL    NOT NULL,
        updated_at  REAL    NOT NULL,
        exit_code   INTEGER,
        last_error  TEXT,
        worker_id   TEXT,
        lease_until REAL
    );
    -- The ready-job lookup only ever walks waiting jobs, however many finished ones pile up.
    CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq)
        WHERE state IN ('pending', 'failed');
    CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('pending', 'failed');
    CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'processing';
    CREATE INDEX jobs_worker ON jobs (worker_id) WHERE state = 'processing';
    CREATE INDEX jobs_state ON jobs (state, seq);
    CREATE INDEX jobs_queue ON jobs (queue, seq);

    CREATE TABLE runs (
        run_id      INTEGER PRIMARY KEY,
        job_seq     INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        worker_id   TEXT    NOT NULL,
        host        TEXT    NOT NULL,
        pid         INTEGER,
        started_at  REAL    NOT NULL,
        finished_at REAL,
        outcome     TEXT,
        exit_code   INTEGER,
        error       TEXT,
        output_tail TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_job ON runs (job_seq, run_id);

    CREATE TABLE workers (
        id             TEXT PRIMARY KEY,
        host           TEXT    NOT NULL,
        pid            INTEGER NOT NULL,
        started_at     REAL    NOT NULL,
        last_heartbeat REAL    NOT NULL,
        stop_requested INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE config (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # Every claim and every outcome updated these two, and nothing needs them: the few
    # `processing` rows that rescue and `status` look at are found through jobs_state.
    """
    DROP INDEX jobs_lease;
    DROP INDEX jobs_worker;
    """,
    # When `worker stop` was last asked: every worker started before then stops, even one
    # that was away (frozen, cut off) so long that its row was pruned (SPEC §5).
    """
    CREATE TABLE stop_request (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        requested_at REAL    NOT NULL
    );
    """,
    # SPEC §7. `after_ids` and `env_vars` are JSON text as given (shown by `show`); the edges
    # in job_deps and the count of dependencies not completed yet (`deps_left`) are what
    # releasing and cancelling dependents use. The unique index is the unique_key rule itself:
    # at most one unfinished job per key, whoever inserts at the same moment.
    """
    ALTER TABLE jobs ADD COLUMN unique_key TEXT;
    ALTER TABLE jobs ADD COLUMN cwd TEXT;
    ALTER TABLE jobs ADD COLUMN env_vars TEXT;
    ALTER TABLE jobs ADD COLUMN after_ids TEXT;
    ALTER TABLE jobs ADD COLUMN deps_left INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('waiting', 'pending', 'processing', 'failed');
    CREATE TABLE job_deps (
        dep_seq INTEGER NOT NULL,
        job_seq INTEGER NOT NULL,
        PRIMARY KEY (dep_seq, job_seq)
    ) WITHOUT ROWID;
    """,
    # SPEC §8. `queues` names every queue that has had a job (a trigger adds it) or a setting:
    # the claim walks it to take each open queue's best job through jobs_queue_ready, so a
    # paused or full queue's backlog is never scanned past (jobs_queue_due, likewise, for the
    # idle wait's next due time; it replaces jobs_due). `run_counts` keeps the runs by queue
    # and outcome apart from the jobs (metrics; they survive prune), counted by a trigger as
    # each run closes, whichever statement closes it. `schedules`: next_run_at is the next
    # fire time to enqueue.
    """
    CREATE TABLE queues (
        name        TEXT    PRIMARY KEY,
        paused      INTEGER NOT NULL DEFAULT 0,
        max_running INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO queues (name) SELECT DISTINCT queue FROM jobs;
    -- Every claim asks whether any queue is paused or limited: one lookup, however many queues.
    CREATE INDEX queues_set ON queues (name) WHERE paused OR max_running > 0;
    -- A limited queue's running jobs, counted by every claim while a limit is in force.
    CREATE INDEX jobs_running ON jobs (queue) WHERE state = 'processing';
    CREATE TRIGGER jobs_queue_known AFTER INSERT ON jobs
    BEGIN
        INSERT OR IGNORE INTO queues (name) VALUES (NEW.queue);
    END;
    -- `state` too, so that looking up each queue's best job reads the index alone.
    CREATE INDEX jobs_queue_ready ON jobs (queue, priority DESC, run_at, seq, state)
        WHERE state IN ('pending', 'failed');
    DROP INDEX jobs_due;
    CREATE INDEX jobs_queue_due ON jobs (queue, run_at) WHERE state IN ('pending', 'failed');
    CREATE TABLE run_counts (
        queue   TEXT    NOT NULL,
        outcome TEXT    NOT NULL,
        runs    INTEGER NOT NULL,
        seconds REAL    NOT NULL,
        PRIMARY KEY (queue, outcome)
    ) WITHOUT ROWID;
    INSERT INTO run_counts (queue, outcome, runs, seconds)
    SELECT j.queue,
           CASE WHEN r.outcome <> 'exited' THEN r.outcome
                WHEN r.exit_code = 0 THEN 'completed' ELSE 'failed' END AS label,
           count(*), total(r.finished_at - r.started_at)
    FROM runs r JOIN jobs j ON j.seq = r.job_seq
    WHERE r.outcome IS NOT NULL
    GROUP BY j.queue, label;
    CREATE TRIGGER runs_counted AFTER UPDATE OF outcome ON runs
    WHEN OLD.outcome IS NULL AND NEW.outcome IS NOT NULL
    BEGIN
        INSERT INTO run_counts (queue, outcome, runs, seconds)
        SELECT queue,
               CASE WHEN NEW.outcome <> 'exited' THEN NEW.outcome
                    WHEN NEW.exit_code = 0 THEN 'completed' ELSE 'failed' END,
               1, coalesce(NEW.finished_at - NEW.started_at, 0)
        FROM jobs WHERE seq = NEW.job_seq
        ON CONFLICT (queue, outcome)
        DO UPDATE SET runs = runs + 1, seconds = seconds + excluded.seconds;
    END;
    CREATE TABLE schedules (
        name             TEXT    PRIMARY KEY,
        cron             TEXT    NOT NULL,
        tz               TEXT    NOT NULL,
        command          TEXT    NOT NULL,
        queue            TEXT    NOT NULL,
        priority         INTEGER NOT NULL,
        max_retries      INTEGER,
        timeout          REAL,
        overlap          TEXT    NOT NULL,
        paused           INTEGER NOT NULL DEFAULT 0,
        created_at       REAL    NOT NULL,
        next_run_at      REAL,
        last_enqueued_at REAL,
        last_job_id      TEXT
    );
    CREATE INDEX schedules_next ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
    -- Prune (SPEC §8). Deleting a job deletes its runs and its dependency edges, as
    -- PostgreSQL's foreign keys cascade: a job's seq is reused once the newest job is deleted,
    -- and a new job must inherit no run or edge. job_deps_job finds the edges of a dependent
    -- (as queuectl_job_deps_job does; RELEASE_STRANDED uses it too). `chores`: when a task done
    -- at most once per interval for the whole store (the workers' prune by `retention`) last
    -- ran, taken with a compare-and-set.
    CREATE INDEX job_deps_job ON job_deps (job_seq);
    CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs
    BEGIN
        DELETE FROM runs WHERE job_seq = OLD.seq;
        DELETE FROM job_deps WHERE dep_seq = OLD.seq;
        DELETE FROM job_deps WHERE job_seq = OLD.seq;
    END;
    CREATE TABLE chores (
        name   TEXT PRIMARY KEY,
        ran_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # SPEC §9: the run-time histogram, queuectl_job_run_duration_seconds. Each closed run adds
    # to its queue's bucket (`le`, the smallest bound at or above the run's time; 9e999 is
    # +Inf), counted by runs_counted itself (rebuilt here), so that a run is in run_counts and
    # here by the same trigger in the same statement: the histogram's count is always the sum of
    # the queue's run counts, and prune lowers neither. The bounds are store/run_stats.py's
    # RUN_DURATION_BOUNDS (a test holds them together). A store migrated with runs pruned
    # already: the runs still present go into their buckets, and the runs run_counts counted
    # but that are gone go, per queue, into the bucket of their mean time (run_counts keeps
    # their total), so that the count and the sum still agree with run_counts.
    """
    CREATE TABLE run_durations (
        queue   TEXT    NOT NULL,
        le      REAL    NOT NULL,
        runs    INTEGER NOT NULL,
        seconds REAL    NOT NULL,
        PRIMARY KEY (queue, le)
    ) WITHOUT ROWID;
    INSERT INTO run_durations (queue, le, runs, seconds)
    WITH closed AS (
        SELECT j.queue, coalesce(r.finished_at - r.started_at, 0) AS d, 1 AS n
        FROM runs r JOIN jobs j ON j.seq = r.job_seq
        WHERE r.outcome IS NOT NULL
    ), present AS (
        SELECT queue, count(*) AS n, total(d) AS d FROM closed GROUP BY queue
    ), counted AS (
        SELECT queue, sum(runs) AS n, total(seconds) AS d FROM run_counts GROUP BY queue
    ), gone AS (
        SELECT c.queue, c.d - coalesce(p.d, 0) AS d, c.n - coalesce(p.n, 0) AS n
        FROM counted c LEFT JOIN present p ON p.queue = c.queue
        WHERE c.n > coalesce(p.n, 0)
    ), observed AS (
        SELECT queue, d, d AS mean, n FROM closed
        UNION ALL
        SELECT queue, d, d / n, n FROM gone
    )
    SELECT queue,
           CASE WHEN mean <= 0.1 THEN 0.1 WHEN mean <= 0.5 THEN 0.5 WHEN mean <= 1 THEN 1
                WHEN mean <= 5 THEN 5 WHEN mean <= 10 THEN 10 WHEN mean <= 30 THEN 30
                WHEN mean <= 60 THEN 60 WHEN mean <= 300 THEN 300 WHEN mean <= 1800 THEN 1800
                WHEN mean <= 3600 THEN 3600 ELSE 9e999 END AS bucket,
           sum(n), total(d)
    FROM observed GROUP BY queue, bucket;
    DROP TRIGGER runs_counted;
    CREATE TRIGGER runs_counted AFTER UPDATE OF outcome ON runs
    WHEN OLD.outcome IS NULL AND NEW.outcome IS NOT NULL
    BEGIN
        INSERT INTO run_counts (queue, outcome, runs, seconds)
        SELECT queue,
               CASE WHEN NEW.outcome <> 'exited' THEN NEW.outcome
                    WHEN NEW.exit_code = 0 THEN 'completed' ELSE 'failed' END,
               1, coalesce(NEW.finished_at - NEW.started_at, 0)
        FROM jobs WHERE seq = NEW.job_seq
        ON CONFLICT (queue, outcome)
        DO UPDATE SET runs = runs + 1, seconds = seconds + excluded.seconds;
        INSERT INTO run_durations (queue, le, runs, seconds)
        SELECT queue,
               CASE WHEN d <= 0.1 THEN 0.1 WHEN d <= 0.5 THEN 0.5 WHEN d <= 1 THEN 1
                    WHEN d <= 5 THEN 5 WHEN d <= 10 THEN 10 WHEN d <= 30 THEN 30
                    WHEN d <= 60 THEN 60 WHEN d <= 300 THEN 300 WHEN d <= 1800 THEN 1800
                    WHEN d <= 3600 THEN 3600 ELSE 9e999 END,
               1, d
        FROM (SELECT queue, coalesce(NEW.finished_at - NEW.started_at, 0) AS d
              FROM jobs WHERE seq = NEW.job_seq)
        WHERE true
        ON CONFLICT (queue, le)
        DO UPDATE SET runs = runs + 1, seconds = seconds + excluded.seconds;
    END;
    """,
    # Jobs by queue and state (SPEC §9: the overview and /metrics within 100 ms at a million
    # jobs), kept by triggers in the transaction that adds, moves or deletes a job, so that
    # reading them is a few rows where counting the jobs read them all (0.7 s at a million).
    # SQLite has one writer at a time: nobody waits on these rows longer than on the jobs.
    """
    CREATE TABLE job_counts (
        queue TEXT    NOT NULL,
        state TEXT    NOT NULL,
        jobs  INTEGER NOT NULL,
        PRIMARY KEY (queue, state)
    ) WITHOUT ROWID;
    INSERT INTO job_counts (queue, state, jobs)
    SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;
    CREATE TRIGGER jobs_counted_in AFTER INSERT ON jobs
    BEGIN
        INSERT INTO job_counts (queue, state, jobs) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET jobs = jobs + 1;
    END;
    CREATE TRIGGER jobs_counted_out AFTER DELETE ON jobs
    BEGIN
        UPDATE job_counts SET jobs = jobs - 1 WHERE queue = OLD.queue AND state = OLD.state;
    END;
    CREATE TRIGGER jobs_counted_moved AFTER UPDATE OF state, queue ON jobs
    WHEN OLD.state <> NEW.state OR OLD.queue <> NEW.queue
    BEGIN
        UPDATE job_counts SET jobs = jobs - 1 WHERE queue = OLD.queue AND state = OLD.state;
        INSERT INTO job_counts (queue, state, jobs) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET jobs = jobs + 1;
    END;
    """,
    # The dashboard's runs per minute over the last hour (SPEC §9) reads runs by finish time:
    # a range of this index, however long the run history.
    """
    CREATE INDEX runs_finished ON runs (finished_at);
    """,
]
