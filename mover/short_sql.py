"""The short path's SQL (mover/short.py); each function takes the connection as `conn=`.

Beside mover/sql.py, which holds the SQL of the chunked path, so that the two can
change apart.
"""

from __future__ import annotations

import asyncpg

from contracts.runtime.db import DbConnection, Executor
from mover.sql import JOB_COLUMNS

# One statement: lock the job's pending pages, add their companies to the target
# (copy, move) and take them out of the source (move, remove, delete), mark the pages
# done. As in mover/sql.py `apply_pages`, rows already in the target are dropped before
# the insert (an insert trigger never runs for them), in company order (two jobs that
# insert the same companies wait on each other instead of deadlocking).
_APPLY_PENDING = """
WITH pending AS (
    SELECT page, company_ids FROM move_pages
    WHERE job_id = $1 AND status = 'pending' ORDER BY page FOR UPDATE),
wanted AS (SELECT DISTINCT unnest(company_ids) AS company_id FROM pending),
added AS (
    INSERT INTO memberships (collection_id, company_id)
    SELECT $3::uuid, w.company_id FROM wanted w
    WHERE $4 AND NOT EXISTS (SELECT 1 FROM memberships t
                             WHERE t.collection_id = $3::uuid AND t.company_id = w.company_id)
    ORDER BY w.company_id
    ON CONFLICT DO NOTHING RETURNING 1),
removed AS (
    DELETE FROM memberships s USING wanted w
    WHERE $5 AND s.collection_id = $2::uuid AND s.company_id = w.company_id
    RETURNING 1),
finished AS (
    UPDATE move_pages p SET status = 'done', error = NULL
    FROM pending WHERE p.job_id = $1 AND p.page = pending.page
    RETURNING 1)
SELECT (SELECT count(*) FROM finished) AS pages, (SELECT count(*) FROM wanted) AS rows,
       (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM removed) AS removed"""


async def apply_pending(
    *, conn: DbConnection, job_id: str, mode: str, source: str, target: str | None
) -> tuple[int, int, int, int]:
    """Apply every pending page of the job at once; (pages, rows, added, removed)."""
    insert = mode in ("copy", "move")
    delete = mode in ("move", "remove", "delete")
    row = await conn.fetchrow(_APPLY_PENDING, job_id, source, target, insert, delete)
    assert row is not None
    return int(row["pages"]), int(row["rows"]), int(row["added"]), int(row["removed"])


async def cancel(*, conn: DbConnection, job_id: str, by: str) -> None:
    """Cancel a scheduled or running job; a job not known yet is remembered as cancelled
    (its MoveCompanies, when it comes, plans nothing). One statement, so a cancel that
    races its job's MoveCompanies (commands are handled several at once, and by several
    movers) waits for that command's row and cancels it, instead of finding no row to
    update and then a row it may not insert over."""
    await conn.execute(
        """INSERT INTO move_jobs AS j (job_id, priority, max_attempts, lane, status, pages,
               total, planned, finished_by)
           VALUES ($1, 3, 3, 'bulk', 'cancelled', 0, 0, false, $2)
           ON CONFLICT (job_id) DO UPDATE SET status = 'cancelled', finished_by = $2,
               updated_at = now()
           WHERE j.status IN ('scheduled', 'running')""",
        job_id, by,
    )  # fmt: skip


async def jobs(*, conn: Executor, job_ids: list[str]) -> dict[str, asyncpg.Record]:
    """The rows of these jobs (those that exist), by id."""
    rows = await conn.fetch(
        f"SELECT {JOB_COLUMNS} FROM move_jobs WHERE job_id = ANY ($1::text[])", job_ids
    )
    return {r["job_id"]: r for r in rows}


async def refused(*, conn: DbConnection, job_id: str, error: str) -> None:
    """The short try of the job's pending pages failed: it counts as their first attempt."""
    await conn.execute(
        """UPDATE move_pages SET attempts = greatest(attempts, 1), error = $2
           WHERE job_id = $1 AND status = 'pending'""",
        job_id, error,
    )  # fmt: skip


async def released_chunks(*, conn: Executor, job_id: str, by: str) -> list[tuple[list[int], int]]:
    """The chunks message `by` released that are still to do, each with its attempt (one
    past the attempts its pages have used: a short try that failed used the first)."""
    rows = await conn.fetch(
        """SELECT array_agg(page ORDER BY page) AS pages, max(attempts) + 1 AS attempt
           FROM move_pages WHERE job_id = $1 AND released_by = $2 AND status = 'pending'
           GROUP BY chunk ORDER BY chunk""",
        job_id, by,
    )  # fmt: skip
    return [(list(r["pages"]), int(r["attempt"])) for r in rows]
