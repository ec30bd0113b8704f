"""The jobs projection: `jobs.events` → the `jobs` table the gateway reads."""

from __future__ import annotations

from prometheus_client import Counter

from aggregator import jobs_sql as sql
from contracts import streams
from contracts.db import DbConnection
from contracts.messages import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobStarted,
    Message,
)
from contracts.service import Service


class JobsProjection:
    def __init__(self, service: Service) -> None:
        self.outcomes = Counter(
            "conveyor_jobs_total",
            "Jobs that reached an end, by kind and status.",
            ["kind", "status"],
            registry=service.metrics.registry,
        )

    async def apply(self, event: Message, conn: DbConnection) -> None:
        match event:
            case JobQueued():
                await sql.insert_queued(conn=conn, event=event)
            case JobStarted():
                await sql.started(
                    conn=conn, job_id=event.job_id, attempt=event.attempt, counts=event.counts
                )
            case JobProgressed():
                await sql.progressed(conn=conn, job_id=event.job_id, counts=event.counts)
            case JobCompleted() | JobFailed() | JobCancelled():
                status = {JobCompleted: "completed", JobFailed: "failed"}.get(
                    type(event), "cancelled"
                )
                error = event.error if isinstance(event, JobFailed) else None
                row = await sql.finished(
                    conn=conn, job_id=event.job_id, status=status, counts=event.counts, error=error
                )
                if row is not None:
                    self.outcomes.labels(row["kind"], status).inc()


def register_jobs(service: Service) -> None:
    projection = JobsProjection(service)
    service.delivery.consume(streams.JOBS_EVENTS, streams.AGGREGATOR, projection.apply)
