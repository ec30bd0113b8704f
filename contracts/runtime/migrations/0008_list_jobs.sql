-- Lists are removed from and deleted by jobs: a mover job's mode may be `remove` (take
-- the selected companies out of the source list) or `delete` (take them all out, then
-- delete the list's row in the transaction of the last chunk). Neither has a target
-- (already nullable since 0004).
ALTER TABLE move_jobs DROP CONSTRAINT move_jobs_mode_check;
ALTER TABLE move_jobs ADD CONSTRAINT move_jobs_mode_check
    CHECK (mode IN ('copy', 'move', 'remove', 'delete'));
