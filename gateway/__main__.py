"""`python -m gateway`: serve the gateway with uvicorn.

Settings come from the environment (`contracts.settings.Settings.from_env`); the
address from `GATEWAY_HOST` (default 127.0.0.1) and `GATEWAY_PORT` (default 8000).
On SIGTERM uvicorn stops accepting, gives open requests (SSE streams included)
`CONVEYOR_SHUTDOWN_GRACE_S` seconds, then the lifespan closes Redis and the pool.
"""

from __future__ import annotations

import logging
import math
import os

import uvicorn

from contracts.settings import Settings
from gateway.app import create_app

log = logging.getLogger("gateway")


def main() -> None:
    settings = Settings.from_env()
    app = create_app(settings)  # also sets up logging (Litestar's default config, root logger)
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = int(os.environ.get("GATEWAY_PORT", "8000"))
    base = f"http://{host}:{port}"
    log.info("settings: %s", settings.redacted())
    log.info("API %s/  OpenAPI %s/schema  metrics %s/metrics", base, base, base)
    uvicorn.run(
        app,
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        server_header=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
