"""The front door: what every request passes through, whatever its domain.

- `auth.py`: the ASGI middleware (who: a key or an SSE ticket; may they: scopes;
  not too often: rate limit, SSE streams per key) and POST /auth/tickets.
- `keys.py`: API keys from the settings (`name:secret:scopes` lists).
- `problems.py`: every error as problem+json, the 503 for an unreachable store.
- `fields.py`: bounds shared by the routes' bodies and queries (422 naming the field).
- `paging.py`: `Page`, `Offset`, `Limit` for list routes.
- `idempotency.py`: the `Idempotency-Key` header and its binding to one request.
- `metrics.py`: HTTP metrics on the app's own registry; GET /metrics.
- `health.py`: GET /healthz, GET /readyz.
- `devkey.py`: `conveyor devkey`, a development key for `make run`.

No SQL here; nothing here imports a domain (jobs, batches, catalog, feeds).
"""
