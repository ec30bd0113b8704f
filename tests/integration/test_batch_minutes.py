"""Minutes close when their grace is over and the pipeline has caught up (MinuteClosed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from aggregator.minute_closer import acked_before_ms
from contracts import codec, streams
from contracts.messages import MinuteClosed, Point, RecordPoints, new_id, utcnow
from contracts.minutes import floor_minute
from contracts.runtime.settings import Settings
from tests.support.batches import Stack, batch_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[Stack]:
    async with batch_stack(settings) as running_stack:
        assert (await running_stack[0].put("/batches/m1", json={"rate": 0})).status_code == 201
        yield running_stack


async def record(
    redis: aioredis.Redis, settings: Settings, keys: list[float], ts: datetime, received: datetime
) -> None:
    """As a producer that stamped these points at `received` would."""
    message = RecordPoints(
        id=new_id(),
        batch_id="m1",
        points=[Point(key=k, ts=ts) for k in keys],
        received_at=received,
    )
    await codec.publish(redis, streams.INGEST_POINTS.prefixed(settings.stream_prefix).name, message)


async def closed_events(redis: aioredis.Redis, settings: Settings) -> list[MinuteClosed]:
    name = streams.BATCHES_EVENTS.prefixed(settings.stream_prefix).name
    decoder = streams.BATCHES_EVENTS.decoder()
    events = [decoder.decode(f[b"__data__"]) for _, f in await redis.xrange(name)]
    return [e for e in events if isinstance(e, MinuteClosed)]


async def test_a_minute_is_announced_once_final_and_again_if_a_late_within_grace_point_lands(
    stack: Stack, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    minute = floor_minute(utcnow()) - timedelta(minutes=3)
    await record(
        redis, settings, [1, 2, 6], minute + timedelta(seconds=5), minute + timedelta(seconds=6)
    )

    async def announced(n: int) -> list[MinuteClosed]:
        found = await closed_events(redis, settings)
        return found if len(found) == n else []

    (first,) = await wait_until(lambda: announced(1), what="MinuteClosed")
    assert (first.batch_id, first.minute, first.count, first.sum) == ("m1", minute, 3, 9.0)
    assert (first.min, first.max, first.avg) == (1.0, 6.0, 3.0)
    assert await pool.fetchval("SELECT closed FROM minute_aggregates WHERE batch_id = 'm1'")

    # Arrived within the grace period (stamped 65 s after the minute began, grace 10 s),
    # but only appended now: the minute reopens and is announced again with the new total.
    await record(
        redis, settings, [10], minute + timedelta(seconds=59), minute + timedelta(seconds=65)
    )
    # Arrived after the grace period: stored as late, the minute does not change.
    await record(redis, settings, [1000], minute + timedelta(seconds=30), utcnow())
    events = await wait_until(lambda: announced(2), what="MinuteClosed again")
    assert (events[1].count, events[1].sum, events[1].max) == (4, 19.0, 10.0)
    assert events[1].id != events[0].id

    async def late_stored() -> bool:
        return bool(await pool.fetchval("SELECT count(*) = 1 FROM points WHERE late"))

    await wait_until(late_stored, what="the late point stored")
    assert len(await closed_events(redis, settings)) == 2


async def test_watermark_is_held_back_by_unread_and_pending_entries(
    redis: aioredis.Redis, settings: Settings
) -> None:
    stream = f"{settings.stream_prefix}wm"
    assert await acked_before_ms(redis, stream, "g") > 0  # no stream: nothing to wait for
    first = (await redis.xadd(stream, {"n": 1})).decode()
    await redis.xadd(stream, {"n": 2})
    assert await acked_before_ms(redis, stream, "g") == 0  # no group yet: nothing is done
    await redis.xgroup_create(stream, "g", id="0")
    assert await acked_before_ms(redis, stream, "g") == int(first.split("-")[0])  # unread
    read = await redis.xreadgroup("g", "c", {stream: ">"}, count=1)
    assert await acked_before_ms(redis, stream, "g") == int(first.split("-")[0])  # pending
    await redis.xack(stream, "g", read[0][1][0][0])
    await redis.xreadgroup("g", "c", {stream: ">"})
    await redis.xack(stream, "g", *[e for e, _ in await redis.xrange(stream)])
    seconds, _ = await redis.time()
    assert await acked_before_ms(redis, stream, "g") >= seconds * 1000  # all done: now
