-- Issue 8: jobs that cannot be stuck, a projection that is order-insensitive.

-- `scheduled`: planned, waiting for its not_before (contracts/jobs.py lists the statuses).
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled'));
-- feed_from: the jobs.events entry id of the newest event the projection applied to
-- the row (forward only), so a job's feed continues right after the row it snapshots.
COMMENT ON COLUMN jobs.feed_from IS 'newest jobs.events entry id applied to this row';
-- The gateway's outbox sweep looks for jobs accepted long ago and still queued.
CREATE INDEX jobs_queued ON jobs (created_at) WHERE status = 'queued';

-- A mover row may exist before its job is planned: a cancel that came first, or a
-- MoveCompanies that could not be applied (dead-lettered). `command` keeps the JSON of
-- the job's MoveCompanies (so a retry can plan it); `planned` says whether its pages
-- were cut. Such a row has no source, target or mode until its command is planned.
ALTER TABLE move_jobs ALTER COLUMN source DROP NOT NULL,
                      ALTER COLUMN target DROP NOT NULL,
                      ALTER COLUMN mode DROP NOT NULL,
                      ADD COLUMN planned boolean NOT NULL DEFAULT true,
                      ADD COLUMN command text;
