"""Helpers for the batch tests: services in-process, stream reads, the exactness check."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from aggregator.app import create_app as create_aggregator
from contracts import streams
from contracts.messages import RecordPoints
from contracts.runtime.service import Service
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from ingest.app import create_app as create_ingest
from tests.support.gateway import serve
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE

Stack = tuple[httpx.AsyncClient, Service, Service]


def named(settings: Settings, name: str) -> Settings:
    """The same settings under another consumer name (two services in one process)."""
    return msgspec.structs.replace(settings, consumer_name=f"{settings.consumer_name}-{name}")


@contextlib.asynccontextmanager
async def running(create_app: Any, settings: Settings) -> AsyncIterator[Service]:
    """A worker service (ingest, aggregator) started in this process."""
    app, service = create_app(settings)
    async with app:
        yield service


async def recorded(redis: aioredis.Redis, settings: Settings) -> list[tuple[str, RecordPoints]]:
    """Every RecordPoints on `ingest.points`, with its entry id."""
    name = streams.INGEST_POINTS.prefixed(settings.stream_prefix).name
    decoder = streams.INGEST_POINTS.decoder()
    entries = await redis.xrange(name)
    out = []
    for entry_id, fields in entries:
        message = decoder.decode(fields[b"__data__"])
        assert isinstance(message, RecordPoints)
        out.append((entry_id.decode(), message))
    return out


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


# The per-minute aggregates as the aggregator keeps them, and computed afresh from the
# raw on-time points (same columns): equal when the aggregates are exact.
STORED = """
SELECT batch_id, minute, count, sum, min, max
FROM minute_aggregates
WHERE $1::text IS NULL OR batch_id = $1
ORDER BY 1, 2
"""

RECOMPUTED = """
SELECT batch_id, date_trunc('minute', ts, 'UTC') AS minute, count(*) AS count,
       sum(key::numeric) AS sum, min(key) AS min, max(key) AS max
FROM points
WHERE NOT late AND ($1::text IS NULL OR batch_id = $1)
GROUP BY 1, 2
ORDER BY 1, 2
"""


async def stored_equals_recomputed(pool: asyncpg.Pool, batch_id: str | None = None) -> bool:
    async with pool.acquire() as conn:
        stored = [tuple(r) for r in await conn.fetch(STORED, batch_id)]
        again = [tuple(r) for r in await conn.fetch(RECOMPUTED, batch_id)]
    return stored == again


async def aggregated(pool: asyncpg.Pool, batch_id: str | None = None) -> int:
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(count), 0) FROM minute_aggregates"
            " WHERE $1::text IS NULL OR batch_id = $1",
            batch_id,
        )
    )


@contextlib.asynccontextmanager
async def batch_stack(
    settings: Settings, clock: Callable[[], datetime] | None = None
) -> AsyncIterator[Stack]:
    """A gateway client with an ingest and an aggregator service, all in this process;
    `clock` replaces the gateway's (arrival times of pushed points, "now" of /agg)."""
    gateway = create_gateway(settings)
    if clock is not None:
        gateway.state.clock = clock
    async with (
        running(create_ingest, named(settings, "ingest")) as ingest,
        running(create_aggregator, named(settings, "aggregator")) as aggregator,
        serve(gateway) as client,
    ):
        yield client, ingest, aggregator


@contextlib.asynccontextmanager
async def served_batch(settings: Settings, batch_id: str) -> AsyncIterator[httpx.AsyncClient]:
    """Ingest and aggregator in this process, the gateway on a real socket (SSE is read
    as a client reads it), and a push-only batch `batch_id` started: a write client."""
    async with (
        running(create_ingest, named(settings, "ingest")),
        running(create_aggregator, named(settings, "aggregator")),
        uvicorn_serve(create_gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE) as http,
    ):
        assert (await http.put(f"/batches/{batch_id}", json={"rate": 0})).status_code == 201
        yield http


async def drained(redis: aioredis.Redis, stream: str, group: str) -> bool:
    """`group` has read and acknowledged every entry of `stream`."""
    try:
        groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    except aioredis.ResponseError:
        return False
    info = groups.get(group)
    return info is not None and info["pending"] == 0 and info["lag"] == 0
