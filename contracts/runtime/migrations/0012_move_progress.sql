-- Issue 12: what each applied chunk counted, folded into its job's row (move_jobs) by
-- whoever finds it due (mover/chunks.py), instead of every chunk updating that row in
-- its own transaction: chunks applied side by side no longer queue on the job's row,
-- each holding it until its commit. A row is inserted in the chunk's transaction and
-- deleted by the fold that adds it to the job (one statement), so it counts once.
-- No foreign key to move_jobs: its check would lock the job's row (FOR KEY SHARE) from
-- every chunk; move_jobs rows are never deleted.
CREATE TABLE move_progress (
    job_id      text             NOT NULL,
    chunk       text             NOT NULL,  -- the ApplyChunk that applied it
    pages       int              NOT NULL,
    rows        int              NOT NULL,
    added       int              NOT NULL,
    removed     int              NOT NULL,
    row_cost_us double precision NOT NULL,
    PRIMARY KEY (job_id, chunk)
);

INSERT INTO runtime_grants (service, table_name, privileges, why) VALUES
    ('mover', 'move_progress', 'SELECT, INSERT, DELETE', 'chunks'' counts, folded into jobs');
SELECT conveyor_grant();
