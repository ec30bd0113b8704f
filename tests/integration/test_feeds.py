"""The live feed: fan-out from one reader, exact resume, reset, slow clients, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import Counts, JobProgressed, new_id
from contracts.runtime.settings import Settings
from gateway.feeds.fanout import FeedEvent, Feeds

pytestmark = pytest.mark.integration


@pytest.fixture
async def feeds(redis: aioredis.Redis, settings: Settings) -> AsyncIterator[Feeds]:
    hub = Feeds(redis, settings.stream_prefix)
    yield hub
    await hub.close()


def name(settings: Settings) -> str:
    return streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name


async def publish(redis: aioredis.Redis, settings: Settings, job: str, done: int) -> str:
    event = JobProgressed(id=new_id(), job_id=job, counts=Counts(done=done, total=100))
    return await codec.publish(redis, name(settings), event)


async def take(events: AsyncIterator[FeedEvent], n: int) -> list[FeedEvent]:
    async def collect() -> list[FeedEvent]:
        return [await anext(events) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout=10)


def everything(_message: object) -> bool:
    return True


async def test_fan_out_from_one_reader_in_order(
    feeds: Feeds, redis: aioredis.Redis, settings: Settings
) -> None:
    feed = feeds.get(streams.JOBS_EVENTS)
    clients = [await feed.subscribe(match=everything, after="0-0") for _ in range(20)]
    ids = [await publish(redis, settings, "j", i) for i in range(5)]

    for client in clients:
        assert [e.id for e in await take(client, 5)] == ids
    readers = [t for t in asyncio.all_tasks() if t.get_name().startswith("feed:")]
    assert len(readers) == 1


async def test_resume_gives_exactly_the_missed_events_then_live(
    feeds: Feeds, redis: aioredis.Redis, settings: Settings
) -> None:
    feed = feeds.get(streams.JOBS_EVENTS)
    first = await feed.subscribe(match=everything, after="0-0")
    ids = [await publish(redis, settings, "j", i) for i in range(3)]
    seen = await take(first, 3)
    await first.aclose()  # the client disconnects
    ids += [await publish(redis, settings, "j", i) for i in range(3, 6)]

    again = await feed.subscribe(match=everything, after=seen[-1].id)  # Last-Event-ID
    missed = await take(again, 3)
    live_id = await publish(redis, settings, "j", 6)
    live = await take(again, 1)

    assert [e.id for e in missed] == ids[3:]
    assert [e.id for e in live] == [live_id]
    assert missed[0].event == "JobProgressed"


async def test_filter_by_job(feeds: Feeds, redis: aioredis.Redis, settings: Settings) -> None:
    feed = feeds.get(streams.JOBS_EVENTS)
    mine = await feed.subscribe(match=lambda m: m.job_id == "mine", after="0-0")
    await publish(redis, settings, "other", 1)
    wanted = await publish(redis, settings, "mine", 2)
    assert [e.id for e in await take(mine, 1)] == [wanted]


async def test_resume_from_a_trimmed_id_says_reset(
    feeds: Feeds, redis: aioredis.Redis, settings: Settings
) -> None:
    old = await publish(redis, settings, "j", 0)
    await publish(redis, settings, "j", 1)
    newest = await publish(redis, settings, "j", 2)
    await redis.xtrim(name(settings), minid=newest, approximate=False)

    events = await feeds.get(streams.JOBS_EVENTS).subscribe(match=everything, after=old)
    first = await take(events, 1)
    live = await publish(redis, settings, "j", 3)

    assert first[0].event == "reset"
    assert [e.id for e in await take(events, 1)] == [live]


async def test_slow_client_is_cut_off_while_fast_ones_keep_up(
    redis: aioredis.Redis, settings: Settings
) -> None:
    feeds = Feeds(redis, settings.stream_prefix)
    try:
        feed = feeds.get(streams.JOBS_EVENTS)
        feed.buffer = 5
        slow = await feed.subscribe(match=everything)  # never reads
        fast = await feed.subscribe(match=everything)
        fast_seen: list[FeedEvent] = []
        for i in range(20):
            await publish(redis, settings, "j", i)
            fast_seen += await take(fast, 1)  # the fast client keeps up
        slow_events = [e async for e in slow]
    finally:
        await feeds.close()

    assert len(fast_seen) == 20
    assert [e.event for e in slow_events] == ["overflow"]


async def test_close_ends_every_subscriber(feeds: Feeds, settings: Settings) -> None:
    feed = feeds.get(streams.JOBS_EVENTS)
    client = await feed.subscribe(match=everything)
    waiting = asyncio.create_task(anext(client))
    await asyncio.sleep(0.05)
    await feeds.close()
    event = await asyncio.wait_for(waiting, timeout=5)
    assert event.event == "closed"
