"""Jobs: moves accepted as jobs, read, cancelled, retried and followed over HTTP.

- `routes.py`: GET /jobs, /jobs/stats, /jobs/{id}; POST /jobs/{id}/cancel, /retry;
  GET /jobs/{id}/events (SSE, on gateway.feeds). Its SQL: `sql.py`.
- `moves.py`: POST /moves, a copy or move of companies as a job (MoveCompanies and
  JobQueued appended together, then the queued row written). Its SQL: `sql.py`
  (the job row) and gateway/catalog/sql.py (what the request names must exist).
- `views.py`: what those routes answer with (`JobView`, `JobStats`).
- `sql.py`: every statement on the `jobs` table the gateway runs, `conn=` passed in.
- `outbox.py`: the job row as an outbox; a move still queued past its bound is sent
  to the mover again (a lifespan step of the app).
"""
