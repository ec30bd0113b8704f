"""SQL for the jobs the gateway reads (the aggregator's projection) and the queued row
it writes when it accepts a command; each function takes `conn=`."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec

from contracts.runtime.db import Executor

COLUMNS = """id, kind, status, priority, attempts, max_attempts, not_before, source, target,
    total, done, added, already_present, removed, error, feed_from, created_at, started_at,
    finished_at, updated_at"""
SORTS = {
    "created_at": "created_at ASC, id ASC",
    "-created_at": "created_at DESC, id DESC",
    "priority": "priority ASC, created_at DESC, id DESC",
    "-priority": "priority DESC, created_at DESC, id DESC",
    "status": "status ASC, created_at DESC, id DESC",
}


async def insert_queued(
    *,
    conn: Executor,
    job_id: str,
    kind: str,
    priority: int,
    max_attempts: int,
    not_before: datetime | None,
    source: uuid.UUID,
    target: uuid.UUID,
    params: dict[str, object],
    feed_from: str,
) -> asyncpg.Record:
    """Write the job's queued row unless it exists; the row either way (one round trip,
    two when the aggregator's projection wrote it meanwhile)."""
    row = await conn.fetchrow(
        f"""WITH new AS (
                INSERT INTO jobs (id, kind, status, priority, max_attempts, not_before, source,
                    target, params, feed_from)
                VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS})
            SELECT * FROM new
            UNION ALL SELECT {COLUMNS} FROM jobs WHERE id = $1 AND NOT EXISTS (SELECT FROM new)""",
        job_id, kind, priority, max_attempts, not_before, source, target,
        msgspec.json.encode(params).decode(), feed_from,
    )  # fmt: skip
    if row is None:
        # The aggregator projected the job's JobQueued in between: the insert met its
        # row, which this statement's snapshot does not show. A new statement does.
        row = await job(conn=conn, job_id=job_id)
    assert row is not None
    return row


async def job(*, conn: Executor, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE id = $1", job_id)


async def jobs(
    *,
    conn: Executor,
    status: str | None,
    kind: str | None,
    collection: uuid.UUID | None,
    sort: str,
    offset: int,
    limit: int,
) -> tuple[list[asyncpg.Record], int]:
    where = """($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
        AND ($3::uuid IS NULL OR source = $3 OR target = $3)"""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM jobs WHERE {where} ORDER BY {SORTS[sort]} OFFSET $4 LIMIT $5",
        status, kind, collection, offset, limit,
    )  # fmt: skip
    total = await conn.fetchval(
        f"SELECT count(*) FROM jobs WHERE {where}", status, kind, collection
    )
    return rows, int(total)


async def stats(*, conn: Executor) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT kind, status, count(*) AS n FROM jobs GROUP BY kind, status ORDER BY kind, status"
    )


async def stale_queued(*, conn: Executor, older_than_s: float, limit: int) -> list[asyncpg.Record]:
    """Moves accepted more than `older_than_s` ago that the mover has not planned (as far
    as the projection knows), oldest first."""
    return await conn.fetch(
        """SELECT id, kind, priority, max_attempts, not_before, source, target, params
           FROM jobs
           WHERE status = 'queued' AND kind IN ('copy', 'move')
             AND created_at < now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2""",
        older_than_s, limit,
    )  # fmt: skip


async def move_fields(*, conn: Executor, job_id: str) -> asyncpg.Record | None:
    """What a move's command is made of (gateway/jobs/outbox.py: move_command)."""
    return await conn.fetchrow(
        """SELECT id, kind, priority, max_attempts, not_before, source, target, params
           FROM jobs WHERE id = $1 AND kind IN ('copy', 'move')""",
        job_id,
    )
