"""Every SQL statement the mover runs; each function takes the connection as `conn=`."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from contracts.db import DbConnection, Executor

JOB_COLUMNS = """job_id, source, target, mode, priority, max_attempts, lane, status, run,
    pages, pages_done, total, done, added, already_present, removed, row_cost_us, error,
    started_by, finished_by"""


async def plan_job(
    *,
    conn: DbConnection,
    job_id: str,
    source: str,
    target: str,
    mode: str,
    priority: int,
    max_attempts: int,
    not_before: datetime | None,
    ids: list[int] | None,
    exclude: list[int],
    page_size: int,
) -> tuple[int, int] | None:
    """Record the job and cut its sorted company ids into pages; (pages, rows), or
    None if the job was planned before."""
    created = await conn.fetchval(
        """INSERT INTO move_jobs (job_id, source, target, mode, priority, max_attempts,
               not_before, lane, status, pages, total)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'bulk', 'scheduled', 0, 0)
           ON CONFLICT (job_id) DO NOTHING RETURNING true""",
        job_id, source, target, mode, priority, max_attempts, not_before,
    )  # fmt: skip
    if not created:
        return None
    row = await conn.fetchrow(
        """WITH chosen AS (
               SELECT company_id, row_number() OVER (ORDER BY company_id) - 1 AS n
               FROM memberships
               WHERE collection_id = $2
                 AND ($3::bigint[] IS NULL OR company_id = ANY ($3))
                 AND NOT (company_id = ANY ($4::bigint[]))),
           paged AS (
               INSERT INTO move_pages (job_id, page, company_ids)
               SELECT $1, n / $5, array_agg(company_id ORDER BY company_id)
               FROM chosen GROUP BY n / $5
               RETURNING cardinality(company_ids) AS rows)
           SELECT count(*) AS pages, coalesce(sum(rows), 0) AS rows FROM paged""",
        job_id, source, ids, exclude, page_size,
    )  # fmt: skip
    assert row is not None
    return int(row["pages"]), int(row["rows"])


async def set_plan(
    *, conn: DbConnection, job_id: str, pages: int, total: int, lane: str, status: str, by: str
) -> None:
    await conn.execute(
        """UPDATE move_jobs SET pages = $2, total = $3, lane = $4, status = $5,
               started_by = CASE WHEN $5 = 'scheduled' THEN NULL ELSE $6 END,
               finished_by = CASE WHEN $5 = 'completed' THEN $6 END, updated_at = now()
           WHERE job_id = $1""",
        job_id, pages, total, lane, status, by,
    )  # fmt: skip


async def job(*, conn: Executor, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM move_jobs WHERE job_id = $1", job_id)


async def release(
    *, conn: DbConnection, job_id: str, run: int, by: str, in_flight: int, pages_per_chunk: int
) -> None:
    """Release chunks of the next pending pages until `in_flight` chunks of this run are
    out, recorded as released by message `by` (a redelivery of `by` publishes the same)."""
    await conn.execute(
        """WITH out AS (
               SELECT count(DISTINCT chunk) AS n FROM move_pages
               WHERE job_id = $1 AND released_run = $2 AND status = 'pending'),
           free AS (
               SELECT page FROM move_pages
               WHERE job_id = $1 AND status = 'pending' AND released_run < $2
               ORDER BY page
               LIMIT greatest($4::int - (SELECT n FROM out), 0) * $5::int
               FOR UPDATE SKIP LOCKED),
           numbered AS (
               SELECT page, (row_number() OVER (ORDER BY page) - 1) / $5::int AS grp FROM free),
           chunked AS (
               SELECT page, min(page) OVER (PARTITION BY grp) AS chunk FROM numbered)
           UPDATE move_pages p SET released_run = $2, released_by = $3, chunk = chunked.chunk
           FROM chunked WHERE p.job_id = $1 AND p.page = chunked.page""",
        job_id, run, by, in_flight, pages_per_chunk,
    )  # fmt: skip


async def released_chunks(*, conn: Executor, job_id: str, by: str) -> list[list[int]]:
    """The chunks message `by` released that are still to do."""
    rows = await conn.fetch(
        """SELECT array_agg(page ORDER BY page) AS pages FROM move_pages
           WHERE job_id = $1 AND released_by = $2 AND status = 'pending'
           GROUP BY chunk ORDER BY chunk""",
        job_id, by,
    )  # fmt: skip
    return [list(r["pages"]) for r in rows]


async def lock_pages(*, conn: DbConnection, job_id: str, pages: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT page, status, attempts FROM move_pages
           WHERE job_id = $1 AND page = ANY ($2::int[]) ORDER BY page FOR UPDATE""",
        job_id, pages,
    )  # fmt: skip


