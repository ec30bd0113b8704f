"""Helpers for the batch tests: services in-process, stream reads, the exactness check."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis

from aggregator import points_sql
from contracts import streams
from contracts.messages import RecordPoints
from contracts.service import Service
from contracts.settings import Settings


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


async def stored_equals_recomputed(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        stored = [tuple(r) for r in await points_sql.stored(conn=conn)]
        again = [tuple(r) for r in await points_sql.recompute(conn=conn)]
    return stored == again


async def aggregated(pool: asyncpg.Pool, batch_id: str | None = None) -> int:
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(count), 0) FROM minute_aggregates"
            " WHERE $1::text IS NULL OR batch_id = $1",
            batch_id,
        )
    )
