"""Apply a message's effect once per consumer group, in the effect's own transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from contracts.runtime.db import DbConnection

Effect = Callable[[DbConnection], Awaitable[None]]


async def apply_once(
    pool: asyncpg.Pool,
    *,
    group: str,
    message_id: str,
    stream: str,
    entry_id: str,
    effect: Effect,
) -> bool:
    """Run `effect` and record `message_id` in one transaction; False if already applied.

    Two deliveries of one message racing each other: the second INSERT waits on
    the first's row lock, then finds it and does nothing.
    """
    async with pool.acquire() as conn, conn.transaction():
        first = await conn.fetchval(
            """INSERT INTO applied_messages (consumer_group, message_id, stream, entry_id)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (consumer_group, message_id) DO NOTHING
               RETURNING true""",
            group,
            message_id,
            stream,
            entry_id,
        )
        if not first:
            return False
        await effect(conn)
        return True


async def forget_applied_before(pool: asyncpg.Pool, *, days: int) -> int:
    """Drop idempotency records older than `days` (longer than any stream's retention)."""
    status = await pool.execute(
        "DELETE FROM applied_messages WHERE applied_at < now() - make_interval(days => $1)", days
    )
    return int(status.split()[-1])