async def apply_pages(
    *, conn: DbConnection, job_id: str, pages: list[int], source: str, target: str, move: bool
) -> tuple[int, int, int]:
    """Add the pages' companies to `target` (and remove them from `source` when moving);
    (rows, added, removed). Rows already in the target are dropped *before* the insert,
    so an insert trigger never runs for them. The ids never leave PostgreSQL."""
    row = await conn.fetchrow(
        """WITH wanted AS (
               SELECT DISTINCT unnest(company_ids) AS company_id FROM move_pages
               WHERE job_id = $1 AND page = ANY ($2::int[])),
           added AS (
               INSERT INTO memberships (collection_id, company_id)
               SELECT $4, w.company_id FROM wanted w
               WHERE NOT EXISTS (SELECT 1 FROM memberships t
                                 WHERE t.collection_id = $4 AND t.company_id = w.company_id)
               ORDER BY w.company_id
               ON CONFLICT DO NOTHING RETURNING 1),
           removed AS (
               DELETE FROM memberships s USING wanted w
               WHERE $5 AND s.collection_id = $3 AND s.company_id = w.company_id
               RETURNING 1)
           SELECT (SELECT count(*) FROM wanted) AS rows, (SELECT count(*) FROM added) AS added,
                  (SELECT count(*) FROM removed) AS removed""",
        job_id, pages, source, target, move,
    )  # fmt: skip
    assert row is not None
    return int(row["rows"]), int(row["added"]), int(row["removed"])


async def finish_pages(*, conn: DbConnection, job_id: str, pages: list[int]) -> None:
    await conn.execute(
        """UPDATE move_pages SET status = 'done', error = NULL
           WHERE job_id = $1 AND page = ANY ($2::int[])""",
        job_id, pages,
    )  # fmt: skip


async def record_failure(
    *, conn: DbConnection, job_id: str, pages: list[int], attempt: int, error: str
) -> None:
    await conn.execute(
        """UPDATE move_pages SET attempts = greatest(attempts, $3), error = $4
           WHERE job_id = $1 AND page = ANY ($2::int[])""",
        job_id, pages, attempt, error,
    )  # fmt: skip


async def add_progress(
    *,
    conn: DbConnection,
    job_id: str,
    pages: int,
    rows: int,
    added: int,
    removed: int,
    row_cost_us: float,
    by: str,
) -> asyncpg.Record:
    """Count an applied chunk; the job completes when its last page is done."""
    row = await conn.fetchrow(
        f"""UPDATE move_jobs SET pages_done = pages_done + $2, done = done + $3,
                added = added + $4, already_present = already_present + ($3 - $4),
                removed = removed + $5, row_cost_us = $6, updated_at = now(),
                status = CASE WHEN status = 'running' AND pages_done + $2 >= pages
                              THEN 'completed' ELSE status END,
                finished_by = CASE WHEN status = 'running' AND pages_done + $2 >= pages
                              THEN $7 ELSE finished_by END
            WHERE job_id = $1 RETURNING {JOB_COLUMNS}""",
        job_id, pages, rows, added, removed, row_cost_us, by,
    )  # fmt: skip
    assert row is not None
    return row


async def fail_job(*, conn: DbConnection, job_id: str, error: str, by: str) -> None:
    await conn.execute(
        """UPDATE move_jobs SET status = 'failed', error = $2, finished_by = $3,
               updated_at = now()
           WHERE job_id = $1 AND status = 'running'""",
        job_id, error, by,
    )  # fmt: skip


async def cancel_job(*, conn: DbConnection, job_id: str, by: str) -> str | None:
    """Cancel a scheduled or running job; its status afterwards, or None if unknown."""
    status: str | None = await conn.fetchval(
        """UPDATE move_jobs SET status = CASE WHEN status IN ('scheduled', 'running')
                   THEN 'cancelled' ELSE status END,
               finished_by = CASE WHEN status IN ('scheduled', 'running')
                   THEN $2 ELSE finished_by END,
               updated_at = now()
           WHERE job_id = $1 RETURNING status""",
        job_id, by,
    )  # fmt: skip
    return status


async def restart_job(*, conn: DbConnection, job_id: str, by: str) -> asyncpg.Record | None:
    """Start a failed or cancelled job again (a new run); pending pages get fresh attempts."""
    row = await conn.fetchrow(
        f"""UPDATE move_jobs SET status = 'running', run = run + 1, error = NULL,
                started_by = $2, finished_by = NULL, updated_at = now()
            WHERE job_id = $1 AND status IN ('failed', 'cancelled') RETURNING {JOB_COLUMNS}""",
        job_id, by,
    )  # fmt: skip
    if row is not None:
        await conn.execute(
            "UPDATE move_pages SET attempts = 0 WHERE job_id = $1 AND status = 'pending'", job_id
        )
    return row


async def start_due(*, conn: DbConnection, job_id: str, by: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE move_jobs SET status = 'running', started_by = $2, updated_at = now()
            WHERE job_id = $1 AND status = 'scheduled' RETURNING {JOB_COLUMNS}""",
        job_id, by,
    )  # fmt: skip


async def due_jobs(*, conn: Executor, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        """SELECT job_id FROM move_jobs WHERE status = 'scheduled' AND not_before <= now()
           ORDER BY not_before LIMIT $1""",
        limit,
    )
    return [r["job_id"] for r in rows]
