"""The reference for the intake benchmark: a bare Litestar endpoint that does one XADD.

uvicorn tests.perf.bare_intake:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar, Request, post

STREAM = os.environ.get("BARE_STREAM", "bare.intake")


@asynccontextmanager
async def _redis(app: Litestar) -> AsyncIterator[None]:
    app.state.redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    yield
    await app.state.redis.aclose()


@post("/moves", status_code=202)
async def accept(request: Request[Any, Any, Any]) -> dict[str, str]:
    entry = await request.app.state.redis.xadd(STREAM, {b"__data__": await request.body()})
    return {"entry": entry.decode()}


app = Litestar(route_handlers=[accept], lifespan=[_redis])
