-- Issue 12: POST /moves asks whether a job is deleting its target list, in the same
-- statement as its other checks (gateway/jobs/sql.py: `admission`). Among the moves
-- accepted and not settled yet, the deletions of a list are found by this index
-- instead of reading every unsettled command (thousands while a burst of moves waits
-- for its plan).
CREATE INDEX accepted_moves_deleting ON accepted_moves ((command::jsonb ->> 'source'))
    WHERE settled_at IS NULL AND command::jsonb ->> 'mode' = 'delete';
