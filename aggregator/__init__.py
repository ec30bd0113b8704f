"""The aggregator service: the projections the gateway reads.

From a stream to its handler in one hop:

- `jobs.events` -> `jobs.py` (the `jobs` table: its only writer; order-insensitive),
  SQL in `jobs_sql.py`;
- `points` (PointsRecorded) -> `points.py` (exact per-minute aggregates) and
  `batches.events` (BatchStarted/Stopped) -> `points.py` (the runs), SQL in
  `points_sql.py`, wired in `points_wiring.py`;
- closing minutes (MinuteClosed on `batches.events`) -> `minute_closer.py`, run
  beside the consumers.

`app.py` is the composition root.
"""
