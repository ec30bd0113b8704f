"""Jobs: moves accepted as jobs, read, cancelled, retried and followed over HTTP.

- `routes.py`: GET /jobs, /jobs/stats, /jobs/{id}; POST /jobs/{id}/cancel, /retry;
  GET /jobs/{id}/events (SSE, on gateway.feeds). Its SQL: `sql.py`.
- `moves.py`: POST /moves, a copy or move of companies as a job. `removals.py`: POST
  /removals and DELETE /collections/{id}, a removal of companies from a list and a
  list's deletion as jobs. What the three share is `accepting.py` (the selection's
  checks, MoveCompanies and JobQueued appended together, the command recorded in the
  outbox, Idempotency-Key replays). Their SQL: `sql.py` (`admission`: what the
  request names exists and no job deletes the target, in one statement; the outbox).
- `views.py`: what those routes answer with (`JobView`, `JobStats`).
- `sql.py`: every statement the gateway runs on `jobs` (reads: the aggregator's
  projection is its only writer) and on `accepted_moves` (the gateway's outbox, which
  it alone writes), `conn=` passed in.
- `outbox.py`: the moves accepted, as an outbox; one not planned past its bound is
  published again (a lifespan step of the app).
- `follow.py`: the `conveyor move` / `conveyor follow` verbs, a terminal client of
  these routes (POST /moves, the job's SSE feed).
"""
