-- Issue 9: one writer for `jobs`, the aggregator's projection of jobs.events.
--
-- The gateway no longer inserts a job's queued row. It keeps the moves it accepted in
-- its own outbox, written by the gateway alone: the MoveCompanies it published (JSON,
-- as appended), where the JobQueued published with it sits in jobs.events, and when.
-- A GET right after the 202 renders the job from here until the projection has its
-- row; the outbox sweep publishes again what Redis lost (the command, and the
-- JobQueued when no row was projected from it) until the job is planned or over.
CREATE TABLE accepted_moves (
    job_id       text PRIMARY KEY,
    command      text        NOT NULL,  -- the MoveCompanies JSON, as published
    queued_entry text        NOT NULL,  -- jobs.events entry id of its JobQueued
    accepted_at  timestamptz NOT NULL,  -- the command's `at` (the job's created_at)
    settled_at   timestamptz            -- the projection showed it planned, or over
);
CREATE INDEX accepted_moves_unsettled ON accepted_moves (accepted_at) WHERE settled_at IS NULL;

-- The sweep read `jobs` for rows still queued; it reads accepted_moves now.
DROP INDEX jobs_queued;

-- Moves accepted before this migration: their command, as POST /moves built it from
-- the row it wrote (retry sends it again); settled unless still queued.
INSERT INTO accepted_moves (job_id, command, queued_entry, accepted_at, settled_at)
SELECT id,
       json_build_object(
           'type', 'MoveCompanies', 'id', id, 'at', created_at, 'job_id', id,
           'source', source, 'target', target, 'mode', kind, 'selection', params -> 'selection',
           'priority', priority, 'max_attempts', max_attempts, 'not_before', not_before
       )::text,
       feed_from, created_at, CASE WHEN status <> 'queued' THEN now() END
FROM jobs
WHERE kind IN ('copy', 'move') AND source IS NOT NULL AND target IS NOT NULL
  AND params ? 'selection'
ON CONFLICT (job_id) DO NOTHING;
