-- A job's timeline: every jobs.events entry the aggregator's projection applied to a job
-- (JobQueued, JobScheduled, JobStarted, JobProgressed, JobCompleted/JobFailed/JobCancelled,
-- across attempts), kept here because jobs.events is trimmed by its retention.
--
-- Written by the jobs projection alone (aggregator/jobs.py), in the transaction that
-- updates the job's row; the delivery rules' applied_messages skips a redelivered
-- message, and the key below skips an entry written already. The stream order is
-- (entry_ms, entry_seq), the two numbers of the entry id. Every JobProgressed is kept
-- (at most ~10/s a job); GET /jobs/{id}/timeline reads it a page at a time.
CREATE TABLE job_events (
    job_id    text        NOT NULL,
    entry_ms  bigint      NOT NULL,  -- jobs.events entry id "<ms>-<seq>", as two numbers
    entry_seq bigint      NOT NULL,
    type      text        NOT NULL,  -- the event's tag: JobQueued, JobStarted, ...
    attempt   integer     NOT NULL,  -- 0: before the first attempt (JobQueued)
    at        timestamptz NOT NULL,  -- when the producer said it happened
    status    text        NOT NULL,  -- the job's status right after it, in stream order
    counts    jsonb       NOT NULL DEFAULT '{}',
    error     text,
    PRIMARY KEY (job_id, entry_ms, entry_seq)
);
-- GET /jobs/stats/minutes: attempts that ended, by the minute they ended in.
CREATE INDEX job_events_ended ON job_events (at)
    WHERE type IN ('JobCompleted', 'JobFailed', 'JobCancelled');
