-- Issue 8: one poison minute never stalls its neighbours.
--
-- A minute that fails to close (its MinuteClosed cannot be made or published for a
-- reason of its own, e.g. a sum no double can hold, written by something that
-- bypassed the gateway's bounds) is set aside with the error instead of being
-- retried every second ahead of every other minute. New points for the minute
-- clear the error, so it is tried again with its new aggregate.
ALTER TABLE minute_aggregates ADD COLUMN close_error text;

DROP INDEX minute_aggregates_open;
CREATE INDEX minute_aggregates_open ON minute_aggregates (minute)
    WHERE NOT closed AND close_error IS NULL;
