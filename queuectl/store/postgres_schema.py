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
    # SPEC §8: see sqlite_schema.py's migration 5. Run counts are spread over a few shards
    # per (queue, outcome), so that workers closing runs at once seldom wait on one row.
    """
    CREATE TABLE queuectl_queues (
        name        text    PRIMARY KEY,
        paused      boolean NOT NULL DEFAULT false,
        max_running bigint  NOT NULL DEFAULT 0
    );
    INSERT INTO queuectl_queues (name) SELECT DISTINCT queue FROM queuectl_jobs;
    CREATE INDEX queuectl_queues_set ON queuectl_queues (name) WHERE paused OR max_running > 0;
    -- Once per statement (a COPY of a million jobs included), over the rows it added.
    CREATE FUNCTION queuectl_note_queues() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO queuectl_queues (name) SELECT DISTINCT queue FROM added
        ON CONFLICT (name) DO NOTHING;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER queuectl_jobs_queue_known AFTER INSERT ON queuectl_jobs
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT
        EXECUTE FUNCTION queuectl_note_queues();
    CREATE INDEX queuectl_jobs_queue_ready ON queuectl_jobs (queue, priority DESC, run_at, seq)
        WHERE state IN ('pending', 'failed');
    DROP INDEX queuectl_jobs_due;
    CREATE INDEX queuectl_jobs_queue_due ON queuectl_jobs (queue, run_at)
        WHERE state IN ('pending', 'failed');
    CREATE TABLE queuectl_run_counts (
        queue   text             NOT NULL,
        outcome text             NOT NULL,
        shard   smallint         NOT NULL,
        runs    bigint           NOT NULL,
        seconds double precision NOT NULL,
        PRIMARY KEY (queue, outcome, shard)
    );
    INSERT INTO queuectl_run_counts (queue, outcome, shard, runs, seconds)
    SELECT j.queue,
           CASE WHEN r.outcome <> 'exited' THEN r.outcome
                WHEN r.exit_code = 0 THEN 'completed' ELSE 'failed' END AS label,
           0, count(*), coalesce(sum(r.finished_at - r.started_at), 0)
    FROM queuectl_runs r JOIN queuectl_jobs j ON j.seq = r.job_seq
    WHERE r.outcome IS NOT NULL
    GROUP BY j.queue, label;
    CREATE FUNCTION queuectl_count_run() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO queuectl_run_counts AS c (queue, outcome, shard, runs, seconds)
        SELECT j.queue,
               CASE WHEN NEW.outcome <> 'exited' THEN NEW.outcome
                    WHEN NEW.exit_code = 0 THEN 'completed' ELSE 'failed' END,
               pg_backend_pid() % 8, 1, coalesce(NEW.finished_at - NEW.started_at, 0)
        FROM queuectl_jobs j WHERE j.seq = NEW.job_seq
        ON CONFLICT (queue, outcome, shard)
        DO UPDATE SET runs = c.runs + 1, seconds = c.seconds + excluded.seconds;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER queuectl_runs_counted AFTER UPDATE OF outcome ON queuectl_runs
        FOR EACH ROW WHEN (OLD.outcome IS NULL AND NEW.outcome IS NOT NULL)
        EXECUTE FUNCTION queuectl_count_run();
    CREATE TABLE queuectl_schedules (
        name             text             PRIMARY KEY,
        cron             text             NOT NULL,
        tz               text             NOT NULL,
        command          text             NOT NULL,
        queue            text             NOT NULL,
        priority         bigint           NOT NULL,
        max_retries      bigint,
        timeout          double precision,
        overlap          text             NOT NULL,
        paused           boolean          NOT NULL DEFAULT false,
        created_at       double precision NOT NULL,
        next_run_at      double precision,
        last_enqueued_at double precision,
        last_job_id      text
    );
    CREATE INDEX queuectl_schedules_next ON queuectl_schedules (next_run_at)
        WHERE next_run_at IS NOT NULL;
    -- Prune: runs and dependency edges go with their job through the foreign keys' cascades.
    CREATE TABLE queuectl_chores (
        name   text             PRIMARY KEY,
        ran_at double precision NOT NULL
    );
    """,
    # SPEC §9: the run-time histogram; see sqlite_schema.py's migration 6. The function that
    # counts a closing run now adds it to its bucket too (same trigger, same statement),
    # sharded as run_counts is. Closing runs wait while this migrates (the lock), so that no
    # run is counted by the old function after the backfill has read the runs. The jobs are
    # locked first, as a claim or a finish takes them (jobs, then runs): the next migration
    # counts them, and an older worker still running must find no lock order to deadlock on.
    """
    LOCK TABLE queuectl_jobs, queuectl_runs IN SHARE ROW EXCLUSIVE MODE;
    CREATE TABLE queuectl_run_durations (
        queue   text             NOT NULL,
        le      double precision NOT NULL,
        shard   smallint         NOT NULL,
        runs    bigint           NOT NULL,
        seconds double precision NOT NULL,
        PRIMARY KEY (queue, le, shard)
    );
    CREATE FUNCTION queuectl_duration_bucket(d double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN d <= 0.1 THEN 0.1 WHEN d <= 0.5 THEN 0.5 WHEN d <= 1 THEN 1
                    WHEN d <= 5 THEN 5 WHEN d <= 10 THEN 10 WHEN d <= 30 THEN 30
                    WHEN d <= 60 THEN 60 WHEN d <= 300 THEN 300 WHEN d <= 1800 THEN 1800
                    WHEN d <= 3600 THEN 3600 ELSE 'Infinity'::double precision END
    $$;
    INSERT INTO queuectl_run_durations (queue, le, shard, runs, seconds)
    WITH closed AS (
        SELECT j.queue, coalesce(r.finished_at - r.started_at, 0) AS d, 1 AS n
        FROM queuectl_runs r JOIN queuectl_jobs j ON j.seq = r.job_seq
        WHERE r.outcome IS NOT NULL
    ), present AS (
        SELECT queue, count(*) AS n, sum(d) AS d FROM closed GROUP BY queue
    ), counted AS (
        SELECT queue, sum(runs) AS n, sum(seconds) AS d FROM queuectl_run_counts GROUP BY queue
    ), gone AS (
        SELECT c.queue, c.d - coalesce(p.d, 0) AS d, c.n - coalesce(p.n, 0) AS n
        FROM counted c LEFT JOIN present p ON p.queue = c.queue
        WHERE c.n > coalesce(p.n, 0)
    ), observed AS (
        SELECT queue, d, d AS mean, n FROM closed
        UNION ALL
        SELECT queue, d, d / n, n FROM gone
    )
    SELECT queue, queuectl_duration_bucket(mean) AS bucket, 0, sum(n), sum(d)
    FROM observed GROUP BY queue, bucket;
    CREATE OR REPLACE FUNCTION queuectl_count_run() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        d double precision := coalesce(NEW.finished_at - NEW.started_at, 0);
    BEGIN
        INSERT INTO queuectl_run_counts AS c (queue, outcome, shard, runs, seconds)
        SELECT j.queue,
               CASE WHEN NEW.outcome <> 'exited' THEN NEW.outcome
                    WHEN NEW.exit_code = 0 THEN 'completed' ELSE 'failed' END,
               pg_backend_pid() % 8, 1, d
        FROM queuectl_jobs j WHERE j.seq = NEW.job_seq
        ON CONFLICT (queue, outcome, shard)
        DO UPDATE SET runs = c.runs + 1, seconds = c.seconds + excluded.seconds;
        INSERT INTO queuectl_run_durations AS h (queue, le, shard, runs, seconds)
        SELECT j.queue, queuectl_duration_bucket(d), pg_backend_pid() % 8, 1, d
        FROM queuectl_jobs j WHERE j.seq = NEW.job_seq
        ON CONFLICT (queue, le, shard)
        DO UPDATE SET runs = h.runs + 1, seconds = h.seconds + excluded.seconds;
        RETURN NULL;
    END
    $$;
    """,
    # Jobs by queue and state (SPEC §9: the overview and /metrics within 100 ms at a million
    # jobs, where counting them takes 130-250 ms here). Triggers append each change to
    # queuectl_job_count_changes, never update a row: a claim moves one job from pending to
    # processing and the finish that follows from processing to completed, so shared counter
    # rows would have concurrent workers wait on each other and, taken in opposite orders,
    # deadlock. Folding the changes into queuectl_job_counts (queue_settings.fold_job_counts:
    # readers, and workers every few seconds) keeps the rows to add up few. Inserts and deletes
    # are counted once per statement (a bulk add, a prune batch), moves once per row. Jobs stay
    # locked from the count until the triggers exist (older workers may still be running).
    """
    LOCK TABLE queuectl_jobs IN SHARE ROW EXCLUSIVE MODE;
    CREATE TABLE queuectl_job_counts (
        queue text   NOT NULL,
        state text   NOT NULL,
        jobs  bigint NOT NULL,
        PRIMARY KEY (queue, state)
    );
    INSERT INTO queuectl_job_counts (queue, state, jobs)
    SELECT queue, state, count(*) FROM queuectl_jobs GROUP BY queue, state;
    CREATE TABLE queuectl_job_count_changes (
        queue text   NOT NULL,
        state text   NOT NULL,
        jobs  bigint NOT NULL
    );
    CREATE FUNCTION queuectl_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO queuectl_job_count_changes (queue, state, jobs)
        SELECT queue, state, count(*) FROM added GROUP BY queue, state;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER queuectl_jobs_counted_in AFTER INSERT ON queuectl_jobs
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT
        EXECUTE FUNCTION queuectl_count_added();
    CREATE FUNCTION queuectl_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO queuectl_job_count_changes (queue, state, jobs)
        SELECT queue, state, -count(*) FROM removed GROUP BY queue, state;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER queuectl_jobs_counted_out AFTER DELETE ON queuectl_jobs
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
        EXECUTE FUNCTION queuectl_count_removed();
    CREATE FUNCTION queuectl_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO queuectl_job_count_changes (queue, state, jobs)
        VALUES (OLD.queue, OLD.state, -1), (NEW.queue, NEW.state, 1);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER queuectl_jobs_counted_moved AFTER UPDATE OF state, queue ON queuectl_jobs
        FOR EACH ROW
        WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue IS DISTINCT FROM NEW.queue)
        EXECUTE FUNCTION queuectl_count_moved();
    """,
    # The dashboard's runs per minute over the last hour (SPEC §9): a range of this index.
    """
    CREATE INDEX queuectl_runs_finished ON queuectl_runs (finished_at);
    """,
]
