"""The mover's commands (`mover.commands`): MoveCompanies plans a job, StartJob starts a
scheduled one, CancelJob cancels, RetryJob starts a failed or cancelled job again.

`handle` runs inside the delivery transaction (contracts/delivery) and writes only the
mover's tables; `after` runs after the commit (also after a redelivered duplicate) and
publishes what the committed state says the command caused. Which command caused what
is recorded in the job's row (`started_by`, `finished_by`) and its pages
(`released_by`), so a redelivery publishes the same things under the same ids.

A job with one page left is applied by the command that starts it, in its own
transaction (mover/short.py), instead of being released as a chunk. Commands are
handled several at once (`mover_command_concurrency`), as they already were across
mover processes: each statement on a job's row waits for that row, and CancelJob is
one statement that cancels the job whether or not its MoveCompanies came first.
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
from mover import planning, short, short_sql, sql
from mover.jobs import Jobs, counts, final_event
from mover.metrics import MoverMetrics

_COMMAND = msgspec.json.Decoder(MoveCompanies)


def _scheduled_by(job: asyncpg.Record, msg: Message) -> bool:
    """`msg` planned the job (or a retry of it) for later."""
    planning_command = isinstance(msg, MoveCompanies | RetryJob)
    return job["status"] == "scheduled" and job["planned"] and planning_command


def _started(job: asyncpg.Record, msg: Message) -> JobStarted:
    return JobStarted(
        id=derived_id(msg.id, "started"), job_id=job["job_id"], attempt=job["run"],
        counts=counts(job),
    )  # fmt: skip


def _done(job: asyncpg.Record, msg: Message) -> list[Message]:
    """JobStarted and the job's end: a job `msg` started and ended has no chunk out."""
    started = _started(job, msg)  # made first: its time is the job's start
    end = final_event(job, msg.id)
    return [started] if end is None else [started, end]


class Commands:
    def __init__(self, jobs: Jobs, metrics: MoverMetrics) -> None:
        self.jobs = jobs
        self.metrics = metrics
        # What each command applied on the short path in a transaction not committed
        # yet, counted by `after` once it has (as mover/chunks.py does for chunks).
        self._applied: dict[str, short.Applied] = {}

    async def handle(self, msg: Message, conn: DbConnection) -> None:
        match msg:
            case MoveCompanies():
                await self._plan(msg, conn)
            case StartJob():
                job = await sql.start_due(conn=conn, job_id=msg.job_id, by=msg.id)
                if job is not None:
                    await self._release_first(conn, job, msg.id)
            case CancelJob():
                await short_sql.cancel(conn=conn, job_id=msg.job_id, by=msg.id)
            case RetryJob():
                await self._restart(msg, conn)

    async def after(self, msg: Message) -> None:
        self._count(msg)
        job_id = getattr(msg, "job_id", None)
        if job_id is None:
            return
        job = await sql.job(conn=self.jobs.pool(), job_id=job_id)
        if job is None:
            return
        if job["started_by"] == msg.id and job["finished_by"] == msg.id:
            await self.jobs.events(*_done(job, msg))  # started and ended at once
            return
        await self._say(job, msg)

    async def after_many(self, msgs: list[Message]) -> None:
        """`after` for the commands of one read: their jobs in one query, the events of
        the jobs they started and ended at once in one round trip, the rest one by one."""
        for msg in msgs:
            self._count(msg)
        job_ids = [job_id for msg in msgs if (job_id := getattr(msg, "job_id", None))]
        rows = await short_sql.jobs(conn=self.jobs.pool(), job_ids=job_ids)
        events: list[Message] = []
        for msg in msgs:
            job = rows.get(getattr(msg, "job_id", ""))
            if job is None:
                continue
            if job["started_by"] == msg.id and job["finished_by"] == msg.id:
                events += _done(job, msg)
            else:
                await self._say(job, msg)
        if events:
            await self.jobs.events(*events)

    def _count(self, msg: Message) -> None:
        if (applied := self._applied.pop(msg.id, None)) is not None:
            self.metrics.count(
                applied.kind, added=applied.added, already_present=applied.present,
                removed=applied.removed,
            )  # fmt: skip

    async def _say(self, job: asyncpg.Record, msg: Message) -> None:
        """What the committed state says `msg` caused, bar a start and end at once."""
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
        await self.jobs.event(_started(job, msg))
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
        await self.jobs.on_completion(conn, job, by)  # nothing to do: done at once
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
            job = await sql.add_progress(
                conn=conn, job_id=msg.job_id, pages=0, rows=0, added=0, removed=0,
                row_cost_us=job["row_cost_us"] or 0.0, by=msg.id,
            )  # fmt: skip
            await self.jobs.on_completion(conn, job, msg.id)
            return
        await self._release_first(conn, job, msg.id)

    async def _release_first(self, conn: DbConnection, job: asyncpg.Record, by: str) -> None:
        if short.fits(job) and (now := await short.apply_now(conn, job, by)) is not None:
            job, self._applied[by] = now
            await self.jobs.on_completion(conn, job, by)
            return
        await self.jobs.release(conn, job, by, in_flight=self.jobs.first_window(job))
