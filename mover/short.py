"""The short path: a job with at most one page left to do is applied at once, in the
transaction of the command that starts it (MoveCompanies, StartJob or RetryJob on
`mover.commands`), instead of being released as a chunk on its lane.

Released as a chunk, such a job would be one chunk anyway, applied by one worker:
applying it here saves a stream hop, a second transaction and a second message's
bookkeeping, and loses no parallelism. Every rule of the chunked path holds:

- it only runs where the chunked path would release the job's first chunks (a job
  that is running now): a scheduled job waits for its StartJob, a cancelled one
  never gets here, a retried one applies only its pages still pending;
- the command's own delivery transaction records the command as applied together
  with the rows, the pages done and the job's progress, so a redelivered command
  applies nothing twice; the job's row says which command started and finished it
  (`started_by`, `finished_by`), so the command's `after` (mover/commands.py)
  publishes JobStarted and JobCompleted under ids derived from the command's, again
  on a redelivery and after a crash between the commit and the publish;
- counts are those of a chunk (mover/sql.py `add_progress`): rows, added, already
  present, removed;
- a failure in PostgreSQL (a trigger that raises, a deadlock) rolls back to a
  savepoint and counts as the pages' first attempt: the job fails if it has no
  other (`max_attempts` 1), else its pages go out as a chunk of attempt 2, and
  the chunked path's retries take it from there (up to `max_attempts` in all).
"""

from __future__ import annotations

import logging
import time

import asyncpg

from contracts.runtime.db import DbConnection
from mover import planning, short_sql, sql

log = logging.getLogger("conveyor.mover")
SHORT_PAGES = 1


def fits(job: asyncpg.Record) -> bool:
    """A running job with at most SHORT_PAGES pages left."""
    left: int = job["pages"] - job["pages_done"]
    return job["status"] == "running" and 0 < left <= SHORT_PAGES


class Applied:
    """What a command applied on the short path: kind and rows, for the metrics once
    the transaction has committed."""

    __slots__ = ("added", "kind", "present", "removed")

    def __init__(self, kind: str, added: int, present: int, removed: int) -> None:
        self.kind, self.added, self.present, self.removed = kind, added, present, removed


async def apply_now(
    conn: DbConnection, job: asyncpg.Record, by: str
) -> tuple[asyncpg.Record, Applied] | None:
    """Apply the job's pending pages on behalf of message `by`, in `conn`'s transaction;
    the job's row afterwards and what was applied, or None if PostgreSQL refused (the
    job is as it was: release it as chunks)."""
    started = time.perf_counter()
    try:
        async with conn.transaction():  # a savepoint: a failure leaves the command's work
            pages, rows, added, removed = await short_sql.apply_pending(
                conn=conn, job_id=job["job_id"], mode=job["mode"], source=str(job["source"]),
                target=None if job["target"] is None else str(job["target"]),
            )  # fmt: skip
    except asyncpg.PostgresError as exc:
        return await _refused(conn, job, by, exc)
    if pages == 0:
        return None  # nothing pending after all: as the chunked path would find
    cost_us = (time.perf_counter() - started) * 1_000_000 / max(rows, 1)
    done = await sql.add_progress(
        conn=conn, job_id=job["job_id"], pages=pages, rows=rows, added=added, removed=removed,
        row_cost_us=planning.next_row_cost(job["row_cost_us"], cost_us), by=by,
    )  # fmt: skip
    present = 0 if job["mode"] in ("remove", "delete") else rows - added
    return done, Applied(str(job["mode"]), added, present, removed)


async def _refused(
    conn: DbConnection, job: asyncpg.Record, by: str, exc: asyncpg.PostgresError
) -> tuple[asyncpg.Record, Applied] | None:
    """The short try was the pages' first attempt: the job fails if that was its last,
    else None (release its pages as a chunk, which carries their next attempt)."""
    error = f"{type(exc).__name__}: {exc}"
    log.warning("job %s: short path failed (attempt 1): %s", job["job_id"], error)
    await short_sql.refused(conn=conn, job_id=job["job_id"], error=error)
    if job["max_attempts"] > 1:
        return None
    await sql.fail_job(conn=conn, job_id=job["job_id"], by=by, error=f"failed 1 time: {error}")
    failed = await sql.job(conn=conn, job_id=job["job_id"])
    assert failed is not None
    return failed, Applied(str(job["mode"]), 0, 0, 0)
