"""The mover's commands (`mover.commands`): MoveCompanies plans a job, StartJob starts a
scheduled one, CancelJob cancels, RetryJob starts a failed or cancelled job again.

`handle` runs inside the delivery transaction (contracts/delivery) and writes only the
mover's tables; `after` runs after the commit (also after a redelivered duplicate) and
publishes what the committed state says the command caused. Which command caused what
is recorded in the job's row (`started_by`, `finished_by`) and its pages
(`released_by`), so a redelivery publishes the same things under the same ids.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import msgspec

from contracts import codec
from contracts.jobs import FINISHED
from contracts.messages import (
    CancelJob,
    JobScheduled,
    JobStarted,
    Message,
    MoveCompanies,
    RetryJob,
    StartJob,
    derived_id,
)
from contracts.runtime.db import DbConnection
from mover import planning, sql
from mover.jobs import Jobs, counts

_COMMAND = msgspec.json.Decoder(MoveCompanies)


def _scheduled_by(job: asyncpg.Record, msg: Message) -> bool:
    """`msg` planned the job (or a retry of it) for later."""
    planning_command = isinstance(msg, MoveCompanies | RetryJob)
    return job["status"] == "scheduled" and job["planned"] and planning_command


class Commands:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def handle(self, msg: Message, conn: DbConnection) -> None:
        match msg:
            case MoveCompanies():
                await self._plan(msg, conn)
            case StartJob():
                job = await sql.start_due(conn=conn, job_id=msg.job_id, by=msg.id)
                if job is not None:
                    await self._release_first(conn, job, msg.id)
            case CancelJob():
                if await sql.cancel_job(conn=conn, job_id=msg.job_id, by=msg.id) is None:
                    await sql.cancel_unplanned(conn=conn, job_id=msg.job_id, by=msg.id)
            case RetryJob():
                await self._restart(msg, conn)

    async def after(self, msg: Message) -> None:
        job_id = getattr(msg, "job_id", None)
        if job_id is None:
            return
        job = await sql.job(conn=self.jobs.pool(), job_id=job_id)
        if job is None:
            return
        if job["started_by"] == msg.id:
            await self._said_started(job, msg)
        if _scheduled_by(job, msg):
            await self._said_scheduled(job, msg)
        if job["finished_by"] == msg.id:
            await self.jobs.finished(job, msg.id)
        elif isinstance(msg, MoveCompanies) and not job["planned"] and job["status"] in FINISHED:
            # Ended before it was planned (cancelled, or its command dead-lettered); a
            # MoveCompanies sent again (the gateway's outbox) gets that end said again.
            await self.jobs.finished(job, job["finished_by"])

    async def _said_started(self, job: asyncpg.Record, msg: Message) -> None:
        started = JobStarted(
            id=derived_id(msg.id, "started"), job_id=job["job_id"], attempt=job["run"],
            counts=counts(job),
        )  # fmt: skip
        await self.jobs.event(started)
        await self.jobs.publish_released(job, msg.id)

    async def _said_scheduled(self, job: asyncpg.Record, msg: Message) -> None:
        scheduled = JobScheduled(
            id=derived_id(msg.id, "scheduled"), job_id=job["job_id"], attempt=job["run"],
            not_before=job["not_before"], counts=counts(job),
        )  # fmt: skip
        await self.jobs.event(scheduled)

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
        s = self.jobs.settings
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
            await self._release_first(conn, job, by)

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
        if job["status"] == "scheduled":  # its start time is still ahead: the scheduler
            return  # starts it (`after` says JobScheduled for the new attempt)
        if job["pages_done"] >= job["pages"]:  # nothing left: it completes at once
            await sql.add_progress(
                conn=conn, job_id=msg.job_id, pages=0, rows=0, added=0, removed=0,
                row_cost_us=job["row_cost_us"] or 0.0, by=msg.id,
            )  # fmt: skip
            return
        await self._release_first(conn, job, msg.id)

    async def _release_first(self, conn: DbConnection, job: asyncpg.Record, by: str) -> None:
        await self.jobs.release(conn, job, by, in_flight=self.jobs.first_window(job))
