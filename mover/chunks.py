"""The mover's chunks (`mover.chunks` and `mover.express`, the same handler on both lanes):
apply a chunk's pages (copy or move them into the target, or remove them from the
source), count them, release the next chunks.

`apply` runs inside the delivery transaction; a chunk that fails in PostgreSQL keeps
its record (a savepoint) and counts an attempt, and the job fails once a chunk has used
up its attempts. A chunk's counts go to a row of its own (`move_progress`), not to the
job's row, so that chunks applied side by side (both cores on a fast database, every
connection on a slow one) do not queue on that row until each other's commit.

`after_apply` runs after the commit: it folds the counts into the job's row when a
progress event is due (at most one per job per `mover_progress_interval_ms`), when the
job has no page left to do (whoever comes last after the commits counts the last page:
the job completes, on behalf of that chunk, and a `delete` job deletes its list in the
same transaction, mover/jobs.py `on_completion`) or when the job is no longer running;
a redelivered chunk does the same again. Then it says the job's end, sends a failed
chunk's next attempt (after a backoff), or a progress event, and publishes the chunks
this one released.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from contracts.messages import ApplyChunk, derived_id
from contracts.runtime.db import DbConnection
from mover import planning, sql
from mover.jobs import Jobs
from mover.metrics import MoverMetrics

log = logging.getLogger("conveyor.mover")


async def _apply(conn: DbConnection, job: asyncpg.Record, pages: list[int]) -> tuple[int, int, int]:
    """Apply the job's pages: (rows, added, removed)."""
    source = str(job["source"])
    if job["mode"] in ("remove", "delete"):
        rows, removed = await sql.remove_pages(
            conn=conn, job_id=job["job_id"], pages=pages, source=source
        )
        return rows, 0, removed
    return await sql.apply_pages(
        conn=conn, job_id=job["job_id"], pages=pages, source=source, target=str(job["target"]),
        move=job["mode"] == "move",
    )  # fmt: skip


