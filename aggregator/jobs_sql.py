"""The jobs projection's SQL; each function takes the connection as `conn=`."""

from __future__ import annotations

import asyncpg
import msgspec

from contracts.db import DbConnection
from contracts.messages import Counts, JobQueued

RETURNING = "RETURNING kind, status"


async def insert_queued(*, conn: DbConnection, event: JobQueued) -> None:
    """The gateway usually inserted this row already; this covers the case it could not."""
    await conn.execute(
        """INSERT INTO jobs (id, kind, status, priority, max_attempts, not_before, source,
               target, params, created_at)
           VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (id) DO NOTHING""",
        event.job_id, event.kind, event.priority, event.max_attempts, event.not_before,
        event.source, event.target, msgspec.json.encode(event.params).decode(), event.at,
    )  # fmt: skip


async def started(*, conn: DbConnection, job_id: str, attempt: int, counts: Counts) -> None:
    await conn.execute(
        """UPDATE jobs SET status = 'running', attempts = greatest(attempts, $2),
               total = $3, done = $4, added = $5, already_present = $6, removed = $7,
               error = NULL, finished_at = NULL, started_at = coalesce(started_at, now()),
               updated_at = now()
           WHERE id = $1""",
        job_id, attempt, counts.total, counts.done, counts.added, counts.already_present,
        counts.removed,
    )  # fmt: skip


async def progressed(*, conn: DbConnection, job_id: str, counts: Counts) -> None:
    """Counts only grow; a progress event that arrives after a newer one changes nothing."""
    await conn.execute(
        """UPDATE jobs SET done = greatest(done, $2), added = greatest(added, $3),
               already_present = greatest(already_present, $4),
               removed = greatest(removed, $5), total = coalesce(total, $6),
               status = CASE WHEN status = 'queued' THEN 'running' ELSE status END,
               updated_at = now()
           WHERE id = $1""",
        job_id, counts.done, counts.added, counts.already_present, counts.removed, counts.total,
    )  # fmt: skip


async def finished(
    *, conn: DbConnection, job_id: str, status: str, counts: Counts, error: str | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE jobs SET status = $2, error = $3, total = $4, done = greatest(done, $5),
               added = greatest(added, $6), already_present = greatest(already_present, $7),
               removed = greatest(removed, $8), finished_at = now(), updated_at = now()
           WHERE id = $1 {RETURNING}""",
        job_id, status, error, counts.total, counts.done, counts.added, counts.already_present,
        counts.removed,
    )  # fmt: skip
