"""The PostgreSQL backend's schema: its numbered migrations, applied in order by
postgres_conn.py, each once (the version is kept in the store). Never edit one that has shipped:
add the next. The statements that use the tables are postgres_sql.py's.
"""

# Migration N brings the schema from version N-1 to N. Never edit one that has shipped.
MIGRATIONS = [
    """
    CREATE TABLE queuectl_jobs (
        seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id          text             NOT NULL UNIQUE,
        command     text             NOT NULL,
        state       text             NOT NULL,
        attempts    integer          NOT NULL DEFAULT 0,
        max_retries bigint           NOT NULL,
        priority    bigint           NOT NULL DEFAULT 0,
        queue       text             NOT NULL,
        run_at      double precision NOT NULL,
        timeout     double precision NOT NULL,
        created_at  double precision NOT NULL,
        updated_at  double precision NOT NULL,
        exit_code   bigint,  -- Windows exit codes are unsigned 32-bit
        last_error  text,
        worker_id   text,
        lease_until double precision
    );
    -- The ready-job lookup only ever walks waiting jobs, however many finished ones pile up.
    CREATE INDEX queuectl_jobs_ready ON queuectl_jobs (priority DESC, run_at, seq)
        WHERE state IN ('pending', 'failed');
    CREATE INDEX queuectl_jobs_due ON queuectl_jobs (run_at) WHERE state IN ('pending', 'failed');
    CREATE INDEX queuectl_jobs_lease ON queuectl_jobs (lease_until) WHERE state = 'processing';
    CREATE INDEX queuectl_jobs_worker ON queuectl_jobs (worker_id) WHERE state = 'processing';
    CREATE INDEX queuectl_jobs_state ON queuectl_jobs (state, seq);
    CREATE INDEX queuectl_jobs_queue ON queuectl_jobs (queue, seq);

    CREATE TABLE queuectl_runs (
        run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_seq     bigint           NOT NULL REFERENCES queuectl_jobs (seq) ON DELETE CASCADE,
        attempt     integer          NOT NULL,
        worker_id   text             NOT NULL,
        host        text             NOT NULL,
        pid         bigint,
        started_at  double precision NOT NULL,
        finished_at double precision,
        outcome     text,
        exit_code   bigint,
        error       text,
        output_tail text             NOT NULL DEFAULT '',
        token       text  -- the claim's own id, to find it again after a lost COMMIT
    );
    CREATE INDEX queuectl_runs_job ON queuectl_runs (job_seq, run_id);

    CREATE TABLE queuectl_workers (
        id             text             PRIMARY KEY,
        host           text             NOT NULL,
        pid            bigint           NOT NULL,
        started_at     double precision NOT NULL,
        last_heartbeat double precision NOT NULL,
        stop_requested boolean          NOT NULL DEFAULT false
    );

    CREATE TABLE queuectl_config (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    """,
    # When `worker stop` was last asked: every worker started before then stops, even one
    # that was away (frozen, cut off) so long that its row was pruned (SPEC §5).
    """
    CREATE TABLE queuectl_stop_request (
        id           integer          PRIMARY KEY CHECK (id = 1),
        requested_at double precision NOT NULL
    );
    """,
    # SPEC §7: see sqlite_schema.py's migration 4.
    """
    ALTER TABLE queuectl_jobs ADD COLUMN unique_key text,
        ADD COLUMN cwd text, ADD COLUMN env_vars text, ADD COLUMN after_ids text,
        ADD COLUMN deps_left integer NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX queuectl_jobs_unique_key ON queuectl_jobs (unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('waiting', 'pending', 'processing', 'failed');
    CREATE TABLE queuectl_job_deps (
        dep_seq bigint NOT NULL REFERENCES queuectl_jobs (seq) ON DELETE CASCADE,
        job_seq bigint NOT NULL REFERENCES queuectl_jobs (seq) ON DELETE CASCADE,
        PRIMARY KEY (dep_seq, job_seq)
    );
    CREATE INDEX queuectl_job_deps_job ON queuectl_job_deps (job_seq);
    """,
]
