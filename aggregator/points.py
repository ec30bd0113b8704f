"""Per-minute aggregates of batches, and the runs projection.

- `points` (PointsRecorded): the message's on-time points are grouped by minute
  and merged into `minute_aggregates` in one statement (count, sum, min, max;
  avg = sum / count when read), in the delivery rules' transaction that records
  the message as applied. A redelivered or replayed message finds its record and
  changes nothing; a killed aggregator's transaction is rolled back whole and the
  message is claimed by another. So the aggregates are exact: they equal a
  recomputation from the raw on-time points (the tests check it:
  tests/support/batches.py `stored_equals_recomputed`).
  Lateness was decided by ingest from the point's arrival (contracts/minutes.py);
  late points never reach this handler.
  Consumed in batches (aggregator/points_wiring.py): `handle_many` merges the points
  of every message of a read in one statement, in one transaction.
- `batches.events`: BatchStarted / BatchStopped fill `batch_runs` (in either
  order); MinuteClosed is this service's own announcement and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from aggregator import points_sql as sql
from contracts.messages import BatchEvent, BatchStarted, BatchStopped, PointsRecorded, utcnow
from contracts.runtime.db import DbConnection

# From a point's arrival (gateway or producer) to its minute's aggregate being written.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PointsAggregator:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.aggregated = Counter(
            "conveyor_points_aggregated_total",
            "On-time points added to their minute's aggregate.",
            registry=registry,
        )
        self.latency = Histogram(
            "conveyor_point_aggregate_latency_seconds",
            "From a point's arrival to its minute's aggregate being written (per message).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    async def handle(self, message: PointsRecorded, conn: DbConnection) -> None:
        if not message.points:
            return
        await sql.add_points(
            conn=conn,
            batch_id=message.batch_id,
            ts=[p.ts for p in message.points],
            keys=[p.key for p in message.points],
        )
        self.aggregated.inc(len(message.points))
        self.latency.observe((utcnow() - message.received_at).total_seconds())

    async def handle_many(self, messages: list[PointsRecorded], conn: DbConnection) -> None:
        """The on-time points of every message, merged in one statement."""
        batch_ids: list[str] = []
        ts: list[datetime] = []
        keys: list[float] = []
        for message in messages:
            batch_ids += [message.batch_id] * len(message.points)
            ts += [p.ts for p in message.points]
            keys += [p.key for p in message.points]
        if keys:
            await sql.add_points_many(conn=conn, batch_ids=batch_ids, ts=ts, keys=keys)
        self.aggregated.inc(len(keys))
        now = utcnow()
        for message in messages:
            if message.points:
                self.latency.observe((now - message.received_at).total_seconds())


async def project_batch_event(event: BatchEvent, conn: DbConnection) -> None:
    if isinstance(event, BatchStarted):
        await sql.run_started(
            conn=conn,
            run_id=event.run_id,
            batch_id=event.batch_id,
            started_at=event.started_at,
            rate=event.rate,
            distribution=event.distribution,
        )
    elif isinstance(event, BatchStopped):
        await sql.run_stopped(
            conn=conn,
            run_id=event.run_id,
            batch_id=event.batch_id,
            stopped_at=event.stopped_at,
            reason=event.reason,
        )
