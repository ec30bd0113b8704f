"""The gateway: REST and SSE in front of the streams, one package per domain.

- `app.py`: the composition root (`create_app`); `resources.py`: the lifespan (Redis,
  the asyncpg pool, feeds) and app-level dependencies; `__main__.py`: the server.
- `frontdoor/`: auth, keys, problems, limits, metrics, health (every request).
- `feeds/`: the one SSE mechanism and cursor format; GET /events.
- `jobs/`: /jobs, POST /moves, the jobs outbox. `batches/`: /batches. `catalog/`:
  /collections, /companies. `stats.py`: GET /stats (reads each domain's SQL).

Each domain has its routes, views and SQL; a route never imports another domain's
routes (import contracts in pyproject.toml).
"""
