"""Shared fixtures: real Redis and PostgreSQL, a fresh schema and stream prefix per test."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts.runtime import migrations
from contracts.runtime.db import create_pool
from contracts.runtime.settings import Settings
from tests.support.keys import API_KEYS
from tests.support.outages import OwnRedis
from tests.support.processes import free_port, kill
from tests.support.services import ServiceUrls, service_urls


@pytest.fixture(scope="session")
def urls() -> Iterator[ServiceUrls]:
    with service_urls() as found:
        yield found


@pytest.fixture
async def schema(urls: ServiceUrls) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema with every migration applied; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(urls.database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        await conn.execute(f'SET search_path TO "{name}"')
        await migrations.apply(conn)
        yield name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts: append them, and they are killed at its end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        kill(proc)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """A `redis-server` of the test's own on a free port (stopped at the end)."""
    server = OwnRedis(free_port(), tmp_path)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def stream_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings(urls: ServiceUrls, schema: str, stream_prefix: str) -> Settings:
    """Settings for one test: its own schema and streams, short delivery timings."""
    return Settings(
        redis_url=urls.redis_url,
        database_url=urls.database_url,
        db_schema=schema,
        stream_prefix=stream_prefix,
        claim_idle_ms=1_000,
        max_deliveries=3,
        shutdown_grace_s=5.0,
        poll_ms=100,
        db_pool_max=5,
        api_keys=API_KEYS,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{settings.stream_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    db = await create_pool(settings)
    try:
        yield db
    finally:
        await db.close()
