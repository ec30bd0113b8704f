"""Storing points: every RecordPoints (pushed or generated) goes through here.

In the delivery rules' transaction the points are COPYed into `points`, each with
its lateness verdict (contracts/minutes.py); the transaction also records the
message as applied, so a redelivery stores nothing twice. After the commit the
on-time points go on to the `points` stream as PointsRecorded, whose id is
derived from the command's, so a crash between commit and publish (the publish
is repeated on redelivery) makes at most a duplicate that the aggregator drops.

Consumed in batches (ingest/app.py): `handle_many` COPYs the points of every message
of a read at once, `after_commit_many` appends their PointsRecorded in one pipeline.
"""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis

from contracts import codec
from contracts.messages import Point, PointsRecorded, RecordPoints, derived_id
from contracts.minutes import is_late
from contracts.runtime.db import DbConnection
from ingest import sql
from ingest.metrics import IngestMetrics


def lateness(message: RecordPoints, grace_s: float) -> list[bool]:
    """`is_late` of each point. A point no older than `grace_s` at arrival is on time
    whatever its minute (its minute ends after it), so only older ones are worked out."""
    received = message.received_at
    sure = received - timedelta(seconds=grace_s)
    return [p.ts < sure and is_late(p.ts, received, grace_s) for p in message.points]


def rows(message: RecordPoints, late: list[bool]) -> list[sql.PointRow]:
    return [
        (message.batch_id, p.ts, p.key, lt, message.received_at, message.id, i)
        for i, (p, lt) in enumerate(zip(message.points, late, strict=True))
    ]


def recorded(message: RecordPoints, late: list[bool]) -> PointsRecorded:
    on_time: list[Point] = [p for p, lt in zip(message.points, late, strict=True) if not lt]
    return PointsRecorded(
        id=derived_id(message.id, "recorded"),
        batch_id=message.batch_id,
        points=on_time,
        received_at=message.received_at,
        late=len(message.points) - len(on_time),
    )


class PointsRecorder:
    def __init__(
        self, redis: aioredis.Redis, stream: str, grace_s: float, metrics: IngestMetrics
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.grace_s = grace_s
        self.metrics = metrics

    async def handle(self, message: RecordPoints, conn: DbConnection) -> None:
        late = lateness(message, self.grace_s)
        await sql.insert_points(conn=conn, rows=rows(message, late))
        self._count(message, late)

    async def handle_many(self, messages: list[RecordPoints], conn: DbConnection) -> None:
        """The points of every message in one COPY."""
        verdicts = [lateness(message, self.grace_s) for message in messages]
        all_rows: list[sql.PointRow] = []
        for message, late in zip(messages, verdicts, strict=True):
            all_rows += rows(message, late)
        await sql.insert_points(conn=conn, rows=all_rows)
        # Counted once the COPY is in: a read whose COPY fails falls back to one by
        # one (contracts/delivery/consumer.py) and each message is counted there.
        for message, late in zip(messages, verdicts, strict=True):
            self._count(message, late)

    def _count(self, message: RecordPoints, late: list[bool]) -> None:
        source = "generated" if message.run_id else "pushed"
        self.metrics.points.labels(source).inc(len(late))
        self.metrics.late.inc(sum(late))

    async def after_commit(self, message: RecordPoints) -> None:
        event = recorded(message, lateness(message, self.grace_s))
        await codec.publish(self.redis, self.stream, event)

    async def after_commit_many(self, messages: list[RecordPoints]) -> None:
        """PointsRecorded for every message, appended in one round trip (in order)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for message in messages:
                event = recorded(message, lateness(message, self.grace_s))
                pipe.xadd(self.stream, codec.entry_fields(event))  # type: ignore[arg-type]
            await pipe.execute()
