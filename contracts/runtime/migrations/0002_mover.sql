-- Companies, collections (lists) and memberships; the jobs projection; the mover's own job state.

CREATE TABLE companies (
    id         bigint PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX companies_name ON companies (lower(name) text_pattern_ops);

CREATE TABLE collections (
    id         uuid PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    collection_id uuid        NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    company_id    bigint      NOT NULL REFERENCES companies (id),
    added_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, company_id)
);
CREATE INDEX memberships_company ON memberships (company_id);

-- Every long operation, as projected from jobs.events by the aggregator (the gateway
-- inserts the queued row when it accepts the command, so a job is readable at once).
CREATE TABLE jobs (
    id              text PRIMARY KEY,
    kind            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
                        ('queued', 'running', 'completed', 'failed', 'cancelled')),
    priority        int         NOT NULL CHECK (priority BETWEEN 1 AND 5),
    attempts        int         NOT NULL DEFAULT 0,
    max_attempts    int         NOT NULL,
    not_before      timestamptz,
    source          uuid,
    target          uuid,
    params          jsonb       NOT NULL DEFAULT '{}',
    total           int,
    done            int         NOT NULL DEFAULT 0,
    added           int         NOT NULL DEFAULT 0,
    already_present int         NOT NULL DEFAULT 0,
    removed         int         NOT NULL DEFAULT 0,
    error           text,
    feed_from       text        NOT NULL DEFAULT '0-0',  -- jobs.events id to replay from
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_status ON jobs (status, created_at DESC);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_source ON jobs (source);
CREATE INDEX jobs_target ON jobs (target);

-- The mover's working state: a job's plan, cut into pages of company ids, and its run.
CREATE TABLE move_jobs (
    job_id          text PRIMARY KEY,
    source          uuid        NOT NULL,
    target          uuid        NOT NULL,
    mode            text        NOT NULL CHECK (mode IN ('copy', 'move')),
    priority        int         NOT NULL,
    max_attempts    int         NOT NULL,
    not_before      timestamptz,
    lane            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
                        ('scheduled', 'running', 'completed', 'failed', 'cancelled')),
    run             int         NOT NULL DEFAULT 1,
    pages           int         NOT NULL,
    pages_done      int         NOT NULL DEFAULT 0,
    total           int         NOT NULL,
    done            int         NOT NULL DEFAULT 0,
    added           int         NOT NULL DEFAULT 0,
    already_present int         NOT NULL DEFAULT 0,
    removed         int         NOT NULL DEFAULT 0,
    row_cost_us     double precision,  -- measured cost of one row, sizes the next chunks
    error           text,
    started_by      text,  -- the message that started the current run
    finished_by     text,  -- the message that completed, failed or cancelled it
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX move_jobs_due ON move_jobs (not_before) WHERE status = 'scheduled';

CREATE TABLE move_pages (
    job_id       text     NOT NULL REFERENCES move_jobs (job_id) ON DELETE CASCADE,
    page         int      NOT NULL,
    company_ids  bigint[] NOT NULL,
    status       text     NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    released_run int      NOT NULL DEFAULT 0,  -- the run in which it was put in a chunk
    released_by  text,                          -- the message that released it
    chunk        int,                           -- first page of the chunk it went in
    attempts     int      NOT NULL DEFAULT 0,
    error        text,
    PRIMARY KEY (job_id, page)
);
