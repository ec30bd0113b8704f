"""Jobs: moves accepted as jobs, read, cancelled, retried and followed over HTTP.

- `routes.py`: GET /jobs, /jobs/stats, /jobs/{id}; POST /jobs/{id}/cancel, /retry;
  GET /jobs/{id}/events (SSE, on gateway.feeds). Its SQL: `sql.py`.
- `moves.py`: POST /moves, a copy or move of companies as a job (MoveCompanies and
  JobQueued appended together, then the command recorded in the outbox). Its SQL:
  `sql.py` (the outbox) and gateway/catalog/sql.py (what the request names must exist).
- `views.py`: what those routes answer with (`JobView`, `JobStats`).
- `sql.py`: every statement the gateway runs on `jobs` (reads: the aggregator's
  projection is its only writer) and on `accepted_moves` (the gateway's outbox, which
  it alone writes), `conn=` passed in.
- `outbox.py`: the moves accepted, as an outbox; one not planned past its bound is
  published again (a lifespan step of the app).
- `follow.py`: the `conveyor move` / `conveyor follow` verbs, a terminal client of
  these routes (POST /moves, the job's SSE feed).
"""
