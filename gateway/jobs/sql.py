"""SQL of the jobs routes and the moves outbox; each function takes `conn=`.

`jobs` is the aggregator's projection: the gateway reads it, never writes it. The
gateway writes its own outbox, `accepted_moves` (the MoveCompanies it published for a
job, where that job's JobQueued sits in jobs.events, and when), and reads a job it
just accepted from there until the projection has its row (`job`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

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


# A move the gateway accepted, as the row the projection will write from its JobQueued
# (queued, nothing done yet; created when it was accepted). `{c}`: the command's JSON.
_ACCEPTED_AS_JOB = """a.job_id AS id, {c} ->> 'mode' AS kind, 'queued'::text AS status,
    ({c} ->> 'priority')::int AS priority, 0 AS attempts,
    ({c} ->> 'max_attempts')::int AS max_attempts,
    ({c} ->> 'not_before')::timestamptz AS not_before, ({c} ->> 'source')::uuid AS source,
    ({c} ->> 'target')::uuid AS target, NULL::int AS total, 0 AS done, 0 AS added,
    0 AS already_present, 0 AS removed, NULL::text AS error, a.queued_entry AS feed_from,
    a.accepted_at AS created_at, NULL::timestamptz AS started_at,
    NULL::timestamptz AS finished_at, a.accepted_at AS updated_at""".format(c="a.command::jsonb")


async def admission(
    *, conn: Executor, lists: list[uuid.UUID], companies: list[int], into: uuid.UUID | None
) -> tuple[list[uuid.UUID], list[int], str | None]:
    """In one round trip, what a job over companies of lists needs to be accepted: which
    of `lists` and of `companies` do not exist, and (when a job puts companies `into` a
    list) the oldest job deleting that list, accepted and not projected yet included
    (the index of migration 0011 finds those among the unsettled moves)."""
    row = await conn.fetchrow(
        """SELECT
             ARRAY(SELECT x FROM unnest($1::uuid[]) x
                   WHERE NOT EXISTS (SELECT 1 FROM collections c WHERE c.id = x)) AS lists,
             ARRAY(SELECT w FROM unnest($2::bigint[]) w
                   WHERE NOT EXISTS (SELECT 1 FROM companies c WHERE c.id = w) ORDER BY w)
               AS companies,
             (SELECT d.id FROM (
                  SELECT id, created_at FROM jobs
                  WHERE kind = 'delete' AND source = $3
                    AND status IN ('queued', 'scheduled', 'running')
                  UNION ALL
                  SELECT a.job_id, a.accepted_at FROM accepted_moves a
                  WHERE a.settled_at IS NULL AND a.command::jsonb ->> 'mode' = 'delete'
                    AND a.command::jsonb ->> 'source' = $3::text
                    AND NOT EXISTS (SELECT FROM jobs WHERE id = a.job_id)) d
              ORDER BY d.created_at, d.id LIMIT 1) AS deleting""",
        lists, companies, into,
    )  # fmt: skip
    assert row is not None
    return list(row["lists"]), list(row["companies"]), row["deleting"]


async def accept(
    *, conn: Executor, job_id: str, command: str, queued_entry: str, accepted_at: datetime
) -> asyncpg.Record:
    """Record a move accepted (`command`: its MoveCompanies JSON, as published); the job
    as GET /jobs/{id} shows it (a second time, the job as it is by now)."""
    row = await conn.fetchrow(
        f"""INSERT INTO accepted_moves AS a (job_id, command, queued_entry, accepted_at)
            VALUES ($1, $2, $3, $4) ON CONFLICT (job_id) DO NOTHING
            RETURNING {_ACCEPTED_AS_JOB}""",
        job_id, command, queued_entry, accepted_at,
    )  # fmt: skip
    if row is None:  # accepted before (a retried request): the job as it is now
        row = await job(conn=conn, job_id=job_id)
    assert row is not None
    return row


async def job(*, conn: Executor, job_id: str) -> asyncpg.Record | None:
    """The job's row; until the projection wrote it, the move as the gateway accepted it."""
    return await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM jobs WHERE id = $1
            UNION ALL
            SELECT {_ACCEPTED_AS_JOB} FROM accepted_moves a
            WHERE a.job_id = $1 AND NOT EXISTS (SELECT FROM jobs WHERE id = $1)""",
        job_id,
    )


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


async def accepted_command(*, conn: Executor, job_id: str) -> str | None:
    """The MoveCompanies JSON that POST /moves published for this job, if it did."""
    command: str | None = await conn.fetchval(
        "SELECT command FROM accepted_moves WHERE job_id = $1", job_id
    )
    return command


async def unsettled(*, conn: Executor, older_than_s: float, limit: int) -> list[asyncpg.Record]:
    """Moves accepted more than `older_than_s` ago that the projection does not show
    planned, oldest first: their command, their JobQueued's entry, whether the projection
    has their row. Those it shows planned or over on the way are settled: left alone."""
    return await conn.fetch(
        """WITH due AS (
               SELECT a.job_id, a.command, a.queued_entry, j.status
               FROM accepted_moves a LEFT JOIN jobs j ON j.id = a.job_id
               WHERE a.settled_at IS NULL
                 AND a.accepted_at < now() - make_interval(secs => $1)
               ORDER BY a.accepted_at LIMIT $2),
           settled AS (
               UPDATE accepted_moves a SET settled_at = now() FROM due
               WHERE a.job_id = due.job_id AND due.status <> 'queued')
           SELECT job_id, command, queued_entry, status IS NOT NULL AS projected
           FROM due WHERE status IS NULL OR status = 'queued'""",
        older_than_s, limit,
    )  # fmt: skip


async def queued_again(*, conn: Executor, job_id: str, queued_entry: str) -> None:
    """The job's JobQueued was published again, at `queued_entry`."""
    await conn.execute(
        "UPDATE accepted_moves SET queued_entry = $2 WHERE job_id = $1", job_id, queued_entry
    )


