"""The runtime every service shares: how a process runs, not what the services agree on.

- `settings`: the settings read from the environment once at start-up;
- `db`: the asyncpg pool and connections;
- `service`: the composition root of the worker services (broker, pool, metrics,
  delivery, `/healthz`, `/readyz`, `/metrics`);
- `run`, `logs`, `readiness`, `tasks`: serving under uvicorn, the one log format,
  the readiness probes, stopping background tasks;
- `batch_registry`: the batch-admission state in Redis that the gateway and ingest share;
- `migrations/`: the SQL migrations (shipped in the package) and their runner;
- `cli`, `commands`: the `conveyor` command line, built from the command table in
  `pyproject.toml` (`conveyor.commands` entry points), and its verbs on the stores.
"""
