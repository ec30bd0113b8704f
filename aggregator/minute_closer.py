"""Closing minutes: publish MinuteClosed once a minute can take no more points.

A minute `m` takes points that arrive before `m + 1 min + grace`
(contracts/minutes.py). It is closed when every such point has been aggregated,
which the streams tell: Redis entry ids are arrival times, so if every entry of
`ingest.points` (group ingest) and of `points` (group aggregator) older than T has
been read and acknowledged, every point that arrived before T (less a margin for
the time between stamping a point and appending it) is in the aggregates. That
T is the *watermark*; a lagging or crashed pipeline holds it back, so a minute
is never announced before its on-time points are in, however far behind we are.

Every CLOSE_INTERVAL_S the closer marks the due minutes closed and appends their
MinuteClosed events (to `batches.events`) inside the same transaction, before
the commit: a failed append rolls the marks back, and a commit that fails after
the append leaves a duplicate with the same id (derived from batch, minute and
count), which readers drop. Several aggregator processes share the work with
`FOR UPDATE SKIP LOCKED`. A minute that is updated after it closed (only if a
point took longer than the margin from stamp to stream) is reopened by the
update and announced again with its new count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter

from aggregator import points_sql as sql
from contracts import streams
from contracts.codec import entry_fields
from contracts.messages import MinuteClosed, derived_id
from contracts.minutes import MINUTE
from contracts.settings import Settings
from contracts.tasks import cancel_and_wait

log = logging.getLogger("conveyor.aggregator.minutes")

CLOSE_INTERVAL_S = 1.0
CLOCK_MARGIN = timedelta(seconds=1)
CLOSE_PAGE = 500


async def acked_before_ms(redis: aioredis.Redis, stream: str, group: str) -> int:
    """A time (ms, Redis clock) before which `group` has read and acknowledged every entry."""
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    try:
        groups = {_text(g["name"]): g for g in await redis.xinfo_groups(stream)}
    except aioredis.ResponseError:  # no such stream: nothing was ever appended
        return now_ms
    info = groups.get(group)
    if info is None:
        return 0
    bound = now_ms
    if info["pending"]:
        bound = min(bound, _ms(_text((await redis.xpending(stream, group))["min"])))
    after = "(" + _text(info["last-delivered-id"])
    unread: list[tuple[bytes, object]] = await redis.xrange(stream, min=after, count=1)  # type: ignore[assignment]
    if unread:
        bound = min(bound, _ms(_text(unread[0][0])))
    return bound


class MinuteCloser:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        pool: Callable[[], asyncpg.Pool],
        registry: CollectorRegistry,
    ) -> None:
        prefix = settings.stream_prefix
        self.grace = timedelta(seconds=settings.late_grace_s)
        self.redis = redis
        self.pool = pool
        self.inputs = (
            (streams.INGEST_POINTS.prefixed(prefix).name, streams.INGEST),
            (streams.POINTS.prefixed(prefix).name, streams.AGGREGATOR),
        )
        self.events = streams.BATCHES_EVENTS.prefixed(prefix).name
        self.closed = Counter(
            "conveyor_minutes_closed_total",
            "Batch minutes announced closed (MinuteClosed).",
            registry=registry,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def watermark(self) -> datetime:
        bounds = [await acked_before_ms(self.redis, s, g) for s, g in self.inputs]
        return datetime.fromtimestamp(min(bounds) / 1000, UTC) - CLOCK_MARGIN

    async def close_due(self) -> int:
        """Close every minute due by the watermark; return how many."""
        until = await self.watermark() - MINUTE - self.grace
        total = 0
        while True:
            async with self.pool().acquire() as conn, conn.transaction():
                rows = await sql.close_due(conn=conn, until=until, limit=CLOSE_PAGE)
                if rows:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for row in rows:
                            pipe.xadd(self.events, entry_fields(_closed(row)))  # type: ignore[arg-type]
                        await pipe.execute()
            total += len(rows)
            self.closed.inc(len(rows))
            if len(rows) < CLOSE_PAGE:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.close_due()
            except Exception as exc:
                log.warning("closing minutes failed (will retry): %s", exc)
            await asyncio.sleep(CLOSE_INTERVAL_S)


def _closed(row: asyncpg.Record) -> MinuteClosed:
    batch_id, minute, count = row["batch_id"], row["minute"], row["count"]
    return MinuteClosed(
        id=derived_id(batch_id, minute.isoformat(), count),
        batch_id=batch_id,
        minute=minute,
        count=count,
        sum=row["sum"],
        min=row["min"],
        max=row["max"],
    )


def _ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
