"""The last events of jobs and batches read once (gateway/feeds/recent.py), and the feed
resumed from their cursor: the next event is the first one after them, none repeated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import BatchStarted, Counts, JobProgressed, new_id
from contracts.runtime.settings import Settings
from gateway.feeds.fanout import FeedEvent, Feeds
from gateway.feeds.recent import recent
from gateway.feeds.sse import decode_cursor, merge, with_cursor

pytestmark = pytest.mark.integration

TOPICS = {"jobs": streams.JOBS_EVENTS, "batches": streams.BATCHES_EVENTS}


@pytest.fixture
async def feeds(redis: aioredis.Redis, settings: Settings) -> AsyncIterator[Feeds]:
    hub = Feeds(redis, settings.stream_prefix)
    yield hub
    await hub.close()


async def job_event(redis: aioredis.Redis, settings: Settings, done: int) -> str:
    event = JobProgressed(id=new_id(), job_id="j", counts=Counts(done=done, total=10))
    return await codec.publish(
        redis, streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name, event
    )


async def batch_event(redis: aioredis.Redis, settings: Settings, run: str) -> str:
    event = BatchStarted(id=new_id(), batch_id="b", run_id=run, started_at=datetime.now(UTC))
    name = streams.BATCHES_EVENTS.prefixed(settings.stream_prefix).name
    return await codec.publish(redis, name, event)


async def test_newest_events_of_both_streams_oldest_first_with_their_cursor(
    redis: aioredis.Redis, settings: Settings
) -> None:
    jobs_stream = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
    batches_stream = streams.BATCHES_EVENTS.prefixed(settings.stream_prefix).name
    job = JobProgressed(id=new_id(), job_id="j", counts=Counts(done=3, total=10))
    batch = BatchStarted(id=new_id(), batch_id="b", run_id="r", started_at=datetime.now(UTC))
    # explicit ids: entries of two streams in the same millisecond have no order
    for entry in ("1-0", "2-0", "3-0", "5-0"):
        await redis.xadd(jobs_stream, codec.entry_fields(job), id=entry)
    await redis.xadd(batches_stream, codec.entry_fields(batch), id="4-0")
    # not a job event: skipped, as the feed skips it, but the cursor passes it
    await redis.xadd(jobs_stream, {codec.DATA_FIELD: b"{"}, id="6-0")

    events, cursor = await recent(redis, settings.stream_prefix, TOPICS, count=3)

    assert [(e.topic, e.entry_id) for e in events] == [
        ("jobs", "3-0"), ("batches", "4-0"), ("jobs", "5-0"),
    ]  # fmt: skip
    assert [e.type for e in events] == ["JobProgressed", "BatchStarted", "JobProgressed"]
    assert events[-1].data["counts"]["done"] == 3
    assert events[-1].data["job_id"] == "j"
    assert events[1].data["run_id"] == "r"
    assert cursor == "batches:4-0,jobs:6-0"


async def test_empty_streams_give_a_cursor_from_their_start(
    redis: aioredis.Redis, settings: Settings
) -> None:
    events, cursor = await recent(redis, settings.stream_prefix, TOPICS)
    assert events == []
    assert cursor == "batches:0-0,jobs:0-0"


async def test_the_feed_resumed_from_the_cursor_repeats_nothing_and_misses_nothing(
    redis: aioredis.Redis, settings: Settings, feeds: Feeds
) -> None:
    for i in range(4):
        await job_event(redis, settings, i)
    await batch_event(redis, settings, "r1")
    shown, cursor = await recent(redis, settings.stream_prefix, TOPICS, count=10)
    # made after the read and before the feed opens: it must come, once
    between = await job_event(redis, settings, 4)

    after = decode_cursor(cursor, sorted(TOPICS))
    assert after is not None
    subscriptions = await feeds.subscribe_all(TOPICS, match=lambda _m: True, after=after)
    events = with_cursor(merge(subscriptions), after)
    later = await batch_event(redis, settings, "r2")

    async def two() -> list[FeedEvent]:
        return [await anext(events) for _ in range(2)]

    got = await asyncio.wait_for(two(), timeout=10)
    await events.aclose()
    assert len(shown) == 5
    start = decode_cursor(cursor, sorted(TOPICS))  # `after` moved on with the events
    assert start is not None
    assert start["batches"] == max(e.entry_id for e in shown if e.topic == "batches")
    assert [e.event for e in got] == ["JobProgressed", "BatchStarted"]
    assert got[0].id == f"batches:{start['batches']},jobs:{between}"
    assert got[1].id == f"batches:{later},jobs:{between}"