# --- a job's timeline and the attempts ended per minute (job_events, the projection's) ---


async def timeline(
    *, conn: Executor, job_id: str, after: tuple[int, int], limit: int
) -> list[asyncpg.Record]:
    """The job's events after entry `after` (ms, seq), in stream order, at most `limit`."""
    return await conn.fetch(
        """SELECT entry_ms || '-' || entry_seq AS entry_id, type, attempt, at, status, counts,
                  error
           FROM job_events WHERE job_id = $1 AND (entry_ms, entry_seq) > ($2, $3)
           ORDER BY entry_ms, entry_seq LIMIT $4""",
        job_id, after[0], after[1], limit,
    )  # fmt: skip


async def ended_per_minute(*, conn: Executor, minutes: int) -> list[asyncpg.Record]:
    """Attempts completed, failed and cancelled in each of the last `minutes` whole UTC
    minutes (the current one included, oldest first), every minute present."""
    return await conn.fetch(
        """WITH span AS (
               SELECT date_trunc('minute', now(), 'UTC') AS last,
                      date_trunc('minute', now(), 'UTC') - make_interval(mins => $1 - 1)
                          AS first),
           ended AS (
               SELECT date_trunc('minute', e.at, 'UTC') AS minute,
                      count(*) FILTER (WHERE e.type = 'JobCompleted') AS completed,
                      count(*) FILTER (WHERE e.type = 'JobFailed') AS failed,
                      count(*) FILTER (WHERE e.type = 'JobCancelled') AS cancelled
               FROM job_events e, span
               WHERE e.type IN ('JobCompleted', 'JobFailed', 'JobCancelled')
                 AND e.at >= span.first AND e.at < span.last + interval '1 minute'
               GROUP BY 1)
           SELECT m.minute, coalesce(ended.completed, 0) AS completed,
                  coalesce(ended.failed, 0) AS failed, coalesce(ended.cancelled, 0) AS cancelled
           FROM span, generate_series(span.first, span.last, interval '1 minute') AS m(minute)
           LEFT JOIN ended USING (minute)
           ORDER BY m.minute""",
        minutes,
    )


async def busy_with_list(*, conn: Executor, collection: uuid.UUID) -> list[asyncpg.Record]:
    """Jobs not over yet that delete the list, or copy or move companies into it (those
    accepted and not projected yet included), oldest first: their `id` and `kind`
    (DELETE /collections/{id}; a move asks `admission` instead)."""
    return await conn.fetch(
        """WITH busy AS (
               SELECT id, kind, created_at FROM jobs
               WHERE status IN ('queued', 'scheduled', 'running')
                 AND ((kind = 'delete' AND source = $1)
                      OR (kind IN ('copy', 'move') AND target = $1))
               UNION ALL
               SELECT a.job_id, a.command::jsonb ->> 'mode', a.accepted_at FROM accepted_moves a
               WHERE a.settled_at IS NULL AND NOT EXISTS (SELECT FROM jobs WHERE id = a.job_id)
                 AND ((a.command::jsonb ->> 'mode' = 'delete'
                       AND a.command::jsonb ->> 'source' = $1::text)
                      OR (a.command::jsonb ->> 'mode' IN ('copy', 'move')
                          AND a.command::jsonb ->> 'target' = $1::text)))
           SELECT id, kind FROM busy ORDER BY created_at, id""",
        collection,
    )  # fmt: skip
