"""Apply a message's effect once per consumer group, in the effect's own transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from contracts.runtime.db import DbConnection

Effect = Callable[[DbConnection], Awaitable[None]]
# effect_many(conn, first): `first` is the set of message ids applied for the first time.
EffectMany = Callable[[DbConnection, set[str]], Awaitable[None]]

# Sorted by message id, so two transactions recording overlapping ids lock them in one order.
_RECORD_MANY = """
INSERT INTO applied_messages (consumer_group, message_id, stream, entry_id)
SELECT $1, m.message_id, $2, m.entry_id
FROM unnest($3::text[], $4::text[]) AS m(message_id, entry_id)
ORDER BY m.message_id
ON CONFLICT (consumer_group, message_id) DO NOTHING
RETURNING message_id
"""


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


async def apply_many(
    pool: asyncpg.Pool,
    *,
    group: str,
    stream: str,
    entries: Sequence[tuple[str, str]],
    effect: EffectMany,
) -> set[str]:
    """Record every (message_id, entry_id) and run `effect` for those recorded for the first
    time, all in one transaction; return their message ids (the others were applied already).

    Message ids must be distinct (the caller keeps the first entry of each). A failure
    anywhere rolls back every record and every effect.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            _RECORD_MANY, group, stream, [m for m, _ in entries], [e for _, e in entries]
        )
        first = {row["message_id"] for row in rows}
        if first:
            await effect(conn, first)
        return first


async def forget_applied_before(pool: asyncpg.Pool, *, days: int) -> int:
    """Drop idempotency records older than `days` (longer than any stream's retention)."""
    status = await pool.execute(
        "DELETE FROM applied_messages WHERE applied_at < now() - make_interval(days => $1)", days
    )
    return int(status.split()[-1])
