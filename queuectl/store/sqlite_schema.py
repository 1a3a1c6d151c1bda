"""The SQLite backend's schema: its numbered migrations, applied in order by
sqlite_conn.py, each once (the version is kept in the store). Never edit one that has shipped:
add the next. The statements that use the tables are sqlite_sql.py's.
"""

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
]
