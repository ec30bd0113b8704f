"""The jobs projection: `jobs.events` → the `jobs` table the gateway reads.

The only writer of `jobs`: JobQueued inserts a job's row, every later event updates
it. Until the row is there, the gateway answers for a move it just accepted from its
own outbox (gateway/jobs/sql.py: `job`), so a GET right after the 202 finds it.

Order-insensitive (see aggregator/jobs_sql.py): each event says which status it
stands for in which attempt, and the row keeps the furthest one. An event for a job
whose row is not there yet (its JobQueued not applied yet) is retried later.
"""

from __future__ import annotations

from prometheus_client import Counter

from aggregator import jobs_sql as sql
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

    async def apply(self, event: Message, conn: DbConnection) -> None:
        entry_id = await sql.applied_entry(conn=conn, group=streams.AGGREGATOR, message_id=event.id)
        match event:
            case JobQueued():
                await sql.insert_queued(conn=conn, event=event, entry_id=entry_id)
            case (
                JobScheduled() | JobStarted() | JobProgressed() | JobCompleted() | JobFailed()
                | JobCancelled()
            ):  # fmt: skip
                await self._change(event, conn, entry_id)

    async def _change(self, event: JobChange, conn: DbConnection, entry_id: str | None) -> None:
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


def register_jobs(service: Service) -> None:
    projection = JobsProjection(service)
    service.delivery.consume(streams.JOBS_EVENTS, streams.AGGREGATOR, projection.apply)
