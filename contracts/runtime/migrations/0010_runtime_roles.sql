-- Issue 11: least privilege. Each service connects as its own role, conveyor_<service>
-- (deploy/postgres/init/10-conveyor-roles.sh makes them, with conveyor_migrate, which
-- runs `conveyor migrate` and so owns the schema and every table). This migration grants
-- each runtime role what its SQL does and nothing else (README "PostgreSQL roles").
--
-- runtime_grants is the one list of those privileges; conveyor_grant() makes the roles'
-- privileges in this schema equal to it (USAGE on the schema; on each table: revoke all,
-- then grant its row). It skips a role that does not exist: `make run` and the tests run
-- as the superuser, with no runtime role. A migration that adds a table adds its rows
-- here and calls conveyor_grant() again. Default privileges (ALTER DEFAULT PRIVILEGES)
-- are not used: they would give every new table the same grants, unread by anyone, and
-- they apply only to tables the migration role creates, not to the superuser's.
--
-- Role names are conveyor_<service> followed by the setting conveyor.role_suffix (empty
-- unless set; the init script sets it on the migration role): two stacks in one cluster,
-- or a test's own roles, as roles are cluster-wide.
CREATE TABLE runtime_grants (
    service    text NOT NULL CHECK (service IN ('gateway', 'ingest', 'mover', 'aggregator')),
    table_name text NOT NULL,
    privileges text NOT NULL
        CHECK (privileges ~ '^(SELECT|INSERT|UPDATE|DELETE)(, (SELECT|INSERT|UPDATE|DELETE))*$'),
    why        text NOT NULL,
    PRIMARY KEY (service, table_name)
);

INSERT INTO runtime_grants (service, table_name, privileges, why) VALUES
    -- The gateway reads what it serves; it writes its outbox and the lists' names.
    ('gateway', 'companies',         'SELECT',                 'GET /companies, a move''s ids'),
    ('gateway', 'collections',       'SELECT, INSERT, UPDATE', 'POST and PATCH /collections'),
    ('gateway', 'memberships',       'SELECT',                 'a list''s companies, selections'),
    ('gateway', 'jobs',              'SELECT',                 'GET /jobs (the aggregator writes)'),
    ('gateway', 'job_events',        'SELECT',                 'GET /jobs/{id}/timeline, stats'),
    ('gateway', 'accepted_moves',    'SELECT, INSERT, UPDATE', 'its outbox: accept, sweep'),
    ('gateway', 'batch_runs',        'SELECT',                 'GET /batches'),
    ('gateway', 'minute_aggregates', 'SELECT',                 'GET /batches/{id}/agg'),
    ('gateway', 'points',            'SELECT',                 'late points of a batch'),
    -- Ingest stores raw points (COPY) and records what it applied.
    ('ingest', 'applied_messages',   'SELECT, INSERT, DELETE', 'idempotency, forgetting old'),
    ('ingest', 'points',             'INSERT',                 'COPY of RecordPoints'),
    -- The mover plans and applies jobs: its own state, the lists it copies between.
    ('mover', 'applied_messages',    'SELECT, INSERT, DELETE', 'idempotency, forgetting old'),
    ('mover', 'move_jobs',           'SELECT, INSERT, UPDATE', 'its jobs'),
    ('mover', 'move_pages',          'SELECT, INSERT, UPDATE', 'its plans'),
    ('mover', 'memberships',         'SELECT, INSERT, DELETE', 'copy, move, remove'),
    ('mover', 'collections',         'SELECT, DELETE',         'a list deleted by its job'),
    -- The aggregator owns the projections: jobs, their timeline, batches, minutes.
    ('aggregator', 'applied_messages',  'SELECT, INSERT, DELETE', 'idempotency, forgetting old'),
    ('aggregator', 'jobs',              'SELECT, INSERT, UPDATE', 'projection of jobs.events'),
    ('aggregator', 'job_events',        'SELECT, INSERT',         'a job''s timeline'),
    ('aggregator', 'batch_runs',        'SELECT, INSERT, UPDATE', 'BatchStarted, BatchStopped'),
    ('aggregator', 'minute_aggregates', 'SELECT, INSERT, UPDATE', 'per-minute aggregates');

CREATE FUNCTION conveyor_grant() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    suffix  text := coalesce(current_setting('conveyor.role_suffix', true), '');
    svc     text;
    grantee text;
    t       record;
BEGIN
    FOREACH svc IN ARRAY ARRAY['gateway', 'ingest', 'mover', 'aggregator'] LOOP
        grantee := 'conveyor_' || svc || suffix;
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = grantee);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), grantee);
        FOR t IN SELECT relname FROM pg_class
                 WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'v')
        LOOP
            EXECUTE format('REVOKE ALL ON TABLE %I.%I FROM %I', current_schema(), t.relname, grantee);
        END LOOP;
        FOR t IN SELECT g.table_name, g.privileges FROM runtime_grants g WHERE g.service = svc
        LOOP
            EXECUTE format('GRANT %s ON TABLE %I.%I TO %I',
                           t.privileges, current_schema(), t.table_name, grantee);
        END LOOP;
        RETURN NEXT grantee;
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor_grant() IS
    'grants each existing runtime role what runtime_grants lists, and nothing else; returns them';
REVOKE EXECUTE ON FUNCTION conveyor_grant() FROM PUBLIC;

SELECT conveyor_grant();
