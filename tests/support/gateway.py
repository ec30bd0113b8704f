"""An in-process client for the gateway, for tests of gateway routes.

Why not litestar's `AsyncTestClient`: it runs the app in a second thread and
blocks the caller's event loop for the length of each request, so anything the
test itself serves on that loop (a fake upstream, a TCP forwarder) stalls, and
the app's Redis/asyncpg clients live on another loop than the test's. Here the
app runs in the caller's loop, as under uvicorn.

The lifespan runs in a task of its own because anyio (under Litestar's lifespan)
requires it to be entered and exited in one task, and pytest fixtures set up and
tear down in different tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import cast

import httpx
from litestar import Litestar

from contracts.runtime.settings import Settings

__all__ = ["serve"]


def write_key(settings: Settings) -> str:
    """The secret of the first read+write key in the settings (tests call with it)."""
    for entry in settings.api_keys.split(";"):
        parts = entry.strip().split(":")
        if len(parts) == 3 and "write" in parts[2].split("+"):
            return parts[1]
    raise LookupError("the settings hold no read+write API key")


@contextlib.asynccontextmanager
async def serve(
    app: Litestar, base_url: str = "http://gateway", key: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Start `app` (lifespan included), yield a client for it, then shut it down.

    The client sends `key` (default: the app's first read+write key) as its bearer."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run())
    startup = asyncio.create_task(started.wait())
    await asyncio.wait({lifespan, startup}, return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        startup.cancel()
        lifespan.result()  # the start-up error
    try:
        # Litestar types its ASGI scope more narrowly than httpx's generic ASGI alias.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        secret: str = key or write_key(cast(Settings, app.state.settings))
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, headers=headers
        ) as client:
            yield client
    finally:
        stop.set()
        await lifespan
