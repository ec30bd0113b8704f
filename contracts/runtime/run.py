"""Run a service's ASGI app under uvicorn: `python -m mover` and friends call `serve`."""

from __future__ import annotations

import logging
import os
from typing import Any

import uvicorn

from contracts.runtime import logs


def serve(app: Any, *, name: str, default_port: int) -> None:
    """Serve `app` on `$<NAME>_PORT` (or `default_port`); SIGTERM and Ctrl-C drain it.

    Logging is `contracts.runtime.logs` (one format for every service); uvicorn gets
    `log_config=None` so that it adds no handler or colours of its own.
    """
    logs.setup(name)
    host = os.environ.get(f"{name.upper()}_HOST", "127.0.0.1")
    port = int(os.environ.get(f"{name.upper()}_PORT", str(default_port)))
    logging.getLogger("conveyor").info(
        "%s: /healthz, /readyz and /metrics on http://%s:%d", name, host, port
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
    )