class Chunks:
    def __init__(self, jobs: Jobs, metrics: MoverMetrics) -> None:
        self.jobs = jobs
        self.metrics = metrics
        # What each chunk applied in a transaction not committed yet, counted by
        # `after_apply` once it has (a rolled-back one is replaced when applied again).
        self._applied: dict[str, tuple[str, int, int, int]] = {}
        # When this process last asked whether a job's progress event was due.
        self._said_at: dict[str, float] = {}

    async def apply(self, msg: ApplyChunk, conn: DbConnection) -> None:
        job, numbers = await sql.chunk_start(conn=conn, job_id=msg.job_id, pages=msg.pages)
        if job is None:
            raise LookupError(f"chunk of unknown job {msg.job_id}")
        if job["status"] != "running" or job["run"] != msg.run or not numbers:
            return  # cancelled, failed, a chunk of an earlier run, or done: nothing to do
        started = time.perf_counter()
        try:
            async with conn.transaction():  # a savepoint: a failing chunk keeps the record
                rows, added, removed = await _apply(conn, job, numbers)
        except asyncpg.PostgresError as exc:
            await self._failed(conn, job, msg, numbers, exc)
            return
        cost_us = (time.perf_counter() - started) * 1_000_000 / max(rows, 1)
        present = 0 if job["mode"] in ("remove", "delete") else rows - added
        self._applied[msg.id] = (str(job["mode"]), added, present, removed)
        row_cost_us = planning.next_row_cost(job["row_cost_us"], cost_us)
        # Counted beside the job's row, not on it: chunks applied side by side do not
        # queue on that row (`after_apply` folds the counts into it).
        await sql.finish_chunk(
            conn=conn, job_id=msg.job_id, run=job["run"], by=msg.id, pages=numbers, rows=rows,
            added=added, removed=removed, row_cost_us=cost_us, in_flight=self.jobs.window(job),
            pages_per_chunk=self._chunk_pages(job, row_cost_us),
        )  # fmt: skip

    def _chunk_pages(self, job: asyncpg.Record, row_cost_us: float) -> int:
        """Pages in each chunk released next: about `mover_chunk_target_s` at the cost of
        a row just measured, at most as many rows as `mover_max_pages_per_chunk` full
        pages (a large job's pages are smaller than `mover_page_size`). A job that this
        chunk completes has no pages left to release; chunks released for a job
        cancelled meanwhile are skipped by whoever takes them."""
        s = self.jobs.settings
        rows_per_page = -(-job["total"] // max(job["pages"], 1))
        return planning.pages_per_chunk(
            row_cost_us, page_size=rows_per_page, target_s=s.mover_chunk_target_s,
            max_pages=planning.max_pages(
                rows_per_page, page_size=s.mover_page_size, max_pages=s.mover_max_pages_per_chunk
            ),
        )  # fmt: skip

    async def _failed(
        self,
        conn: DbConnection,
        job: asyncpg.Record,
        msg: ApplyChunk,
        pages: list[int],
        exc: asyncpg.PostgresError,
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("job %s pages %s attempt %d failed: %s", msg.job_id, pages, msg.attempt, error)
        await sql.record_failure(
            conn=conn, job_id=msg.job_id, pages=pages, attempt=msg.attempt, error=error
        )
        if msg.attempt >= job["max_attempts"]:
            await sql.fail_job(
                conn=conn, job_id=msg.job_id, by=msg.id,
                error=f"pages {pages[0]}..{pages[-1]} failed {msg.attempt} times: {error}",
            )  # fmt: skip

    async def after_apply(self, msg: ApplyChunk) -> None:
        if (applied := self._applied.pop(msg.id, None)) is not None:
            kind, added, present, removed = applied
            self.metrics.count(kind, added=added, already_present=present, removed=removed)
        jobs = self.jobs
        async with jobs.pool().acquire() as conn:  # one connection for all of it
            job, left, failed, released = await sql.after_chunk(
                conn=conn, job_id=msg.job_id, by=msg.id, pages=msg.pages, attempt=msg.attempt
            )
            if job is None:
                return
            due = False
            if job["finished_by"] != msg.id and job["status"] != "completed":
                due = job["status"] != "running" or await self._progress_due(msg.job_id)
                if due or not left:
                    job = await self._fold(conn, msg)
        if job["finished_by"] == msg.id:
            await jobs.finished(job, msg.id)
        elif failed and msg.attempt < job["max_attempts"]:
            if job["status"] == "running" and job["run"] == msg.run:
                await self._try_again(job, msg)
        elif job["status"] == "running" and due:
            await jobs.event(jobs.progressed(job))
        elif job["status"] == "cancelled":
            # A chunk that was under way when the job was cancelled stays applied: say so.
            await jobs.event(jobs.progressed(job))
        for pages in released:
            chunk = ApplyChunk(
                id=derived_id(job["job_id"], job["run"], pages[0], 1),
                job_id=job["job_id"], run=job["run"], pages=pages,
            )  # fmt: skip
            await jobs.publish_chunk(job, chunk)

    async def _progress_due(self, job_id: str) -> bool:
        """A progress event (and a fold) is due: not said by this process within the
        interval, then not by any (mover/jobs.py `progress_due`, one Redis call)."""
        now, interval_s = time.monotonic(), self.jobs.settings.mover_progress_interval_ms / 1000
        if now - self._said_at.get(job_id, -1e9) < interval_s:
            return False
        if len(self._said_at) > 10_000:  # jobs long finished
            self._said_at.clear()
        self._said_at[job_id] = now
        return await self.jobs.progress_due(job_id)

    async def _fold(self, conn: DbConnection, msg: ApplyChunk) -> asyncpg.Record:
        """Fold the chunks counted so far into the job's row; the chunk that counts its
        last page completes it (a `delete` job deletes its list in that transaction)."""
        async with conn.transaction():
            job = await sql.fold_progress(conn=conn, job_id=msg.job_id, by=msg.id)
            if job is None:  # nothing counted since the last fold
                job = await sql.job(conn=conn, job_id=msg.job_id)
                assert job is not None
                return job
            await self.jobs.on_completion(conn, job, msg.id)
        return job

    async def _try_again(self, job: asyncpg.Record, msg: ApplyChunk) -> None:
        """Send the chunk's next attempt, after a backoff."""
        await asyncio.sleep(planning.retry_backoff_s(msg.attempt))
        again = ApplyChunk(
            id=derived_id(msg.job_id, msg.run, msg.pages[0], msg.attempt + 1),
            job_id=msg.job_id, run=msg.run, pages=msg.pages, attempt=msg.attempt + 1,
        )  # fmt: skip
        await self.jobs.publish_chunk(job, again)
