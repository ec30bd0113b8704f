"""The asyncpg pool every service builds in its composition root."""

from __future__ import annotations

import asyncpg
import asyncpg.pool

from contracts.runtime.settings import Settings


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """A pool whose connections use the settings' schema (tests use a fresh one)."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        server_settings={"search_path": settings.db_schema, "application_name": "conveyor"},
        command_timeout=60,
        timeout=5,  # connect timeout: a PostgreSQL that does not answer fails fast
    )
    assert pool is not None
    return pool


# What handlers receive: a pooled connection, or a plain one in tests and scripts.
DbConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# What read-only queries accept: a connection, or the pool (which lends one per query).
Executor = DbConnection | asyncpg.Pool


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection in the settings' schema (commands and scripts; services use the pool)."""
    return await asyncpg.connect(
        settings.database_url, server_settings={"search_path": settings.db_schema}, timeout=5
    )
