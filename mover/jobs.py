"""What every mover handler does to a job besides its own decision: release chunks, and
publish what the committed state says (released chunks on the job's lane, the job's
events on `jobs.events`).

`release` runs inside the delivery transaction (it only records which pages go out,
and on behalf of which message); the `publish_*` and `finished` calls run after the
commit, so a redelivered message publishes the same things again under the same
derived ids.
"""

from __future__ import annotations

import asyncpg

from contracts import codec, streams
from contracts.messages import (
    ApplyChunk,
    Counts,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgressed,
    Message,
    derived_id,
    new_id,
)
from contracts.runtime.db import DbConnection
from contracts.runtime.service import Service
from mover import planning, short_sql, sql


def counts(job: asyncpg.Record) -> Counts:
    return Counts(
        total=job["total"],
        done=job["done"],
        added=job["added"],
        already_present=job["already_present"],
        removed=job["removed"],
    )


class Jobs:
    """The service, its streams, and a job's chunks and events."""

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

    def pool(self) -> asyncpg.Pool:
        return self.service.pool()

    # --- in the delivery transaction -------------------------------------------------

    def window(self, job: asyncpg.Record) -> int:
        return planning.window(job["priority"], self.settings.mover_window)

    def first_window(self, job: asyncpg.Record) -> int:
        """Probe chunks until a row's cost is measured, then the whole window."""
        return self.window(job) if job["row_cost_us"] is not None else planning.PROBE_CHUNKS

    async def release(
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

    async def on_completion(self, conn: DbConnection, job: asyncpg.Record, by: str) -> None:
        """What a job does when message `by` completes it, in that same transaction: a
        `delete` job deletes its list (with any company added since it was planned)."""
        if job["mode"] == "delete" and job["status"] == "completed" and job["finished_by"] == by:
            await sql.drop_list(conn=conn, collection=str(job["source"]))

    # --- after the commit ------------------------------------------------------------

    async def publish_released(self, job: asyncpg.Record, by: str) -> None:
        chunks = await short_sql.released_chunks(conn=self.pool(), job_id=job["job_id"], by=by)
        for pages, attempt in chunks:
            chunk = ApplyChunk(
                id=derived_id(job["job_id"], job["run"], pages[0], attempt),
                job_id=job["job_id"], run=job["run"], pages=pages, attempt=attempt,
            )  # fmt: skip
            await self.publish_chunk(job, chunk)

    async def publish_chunk(self, job: asyncpg.Record, chunk: ApplyChunk) -> None:
        await codec.publish(self.redis, self.lanes[job["lane"]], chunk)

    def progressed(self, job: asyncpg.Record) -> JobProgressed:
        return JobProgressed(
            id=new_id(), job_id=job["job_id"], counts=counts(job), attempt=job["run"]
        )

    async def finished(self, job: asyncpg.Record, by: str) -> None:
        if (event := final_event(job, by)) is not None:
            await self.event(event)

    async def progress_due(self, job_id: str) -> bool:
        """At most one progress event per job per interval (across mover processes)."""
        key = f"{self.jobs_stream}.progress-gate:{job_id}"
        interval = self.settings.mover_progress_interval_ms
        return bool(await self.redis.set(key, b"1", nx=True, px=interval))

    async def event(self, event: Message) -> None:
        await codec.publish(self.redis, self.jobs_stream, event)

    async def events(self, *events: Message) -> None:
        """Several events in one round trip, in this order."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self.jobs_stream, codec.entry_fields(event))  # type: ignore[arg-type]
            await pipe.execute()


def final_event(job: asyncpg.Record, by: str) -> Message | None:
    """The event that says the job's end (None while it is not over), on behalf of `by`."""
    job_id, event_id, run = job["job_id"], derived_id(by, job["status"]), job["run"]
    if job["status"] == "completed":
        return JobCompleted(id=event_id, job_id=job_id, counts=counts(job), attempt=run)
    if job["status"] == "failed":
        return JobFailed(
            id=event_id, job_id=job_id, error=job["error"] or "failed", attempt=run,
            counts=counts(job),
        )  # fmt: skip
    if job["status"] == "cancelled":
        return JobCancelled(id=event_id, job_id=job_id, counts=counts(job), attempt=run)
    return None
