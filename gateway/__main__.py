"""`python -m gateway`: serve the gateway with uvicorn.

Settings come from the environment (`contracts.runtime.settings.Settings.from_env`); the
address from `GATEWAY_HOST` (default 127.0.0.1) and `GATEWAY_PORT` (default 8000).
On SIGTERM the live feeds end every open SSE stream at once (a `closed` event with a
`retry:` hint; clients resume elsewhere with Last-Event-ID), uvicorn stops accepting
and gives open requests `CONVEYOR_SHUTDOWN_GRACE_S` seconds, then the lifespan closes
Redis and the pool. (Uvicorn waits for open connections before the lifespan's
shutdown, so streams are ended from the signal, not from there.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from types import FrameType

import uvicorn
from litestar import Litestar

from contracts.runtime import logs
from contracts.runtime.settings import Settings
from gateway.app import create_app

log = logging.getLogger("gateway")


class Server(uvicorn.Server):
    """Uvicorn, ending the app's SSE streams as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.app = app
        self.closing: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        feeds = getattr(self.app.state, "feeds", None)
        if feeds is not None and self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(feeds.close())
        super().handle_exit(sig, frame)


def main() -> None:
    settings = Settings.from_env()
    app = create_app(settings)
    logs.setup("gateway")  # after create_app: it replaces Litestar's default logging config
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = int(os.environ.get("GATEWAY_PORT", "8000"))
    base = f"http://{host}:{port}"
    log.info("settings: %s", settings.redacted())
    log.info("API %s/  OpenAPI %s/schema  metrics %s/metrics", base, base, base)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        server_header=False,
        log_config=None,
    )
    # Ctrl-C: uvicorn shuts down, then re-raises SIGINT; `uvicorn.run` swallows the
    # KeyboardInterrupt that follows, and so does this (no traceback in the log).
    with contextlib.suppress(KeyboardInterrupt):
        Server(config, app).run()


if __name__ == "__main__":
    main()
