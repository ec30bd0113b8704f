"""Every SQL statement of the mover's handlers; each
function takes the connection as `conn=`."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from contracts.runtime.db import DbConnection, Executor
from mover import planning

JOB_COLUMNS = """job_id, source, target, mode, priority, max_attempts, not_before, lane, status,
    run, pages, pages_done, total, done, added, already_present, removed, row_cost_us, error,
    started_by, finished_by, planned, command"""
_CHUNKS = msgspec.json.Decoder(list[list[int]])
_QUALIFIED_JOB_COLUMNS = ", ".join(
    f"move_jobs.{c.strip()}" for c in JOB_COLUMNS.replace("\n", " ").split(",")
)


async def record_command(
    *,
    conn: DbConnection,
    job_id: str,
    command: str,
    priority: int,
    max_attempts: int,
    not_before: datetime | None,
) -> asyncpg.Record:
    """Keep the job's MoveCompanies (JSON) on its row, creating the row (scheduled, not
    planned) unless it exists; a row made by an earlier cancel gets the command's fields.
    The row, locked."""
    row = await conn.fetchrow(
        f"""INSERT INTO move_jobs (job_id, priority, max_attempts, not_before, lane, status,
               pages, total, planned, command)
           VALUES ($1, $2, $3, $4, 'bulk', 'scheduled', 0, 0, false, $5)
           ON CONFLICT (job_id) DO UPDATE SET command = EXCLUDED.command,
               priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts,
               not_before = EXCLUDED.not_before
           WHERE move_jobs.command IS NULL AND NOT move_jobs.planned
           RETURNING {JOB_COLUMNS}""",
        job_id, priority, max_attempts, not_before, command,
    )  # fmt: skip
    if row is None:  # there, with its command already (or planned before commands were kept)
        row = await conn.fetchrow(
            f"SELECT {JOB_COLUMNS} FROM move_jobs WHERE job_id = $1 FOR UPDATE", job_id
        )
    assert row is not None
    return row


async def keep_command(*, conn: DbConnection, job_id: str, command: str) -> None:
    await conn.execute(
        "UPDATE move_jobs SET command = coalesce(command, $2) WHERE job_id = $1", job_id, command
    )


async def cut_pages(
    *,
    conn: DbConnection,
    job_id: str,
    source: str,
    ids: list[int] | None,
    exclude: list[int],
    page_size: int,
    min_page_size: int = planning.MIN_PAGE_ROWS,
    job_pages: int = planning.PAGES_PER_JOB,
) -> tuple[int, int]:
    """Cut the job's sorted company ids into pages; (pages, rows). A page holds
    `page_size` rows, or fewer (not under `min_page_size`) for a job of more than
    `job_pages` pages' worth, so that it has about `job_pages` pages (mover/planning.py);
    a job that fits in one page is one page."""
    row = await conn.fetchrow(
        """WITH chosen AS (
               SELECT company_id, row_number() OVER (ORDER BY company_id) - 1 AS n
               FROM memberships
               WHERE collection_id = $2
                 AND ($3::bigint[] IS NULL OR company_id = ANY ($3))
                 AND NOT (company_id = ANY ($4::bigint[]))),
           size AS (
               SELECT CASE WHEN total <= $5::int THEN $5::int
                   ELSE least($5::int, greatest($6::int, ceil(total::numeric / $7::int)::int))
                   END AS rows
               FROM (SELECT count(*) AS total FROM memberships
                     WHERE collection_id = $2
                       AND ($3::bigint[] IS NULL OR company_id = ANY ($3))
                       AND NOT (company_id = ANY ($4::bigint[]))) counted),
           paged AS (
               INSERT INTO move_pages (job_id, page, company_ids)
               SELECT $1, n / (SELECT rows FROM size), array_agg(company_id ORDER BY company_id)
               FROM chosen GROUP BY n / (SELECT rows FROM size)
               RETURNING cardinality(company_ids) AS rows)
           SELECT count(*) AS pages, coalesce(sum(rows), 0) AS rows FROM paged""",
        job_id, source, ids, exclude, page_size, min_page_size, job_pages,
    )  # fmt: skip
    assert row is not None
    return int(row["pages"]), int(row["rows"])


async def set_plan(
    *,
    conn: DbConnection,
    job_id: str,
    source: str,
    target: str | None,
    mode: str,
    pages: int,
    total: int,
    lane: str,
    status: str,
    by: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""UPDATE move_jobs SET source = $2, target = $3, mode = $4, pages = $5, total = $6,
               lane = $7, status = $8, planned = true,
               started_by = CASE WHEN $8 = 'scheduled' THEN NULL ELSE $9 END,
               finished_by = CASE WHEN $8 = 'completed' THEN $9 END, updated_at = now()
           WHERE job_id = $1 RETURNING {JOB_COLUMNS}""",
        job_id, source, target, mode, pages, total, lane, status, by,
    )  # fmt: skip
    assert row is not None
    return row


