"""The mover's chunks (`mover.chunks` and `mover.express`, the same handler on both lanes):
apply a chunk's pages, count them, release the next chunks.

`apply` runs inside the delivery transaction; a chunk that fails in PostgreSQL keeps
its record (a savepoint) and counts an attempt, and the job fails once a chunk has used
up its attempts. `after_apply` runs after the commit: it says the job's end, sends a
failed chunk's next attempt (after a backoff), or a progress event, and publishes the
chunks this one released.
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

log = logging.getLogger("conveyor.mover")


class Chunks:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def apply(self, msg: ApplyChunk, conn: DbConnection) -> None:
        job = await sql.job(conn=conn, job_id=msg.job_id)
        if job is None:
            raise LookupError(f"chunk of unknown job {msg.job_id}")
        if job["status"] != "running" or job["run"] != msg.run:
            return  # cancelled, failed, or a chunk of an earlier run: nothing to do
        pages = await sql.lock_pages(conn=conn, job_id=msg.job_id, pages=msg.pages)
        numbers = [p["page"] for p in pages if p["status"] == "pending"]
        if not numbers:
            return
        started = time.perf_counter()
        try:
            async with conn.transaction():  # a savepoint: a failing chunk keeps the record
                rows, added, removed = await sql.apply_pages(
                    conn=conn, job_id=msg.job_id, pages=numbers, source=str(job["source"]),
                    target=str(job["target"]), move=job["mode"] == "move",
                )  # fmt: skip
        except asyncpg.PostgresError as exc:
            await self._failed(conn, job, msg, numbers, exc)
            return
        cost_us = (time.perf_counter() - started) * 1_000_000 / max(rows, 1)
        await sql.finish_pages(conn=conn, job_id=msg.job_id, pages=numbers)
        job = await sql.add_progress(
            conn=conn, job_id=msg.job_id, pages=len(numbers), rows=rows, added=added,
            removed=removed, row_cost_us=planning.next_row_cost(job["row_cost_us"], cost_us),
            by=msg.id,
        )  # fmt: skip
        if job["status"] == "running":
            await self.jobs.release(conn, job, msg.id, in_flight=self.jobs.window(job))

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
        jobs = self.jobs
        job = await sql.job(conn=jobs.pool(), job_id=msg.job_id)
        if job is None:
            return
        if job["finished_by"] == msg.id:
            await jobs.finished(job, msg.id)
        elif await self._attempt_failed(msg) and msg.attempt < job["max_attempts"]:
            if job["status"] == "running" and job["run"] == msg.run:
                await self._try_again(job, msg)
        elif job["status"] == "running" and await jobs.progress_due(msg.job_id):
            await jobs.event(jobs.progressed(job))
        elif job["status"] == "cancelled":
            # A chunk that was under way when the job was cancelled stays applied: say so.
            await jobs.event(jobs.progressed(job))
        await jobs.publish_released(job, msg.id)

    async def _attempt_failed(self, msg: ApplyChunk) -> bool:
        return await sql.attempt_failed(
            conn=self.jobs.pool(), job_id=msg.job_id, pages=msg.pages, attempt=msg.attempt
        )

    async def _try_again(self, job: asyncpg.Record, msg: ApplyChunk) -> None:
        """Send the chunk's next attempt, after a backoff."""
        await asyncio.sleep(planning.retry_backoff_s(msg.attempt))
        again = ApplyChunk(
            id=derived_id(msg.job_id, msg.run, msg.pages[0], msg.attempt + 1),
            job_id=msg.job_id, run=msg.run, pages=msg.pages, attempt=msg.attempt + 1,
        )  # fmt: skip
        await self.jobs.publish_chunk(job, again)
