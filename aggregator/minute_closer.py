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

**One poison minute never stalls its neighbours.** A page of minutes that fails
for a reason other than an outage (TRANSIENT) is closed again one minute at a
time; a minute that fails on its own is *set aside*: `close_error` records why,
it is logged once (WARNING) and counted (`conveyor_minutes_close_failed_total`),
and it is not due again until new points change it. The gateway's bounds keep
every minute's sum within double precision (aggregator/points_sql.py), so only
data that bypassed them (or a fault nobody foresaw) can be set aside. An outage
(Redis or PostgreSQL unreachable) is retried with backoff, logged once until it
ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis
from asyncpg import exceptions as pg
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from aggregator import points_sql as sql
from contracts import streams
from contracts.codec import as_text, entry_fields, entry_key
from contracts.messages import MinuteClosed, derived_id
from contracts.minutes import MINUTE
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import cancel_and_wait

log = logging.getLogger("conveyor.aggregator.minutes")

CLOSE_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0
CLOCK_MARGIN = timedelta(seconds=1)
CLOSE_PAGE = 500
# Failures that say nothing about a minute: retried as a whole, never set aside.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset, timeouts (pool acquire included)
    RedisError,
    asyncpg.InterfaceError,
    pg.PostgresConnectionError,
    pg.TransactionRollbackError,  # serialization failure, deadlock
    pg.OperatorInterventionError,  # statement cancelled, server shutting down
    pg.InsufficientResourcesError,
    pg.LockNotAvailableError,
)


async def acked_before_ms(redis: aioredis.Redis, stream: str, group: str) -> int:
    """A time (ms, Redis clock) before which `group` has read and acknowledged every entry."""
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    try:
        groups = {as_text(g["name"]): g for g in await redis.xinfo_groups(stream)}
    except aioredis.ResponseError:  # no such stream: nothing was ever appended
        return now_ms
    info = groups.get(group)
    if info is None:
        return 0
    bound = now_ms
    if info["pending"]:
        bound = min(bound, entry_key(as_text((await redis.xpending(stream, group))["min"]))[0])
    after = "(" + as_text(info["last-delivered-id"])
    unread: list[tuple[bytes, object]] = await redis.xrange(stream, min=after, count=1)  # type: ignore[assignment]
    if unread:
        bound = min(bound, entry_key(as_text(unread[0][0]))[0])
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
        self.set_aside = Counter(
            "conveyor_minutes_close_failed_total",
            "Batch minutes that could not be closed and were set aside (close_error).",
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
            try:
                closed = await self._close_page(until)
            except TRANSIENT:
                raise
            except Exception:  # a minute of the page cannot close: find it
                return total + await self._close_each(until)
            total += closed
            if closed < CLOSE_PAGE:
                return total

    async def _close_page(self, until: datetime) -> int:
        async with self.pool().acquire() as conn, conn.transaction():
            rows = await sql.close_due(conn=conn, until=until, limit=CLOSE_PAGE)
            await self._announce(rows)
        self.closed.inc(len(rows))
        return len(rows)

    async def _close_each(self, until: datetime) -> int:
        """One page of due minutes, each in its own transaction; the next cycle goes on."""
        async with self.pool().acquire() as conn:
            keys = await sql.due(conn=conn, until=until, limit=CLOSE_PAGE)
        closed = 0
        for key in keys:
            closed += await self._close_one(key["batch_id"], key["minute"])
        return closed

    async def _close_one(self, batch_id: str, minute: datetime) -> int:
        try:
            async with self.pool().acquire() as conn, conn.transaction():
                rows = await sql.close_one(conn=conn, batch_id=batch_id, minute=minute)
                await self._announce(rows)
        except TRANSIENT:
            raise
        except Exception as exc:
            await self._set_aside(batch_id, minute, exc)
            return 0
        self.closed.inc(len(rows))
        return len(rows)

    async def _set_aside(self, batch_id: str, minute: datetime, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        async with self.pool().acquire() as conn:
            await sql.set_aside(conn=conn, batch_id=batch_id, minute=minute, error=error)
        self.set_aside.inc()
        log.warning(
            "batch %s minute %s cannot be closed; set aside until new points arrive: %s",
            batch_id,
            minute.isoformat(),
            error[:300],
        )

    async def _announce(self, rows: list[asyncpg.Record]) -> None:
        """Append the rows' MinuteClosed events (inside the caller's transaction)."""
        if not rows:
            return
        events = [_closed(row) for row in rows]
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self.events, entry_fields(event))  # type: ignore[arg-type]
            await pipe.execute()

    async def _run(self) -> None:
        failing, pause = False, CLOSE_INTERVAL_S
        while True:
            try:
                await self.close_due()
            except Exception as exc:
                if not failing:
                    log.warning("closing minutes failed (retrying with backoff): %s", exc)
                failing, pause = True, min(pause * 2, MAX_BACKOFF_S)
            else:
                if failing:
                    log.info("closing minutes works again")
                failing, pause = False, CLOSE_INTERVAL_S
            await asyncio.sleep(pause)


def _closed(row: asyncpg.Record) -> MinuteClosed:
    batch_id, minute, count = row["batch_id"], row["minute"], row["count"]
    if not all(math.isfinite(row[k]) for k in ("sum", "min", "max")):
        raise ValueError(f"not finite: sum {row['sum']}, min {row['min']}, max {row['max']}")
    return MinuteClosed(
        id=derived_id(batch_id, minute.isoformat(), count),
        batch_id=batch_id,
        minute=minute,
        count=count,
        sum=row["sum"],
        min=row["min"],
        max=row["max"],
    )
