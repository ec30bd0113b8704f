"""The mover's handlers: plan a job, apply its chunks, start, cancel and retry it.

Each handler runs inside the delivery transaction (contracts/delivery) and writes
only the mover's tables; its `after_*` twin runs after the commit (also after a
redelivered duplicate) and publishes what the committed state says this message
caused: job events on `jobs.events`, chunks on the job's lane. Which message
caused what is recorded in the rows themselves (`started_by`, `finished_by`,
`released_by`), so a redelivery publishes the same things again under the same
derived ids, never different ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import asyncpg
import msgspec

from contracts import codec, streams
from contracts.jobs import FINISHED
from contracts.messages import (
    ApplyChunk,
    CancelJob,
    Counts,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobScheduled,
    JobStarted,
    Message,
    MoveCompanies,
    RetryJob,
    StartJob,
    derived_id,
    new_id,
)
from contracts.runtime.db import DbConnection
from contracts.runtime.service import Service
from mover import planning, sql

log = logging.getLogger("conveyor.mover")
SCHEDULER_INTERVAL_S = 1.0
_COMMAND = msgspec.json.Decoder(MoveCompanies)


def counts(job: asyncpg.Record) -> Counts:
    return Counts(
        total=job["total"],
        done=job["done"],
        added=job["added"],
        already_present=job["already_present"],
        removed=job["removed"],
    )


class Mover:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.redis = service.redis
        prefix = self.settings.stream_prefix
        self.jobs_stream = streams.JOBS_EVENTS.prefixed(prefix).name
        self.commands_stream = streams.MOVER_COMMANDS.prefixed(prefix).name
        self.lanes = {
            "bulk": streams.MOVER_CHUNKS.prefixed(prefix).name,
            "express": streams.MOVER_EXPRESS.prefixed(prefix).name,
        }

    # --- mover.commands ---------------------------------------------------------

    async def on_command(self, msg: Message, conn: DbConnection) -> None:
        match msg:
            case MoveCompanies():
                await self._plan(msg, conn)
            case StartJob():
                job = await sql.start_due(conn=conn, job_id=msg.job_id, by=msg.id)
                if job is not None:
                    await self._release(conn, job, msg.id, in_flight=self._first_window(job))
            case CancelJob():
                if await sql.cancel_job(conn=conn, job_id=msg.job_id, by=msg.id) is None:
                    await sql.cancel_unplanned(conn=conn, job_id=msg.job_id, by=msg.id)
            case RetryJob():
                await self._restart(msg, conn)

    async def after_command(self, msg: Message) -> None:
        job_id = getattr(msg, "job_id", None)
        if job_id is None:
            return
        job = await sql.job(conn=self.service.pool(), job_id=job_id)
        if job is None:
            return
        if job["started_by"] == msg.id:
            started = JobStarted(
                id=derived_id(msg.id, "started"), job_id=job_id, attempt=job["run"],
                counts=counts(job),
            )  # fmt: skip
            await self._event(started)
            await self._publish_released(job, msg.id)
        if (
            job["status"] == "scheduled"
            and job["planned"]
            and isinstance(msg, MoveCompanies | RetryJob)
        ):
            scheduled = JobScheduled(
                id=derived_id(msg.id, "scheduled"), job_id=job_id, attempt=job["run"],
                not_before=job["not_before"], counts=counts(job),
            )  # fmt: skip
            await self._event(scheduled)
        if job["finished_by"] == msg.id:
            await self.finished(job, msg.id)
        elif isinstance(msg, MoveCompanies) and not job["planned"] and job["status"] in FINISHED:
            # Ended before it was planned (cancelled, or its command dead-lettered); a
            # MoveCompanies sent again (the gateway's outbox) gets that end said again.
            await self.finished(job, job["finished_by"])

    async def _plan(self, msg: MoveCompanies, conn: DbConnection) -> None:
        job = await sql.record_command(
            conn=conn, job_id=msg.job_id, command=codec.encode(msg).decode(),
            priority=msg.priority, max_attempts=msg.max_attempts, not_before=msg.not_before,
        )  # fmt: skip
        if job["planned"] or job["status"] != "scheduled":
            return  # planned before, or cancelled or failed before it was planned
        await self._cut(conn, msg, by=msg.id)

    async def _cut(self, conn: DbConnection, msg: MoveCompanies, *, by: str) -> None:
        """Plan the job of `msg` (its pages, lane and first status), on behalf of `by`."""
        s = self.settings
        pages, total = await sql.cut_pages(
            conn=conn, job_id=msg.job_id, source=msg.source,
            ids=msg.selection.ids if not msg.selection.all else None,
            exclude=msg.selection.exclude, page_size=s.mover_page_size,
        )  # fmt: skip
        status = planning.first_status(
            total=total, not_before=msg.not_before, now=datetime.now(UTC)
        )
        lane = planning.lane(total=total, priority=msg.priority, express_rows=s.mover_express_rows)
        job = await sql.set_plan(
            conn=conn, job_id=msg.job_id, source=msg.source, target=msg.target, mode=msg.mode,
            pages=pages, total=total, lane=lane, status=status, by=by,
        )  # fmt: skip
        if status == "running":
            await self._release(conn, job, by, in_flight=self._first_window(job))

    async def _restart(self, msg: RetryJob, conn: DbConnection) -> None:
        job = await sql.restart_job(conn=conn, job_id=msg.job_id, by=msg.id)
        if job is None:
            return
        if not job["planned"]:  # ended before it was planned: plan it now
            command = _COMMAND.decode(job["command"]) if job["command"] else msg.move
            if command is not None:
                await sql.keep_command(
                    conn=conn, job_id=msg.job_id, command=codec.encode(command).decode()
                )
                await self._cut(conn, command, by=msg.id)
            return
        if job["pages_done"] >= job["pages"]:  # nothing left: it completes at once
            await sql.add_progress(
                conn=conn, job_id=msg.job_id, pages=0, rows=0, added=0, removed=0,
                row_cost_us=job["row_cost_us"] or 0.0, by=msg.id,
            )  # fmt: skip
            return
        await self._release(conn, job, msg.id, in_flight=self._first_window(job))

    # --- mover.chunks / mover.express ---------------------------------------------

    async def apply(self, msg: ApplyChunk, conn: DbConnection) -> None:
        job = await sql.job(conn=conn, job_id=msg.job_id)
        if job is None:
            raise LookupError(f"chunk of unknown job {msg.job_id}")
        if job["status"] != "running" or job["run"] != msg.run:
            return  # cancelled, failed, or a chunk of an earlier run: nothing to do
        pages = await sql.lock_pages(conn=conn, job_id=msg.job_id, pages=msg.pages)
        todo = [p for p in pages if p["status"] == "pending"]
        if not todo:
            return
        numbers = [p["page"] for p in todo]
        started = time.perf_counter()
        try:
            async with conn.transaction():  # a savepoint: a failing chunk keeps the record
                rows, added, removed = await sql.apply_pages(
                    conn=conn, job_id=msg.job_id, pages=numbers, source=str(job["source"]),
                    target=str(job["target"]), move=job["mode"] == "move",
                )  # fmt: skip
        except asyncpg.PostgresError as exc:
            await self._chunk_failed(conn, job, msg, numbers, exc)
            return
        cost_us = (time.perf_counter() - started) * 1_000_000 / max(rows, 1)
        await sql.finish_pages(conn=conn, job_id=msg.job_id, pages=numbers)
        job = await sql.add_progress(
            conn=conn, job_id=msg.job_id, pages=len(numbers), rows=rows, added=added,
            removed=removed, row_cost_us=planning.next_row_cost(job["row_cost_us"], cost_us),
            by=msg.id,
        )  # fmt: skip
        if job["status"] == "running":
            await self._release(conn, job, msg.id, in_flight=self._window(job))

    async def _chunk_failed(
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
        pool = self.service.pool()
        job = await sql.job(conn=pool, job_id=msg.job_id)
        if job is None:
            return
        if job["finished_by"] == msg.id:
            await self.finished(job, msg.id)
        elif await self._attempt_failed(msg) and msg.attempt < job["max_attempts"]:
            if job["status"] == "running" and job["run"] == msg.run:
                await asyncio.sleep(planning.retry_backoff_s(msg.attempt))
                again = ApplyChunk(
                    id=derived_id(msg.job_id, msg.run, msg.pages[0], msg.attempt + 1),
                    job_id=msg.job_id, run=msg.run, pages=msg.pages, attempt=msg.attempt + 1,
                )  # fmt: skip
                await codec.publish(self.redis, self.lanes[job["lane"]], again)
        elif job["status"] == "running" and await self._progress_due(msg.job_id):
            await self._event(self._progressed(job))
        elif job["status"] == "cancelled":
            # A chunk that was under way when the job was cancelled stays applied: say so.
            await self._event(self._progressed(job))
        await self._publish_released(job, msg.id)

    async def _attempt_failed(self, msg: ApplyChunk) -> bool:
        failed = await self.service.pool().fetchval(
            """SELECT bool_or(status = 'pending' AND attempts >= $3) FROM move_pages
               WHERE job_id = $1 AND page = ANY ($2::int[])""",
            msg.job_id,
            msg.pages,
            msg.attempt,
        )
        return bool(failed)

    # --- the scheduler: jobs with a start time ------------------------------------

    async def schedule_due(self) -> None:
        """Send StartJob for planned jobs whose `not_before` has come (every mover runs
        this; the StartJob ids are derived, so several senders start a job once)."""
        while True:
            try:
                for job_id in await sql.due_jobs(conn=self.service.pool()):
                    start = StartJob(id=derived_id(job_id, "start"), job_id=job_id)
                    await codec.publish_once(self.redis, self.commands_stream, start, ttl_s=60)
            except Exception as exc:
                log.warning("scheduler: %s", exc)
            await asyncio.sleep(SCHEDULER_INTERVAL_S)

    # --- shared -------------------------------------------------------------------------

    def _window(self, job: asyncpg.Record) -> int:
        return planning.window(job["priority"], self.settings.mover_window)

    def _first_window(self, job: asyncpg.Record) -> int:
        """Probe chunks until a row's cost is measured, then the whole window."""
        return self._window(job) if job["row_cost_us"] is not None else planning.PROBE_CHUNKS

    async def _release(
        self, conn: DbConnection, job: asyncpg.Record, by: str, in_flight: int
    ) -> None:
        s = self.settings
        size = planning.pages_per_chunk(
            job["row_cost_us"], page_size=s.mover_page_size, target_s=s.mover_chunk_target_s,
            max_pages=s.mover_max_pages_per_chunk,
        )  # fmt: skip
        await sql.release(
            conn=conn, job_id=job["job_id"], run=job["run"], by=by, in_flight=in_flight,
            pages_per_chunk=size,
        )  # fmt: skip

    async def _publish_released(self, job: asyncpg.Record, by: str) -> None:
        chunks = await sql.released_chunks(conn=self.service.pool(), job_id=job["job_id"], by=by)
        for pages in chunks:
            chunk = ApplyChunk(
                id=derived_id(job["job_id"], job["run"], pages[0], 1),
                job_id=job["job_id"], run=job["run"], pages=pages,
            )  # fmt: skip
            await codec.publish(self.redis, self.lanes[job["lane"]], chunk)

    def _progressed(self, job: asyncpg.Record) -> JobProgressed:
        return JobProgressed(
            id=new_id(), job_id=job["job_id"], counts=counts(job), attempt=job["run"]
        )

    async def finished(self, job: asyncpg.Record, by: str) -> None:
        job_id, event_id, run = job["job_id"], derived_id(by, job["status"]), job["run"]
        event: Message
        if job["status"] == "completed":
            event = JobCompleted(id=event_id, job_id=job_id, counts=counts(job), attempt=run)
        elif job["status"] == "failed":
            event = JobFailed(
                id=event_id, job_id=job_id, error=job["error"] or "failed", attempt=job["run"],
                counts=counts(job),
            )  # fmt: skip
        elif job["status"] == "cancelled":
            event = JobCancelled(id=event_id, job_id=job_id, counts=counts(job), attempt=run)
        else:
            return
        await self._event(event)

    async def _progress_due(self, job_id: str) -> bool:
        """At most one progress event per job per interval (across mover processes)."""
        key = f"{self.jobs_stream}.progress-gate:{job_id}"
        interval = self.settings.mover_progress_interval_ms
        return bool(await self.redis.set(key, b"1", nx=True, px=interval))

    async def _event(self, event: Message) -> None:
        await codec.publish(self.redis, self.jobs_stream, event)
