"""The jobs projection: `jobs.events` → the `jobs` table the gateway reads.

The only writer of `jobs`: JobQueued inserts a job's row, every later event updates
it. Until the row is there, the gateway answers for a move it just accepted from its
own outbox (gateway/jobs/sql.py: `job`), so a GET right after the 202 finds it.

Order-insensitive (see aggregator/jobs_sql.py): each event says which status it
stands for in which attempt, and the row keeps the furthest one. An event for a job
whose row is not there yet (its JobQueued not applied yet) is retried later.

Every event applied is kept, in the same transaction, in the job's timeline
(`job_events`, the only writer too; GET /jobs/{id}/timeline reads it): the entry it
came from, its type, attempt, time, the status it stands for and its counts.

Events are consumed in batches (`register_jobs`): up to JOBS_MANY read together are
applied in one transaction, one after the other in stream order; if one of them fails
(say, an event whose JobQueued is not applied yet) the read is applied one by one.
"""

from __future__ import annotations

from prometheus_client import Counter

from aggregator import jobs_sql as sql
from aggregator.job_counts import KINDS
from contracts import streams
from contracts.jobs import FINISHED
from contracts.messages import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobScheduled,
    JobStarted,
    Message,
)
from contracts.runtime.db import DbConnection
from contracts.runtime.service import Service

JobChange = JobScheduled | JobStarted | JobProgressed | JobCompleted | JobFailed | JobCancelled
# What each event says about the job's status (a progress report means it runs).
STATUS_OF: dict[type[Message], str] = {
    JobScheduled: "scheduled",
    JobStarted: "running",
    JobProgressed: "running",
    JobCompleted: "completed",
    JobFailed: "failed",
    JobCancelled: "cancelled",
}


class JobsProjection:
    def __init__(self, service: Service) -> None:
        self.outcomes = Counter(
            "conveyor_jobs_total",
            "Jobs that reached an end, by kind and status.",
            ["kind", "status"],
            registry=service.metrics.registry,
        )
        for kind in KINDS:  # at 0 from the start, so increase() sees the first of each
            for status in FINISHED:
                self.outcomes.labels(kind, status)

    async def apply(self, event: Message, conn: DbConnection) -> None:
        entry_id = await sql.applied_entry(conn=conn, group=streams.AGGREGATOR, message_id=event.id)
        await sql.record_events(conn=conn, events=[await self._apply(event, conn, entry_id)])

    async def apply_many(self, events: list[Message], conn: DbConnection) -> None:
        """Events read together, in stream order, in one transaction: their entries found
        in one query, each applied to its job's row, their timeline kept in one go."""
        entries = await sql.applied_entries(
            conn=conn, group=streams.AGGREGATOR, message_ids=[e.id for e in events]
        )
        timeline = [await self._apply(event, conn, entries.get(event.id)) for event in events]
        await sql.record_events(conn=conn, events=timeline)

    async def _apply(
        self, event: Message, conn: DbConnection, entry_id: str | None
    ) -> sql.TimelineEvent:
        """Apply `event` to its job's row; what the job's timeline keeps of it."""
        match event:
            case JobQueued():
                await sql.insert_queued(conn=conn, event=event, entry_id=entry_id)
                return sql.TimelineEvent(
                    job_id=event.job_id, entry_id=_entry(entry_id, event), type_="JobQueued",
                    attempt=0, at=event.at, status="queued", counts=None,
                )  # fmt: skip
            case (
                JobScheduled() | JobStarted() | JobProgressed() | JobCompleted() | JobFailed()
                | JobCancelled()
            ):  # fmt: skip
                return await self._change(event, conn, entry_id)
        raise TypeError(f"not a job event: {type(event).__name__}")

    async def _change(
        self, event: JobChange, conn: DbConnection, entry_id: str | None
    ) -> sql.TimelineEvent:
        status = STATUS_OF[type(event)]
        row = await sql.apply_event(
            conn=conn, job_id=event.job_id, attempt=event.attempt, status=status,
            counts=event.counts, at=event.at, entry_id=entry_id,
            error=event.error if isinstance(event, JobFailed) else None,
        )  # fmt: skip
        if row is None:
            raise LookupError(f"job {event.job_id} has no row yet; {type(event).__name__} later")
        if row["moves"] and status in FINISHED:
            self.outcomes.labels(row["kind"], status).inc()
        return sql.TimelineEvent(
            job_id=event.job_id, entry_id=_entry(entry_id, event),
            type_=type(event).__name__, attempt=row["attempt"], at=event.at, status=status,
            counts=event.counts, error=event.error if isinstance(event, JobFailed) else None,
        )  # fmt: skip


def _entry(entry_id: str | None, event: Message) -> str:
    """The entry the delivery rules recorded for `event` (they always do: every event
    comes through them); without it the timeline could not place the event."""
    if entry_id is None:
        raise LookupError(f"{type(event).__name__} {event.id}: no applied entry recorded")
    return entry_id


# Up to JOBS_MANY events read together are applied in one transaction, in stream order
# (one read at a time: the events of a job stay in order).
JOBS_MANY = 50


def register_jobs(service: Service) -> None:
    projection = JobsProjection(service)
    service.delivery.consume(
        streams.JOBS_EVENTS,
        streams.AGGREGATOR,
        projection.apply,
        many=JOBS_MANY,
        handle_many=projection.apply_many,
    )
