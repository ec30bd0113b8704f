"""Batches: start, stop, push points, read and follow a batch over HTTP.

- `routes.py`: POST /batches, PUT/DELETE /batches/{id}, POST /batches/{id}/stop;
  the batches router (mounts the routes below). SQL: `sql.py` (latest run).
- `points.py`: POST /batches/{id}/points (pushed points, parsed and bounded).
- `reads.py`: GET /batches, /batches/{id}, /batches/{id}/agg. SQL: `sql.py`.
- `feed.py`: GET /batches/{id}/events (SSE on gateway.feeds, cursors as /events).
- `views.py`: what they answer with (`BatchView`, `BatchPage`) and `one_batch`, the
  lookup (Redis for whether it runs, `sql.py` for the rest; 404).
- `ids.py`: what a batch id may be; `deps.py`: the BatchRegistry, clock, metrics.
- `sql.py`: every statement on batch_runs, minute_aggregates and points the gateway
  runs (reads only; the services write), `pool=` passed in.
"""