async def job(*, conn: Executor, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM move_jobs WHERE job_id = $1", job_id)


def _release_chunks(*, in_flight: str, per_chunk: str, not_out: str = "") -> str:
    """The CTEs and the UPDATE that release chunks (job $1, run $2, by $3) of the next
    pending pages until `in_flight` chunks of `per_chunk` pages are out (the parameters
    named by `in_flight` and `per_chunk`; `not_out`: a condition on pages not to count
    as out). Used by `release` and `finish_chunk`."""
    return f"""out AS (
               SELECT count(DISTINCT chunk) AS n FROM move_pages
               WHERE job_id = $1 AND released_run = $2 AND status = 'pending'{not_out}),
           free AS (
               SELECT page FROM move_pages
               WHERE job_id = $1 AND status = 'pending' AND released_run < $2
               ORDER BY page
               LIMIT greatest({in_flight}::int - (SELECT n FROM out), 0) * {per_chunk}::int
               FOR UPDATE SKIP LOCKED),
           numbered AS (
               SELECT page, (row_number() OVER (ORDER BY page) - 1) / {per_chunk}::int AS grp
               FROM free),
           chunked AS (
               SELECT page, min(page) OVER (PARTITION BY grp) AS chunk FROM numbered)
           UPDATE move_pages p SET released_run = $2, released_by = $3, chunk = chunked.chunk
           FROM chunked WHERE p.job_id = $1 AND p.page = chunked.page"""


_RELEASE = "WITH " + _release_chunks(in_flight="$4", per_chunk="$5")


async def release(
    *, conn: DbConnection, job_id: str, run: int, by: str, in_flight: int, pages_per_chunk: int
) -> None:
    """Release chunks of the next pending pages until `in_flight` chunks of this run are
    out, recorded as released by message `by` (a redelivery of `by` publishes the same)."""
    await conn.execute(
        _RELEASE,
        job_id, run, by, in_flight, pages_per_chunk,
    )  # fmt: skip


async def after_chunk(
    *, conn: Executor, job_id: str, by: str, pages: list[int], attempt: int
) -> tuple[asyncpg.Record | None, bool, bool, list[list[int]]]:
    """What chunk `by` (its pages, its attempt) finds once committed, in one round trip:
    the job's row (None if unknown), whether the job has a page left to do, whether this
    attempt of the chunk failed (a page still pending with as many attempts recorded),
    and the chunks `by` released that are still to do."""
    row = await conn.fetchrow(
        f"""SELECT {JOB_COLUMNS},
               EXISTS (SELECT 1 FROM move_pages p
                       WHERE p.job_id = $1 AND p.status = 'pending') AS pages_left,
               (SELECT coalesce(bool_or(p.status = 'pending' AND p.attempts >= $4), false)
                FROM move_pages p WHERE p.job_id = $1 AND p.page = ANY ($3::int[]))
                   AS attempt_failed,
               (SELECT coalesce(json_agg(c.pages ORDER BY c.chunk), '[]')::text
                FROM (SELECT p.chunk, array_agg(p.page ORDER BY p.page) AS pages
                      FROM move_pages p
                      WHERE p.job_id = $1 AND p.released_by = $2 AND p.status = 'pending'
                      GROUP BY p.chunk) c) AS released
            FROM move_jobs WHERE job_id = $1""",
        job_id, by, pages, attempt,
    )  # fmt: skip
    if row is None:
        return None, False, False, []
    released = _CHUNKS.decode(row["released"])
    return row, bool(row["pages_left"]), bool(row["attempt_failed"]), released


async def chunk_start(
    *, conn: DbConnection, job_id: str, pages: list[int]
) -> tuple[asyncpg.Record | None, list[int]]:
    """The job's row (None if unknown) and which of `pages` are still to do, locked until
    the transaction ends (a redelivery of the same chunk waits, then finds them done)."""
    row = await conn.fetchrow(
        f"""SELECT {JOB_COLUMNS},
               ARRAY(SELECT p.page FROM move_pages p
                     WHERE p.job_id = $1 AND p.page = ANY ($2::int[]) AND p.status = 'pending'
                     ORDER BY p.page FOR UPDATE) AS pending
            FROM move_jobs WHERE job_id = $1""",
        job_id, pages,
    )  # fmt: skip
    return (None, []) if row is None else (row, list(row["pending"]))


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


async def remove_pages(
    *, conn: DbConnection, job_id: str, pages: list[int], source: str
) -> tuple[int, int]:
    """Take the pages' companies out of `source` (a `remove` or `delete` job); (rows,
    removed). Rows no longer in the list count as done, not as removed."""
    row = await conn.fetchrow(
        """WITH wanted AS (
               SELECT DISTINCT unnest(company_ids) AS company_id FROM move_pages
               WHERE job_id = $1 AND page = ANY ($2::int[])),
           removed AS (
               DELETE FROM memberships s USING wanted w
               WHERE s.collection_id = $3 AND s.company_id = w.company_id
               RETURNING 1)
           SELECT (SELECT count(*) FROM wanted) AS rows,
                  (SELECT count(*) FROM removed) AS removed""",
        job_id, pages, source,
    )  # fmt: skip
    assert row is not None
    return int(row["rows"]), int(row["removed"])


async def drop_list(*, conn: DbConnection, collection: str) -> None:
    """Delete the list's row (its memberships left, if any, go with it: ON DELETE CASCADE)."""
    await conn.execute("DELETE FROM collections WHERE id = $1", collection)


_FINISH_CHUNK = """WITH finished AS (
               UPDATE move_pages SET status = 'done', error = NULL
               WHERE job_id = $1 AND page = ANY ($4::int[]) RETURNING 1),
           counted AS (
               INSERT INTO move_progress (job_id, chunk, pages, rows, added, removed,
                                          row_cost_us)
               VALUES ($1, $3, cardinality($4::int[]), $5, $6, $7, $8) RETURNING 1),
           """ + _release_chunks(
    in_flight="$9", per_chunk="$10", not_out=" AND NOT (page = ANY ($4::int[]))"
)


async def finish_chunk(
    *,
    conn: DbConnection,
    job_id: str,
    run: int,
    by: str,
    pages: list[int],
    rows: int,
    added: int,
    removed: int,
    row_cost_us: float,
    in_flight: int,
    pages_per_chunk: int,
) -> None:
    """In one statement: mark chunk `by`'s pages done, count it beside the job's row (in
    `move_progress`, folded into the row by `fold_progress`), and release the next
    chunks as `release` does (its own pages no longer count as out)."""
    await conn.execute(
        _FINISH_CHUNK,
        job_id, run, by, pages, rows, added, removed, row_cost_us, in_flight, pages_per_chunk,
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
    """Count pages applied in the job's own row (the short path, mover/short.py; a retry
    with nothing left); the job completes when its last page is done. Chunks count
    beside it (`finish_chunk`)."""
    row = await conn.fetchrow(
        f"""UPDATE move_jobs SET pages_done = pages_done + $2, done = done + $3,
                added = added + $4,
                already_present = already_present + CASE WHEN mode IN ('remove', 'delete')
                                  THEN 0 ELSE $3 - $4 END,
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


async def fold_progress(*, conn: DbConnection, job_id: str, by: str) -> asyncpg.Record | None:
    """Add the chunks counted so far (`finish_chunk`) to the job's row, each once; the
    job completes when its last page is counted, on behalf of message `by`. The row
    afterwards; None if there was nothing to fold (the row is left as it is)."""
    return await conn.fetchrow(
        f"""WITH folded AS (
                DELETE FROM move_progress WHERE job_id = $1
                RETURNING pages, rows, added, removed, row_cost_us),
            total AS (
                SELECT coalesce(sum(pages), 0) AS pages, coalesce(sum(rows), 0) AS rows,
                       coalesce(sum(added), 0) AS added, coalesce(sum(removed), 0) AS removed,
                       avg(row_cost_us) AS row_cost_us
                FROM folded)
            UPDATE move_jobs SET pages_done = pages_done + t.pages, done = done + t.rows,
                added = move_jobs.added + t.added,
                already_present = already_present + CASE WHEN mode IN ('remove', 'delete')
                                  THEN 0 ELSE t.rows - t.added END,
                removed = move_jobs.removed + t.removed,
                row_cost_us = coalesce(t.row_cost_us, move_jobs.row_cost_us), updated_at = now(),
                status = CASE WHEN status = 'running' AND pages_done + t.pages >= move_jobs.pages
                              THEN 'completed' ELSE status END,
                finished_by = CASE WHEN status = 'running'
                                        AND pages_done + t.pages >= move_jobs.pages
                                   THEN $2 ELSE finished_by END
            FROM total t WHERE job_id = $1 AND t.pages > 0
            RETURNING {_QUALIFIED_JOB_COLUMNS}""",
        job_id, by,
    )  # fmt: skip


async def fail_job(
    *, conn: Executor, job_id: str, error: str, by: str, run: int | None = None
) -> None:
    """Fail a running job (only in run `run`, when given)."""
    await conn.execute(
        """UPDATE move_jobs SET status = 'failed', error = $2, finished_by = $3,
               updated_at = now()
           WHERE job_id = $1 AND status = 'running' AND ($4::int IS NULL OR run = $4)""",
        job_id, error, by, run,
    )  # fmt: skip


async def fail_unapplied(
    *, conn: Executor, job_id: str, error: str, by: str, command: str | None, retry: bool
) -> None:
    """A command for the job could not be applied: fail the job (a job never planned gets
    a failed row that keeps `command`, for a retry). A final job stays as it is, unless
    the command was its retry: that attempt failed."""
    await conn.execute(
        """INSERT INTO move_jobs (job_id, priority, max_attempts, lane, status, pages, total,
               planned, command, error, finished_by)
           VALUES ($1, 3, 3, 'bulk', 'failed', 0, 0, false, $4, $2, $3)
           ON CONFLICT (job_id) DO UPDATE SET status = 'failed', error = $2, finished_by = $3,
               command = coalesce(move_jobs.command, $4), updated_at = now(),
               run = CASE WHEN move_jobs.status IN ('scheduled', 'running')
                          THEN move_jobs.run ELSE move_jobs.run + 1 END
           WHERE move_jobs.status IN ('scheduled', 'running')
              OR ($5 AND move_jobs.finished_by IS DISTINCT FROM $3)""",
        job_id, error, by, command, retry,
    )  # fmt: skip


async def restart_job(*, conn: DbConnection, job_id: str, by: str) -> asyncpg.Record | None:
    """Start a failed or cancelled job again (a new run); pending pages get fresh attempts.
    A job never planned, or whose `not_before` is still ahead, becomes `scheduled`: its
    command plans it, or the scheduler starts it when its time comes. Chunks counted and
    not folded yet are folded first, so the job's row says what is left."""
    await fold_progress(conn=conn, job_id=job_id, by=by)
    row = await conn.fetchrow(
        f"""WITH now_due AS (
                SELECT planned AND (not_before IS NULL OR not_before <= now()) AS due
                FROM move_jobs WHERE job_id = $1)
            UPDATE move_jobs SET
                status = CASE WHEN (SELECT due FROM now_due) THEN 'running' ELSE 'scheduled' END,
                run = run + 1, error = NULL,
                started_by = CASE WHEN (SELECT due FROM now_due) THEN $2 END,
                finished_by = NULL, updated_at = now()
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
            WHERE job_id = $1 AND status = 'scheduled' AND planned RETURNING {JOB_COLUMNS}""",
        job_id, by,
    )  # fmt: skip


async def due_jobs(*, conn: Executor, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        """SELECT job_id FROM move_jobs
           WHERE status = 'scheduled' AND planned AND not_before <= now()
           ORDER BY not_before LIMIT $1""",
        limit,
    )
    return [r["job_id"] for r in rows]
