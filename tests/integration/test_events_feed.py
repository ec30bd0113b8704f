"""`GET /events`: two streams as one feed, filtered, resumed exactly with a cursor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import httpx_sse
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import BatchStarted, Counts, JobProgressed, new_id, utcnow
from contracts.runtime.settings import Settings
from gateway.app import create_app
from tests.integration.test_sse_over_http import new_job
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        uvicorn_serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE) as http,
    ):
        yield http


async def job_event(redis: aioredis.Redis, settings: Settings, job: str, done: int) -> None:
    event = JobProgressed(id=new_id(), job_id=job, counts=Counts(done=done, total=10))
    await codec.publish(redis, streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name, event)


async def batch_event(redis: aioredis.Redis, settings: Settings, batch: str) -> None:
    event = BatchStarted(id=new_id(), batch_id=batch, run_id="r1", started_at=utcnow())
    await codec.publish(redis, streams.BATCHES_EVENTS.prefixed(settings.stream_prefix).name, event)


async def read(
    client: httpx.AsyncClient, n: int, url: str = "/events", **headers: str
) -> list[httpx_sse.ServerSentEvent]:
    seen = []
    async with httpx_sse.aconnect_sse(client, "GET", url, headers=headers) as source:
        async for sse in source.aiter_sse():
            if sse.event:
                seen.append(sse)
            if len(seen) == n:
                return seen
    raise AssertionError(f"feed ended after {seen}")


def message_id(event: httpx_sse.ServerSentEvent) -> str:
    return str(json.loads(event.data)["id"])


async def test_two_topics_one_feed_resumed_exactly(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    for i in range(2):
        await job_event(redis, settings, "j1", i)
        await batch_event(redis, settings, f"b{i}")
    everything = await read(client, 4, "/events?after=jobs:0-0,batches:0-0")
    by_topic = {
        t: [e for e in everything if e.event == t] for t in ("JobProgressed", "BatchStarted")
    }
    assert [len(v) for v in by_topic.values()] == [2, 2]
    jobs_done = [json.loads(e.data)["counts"]["done"] for e in by_topic["JobProgressed"]]
    assert jobs_done == [0, 1]  # in order within a topic

    # The client saw two events, disconnected, and one more of each came meanwhile.
    cursor = everything[1].id
    await job_event(redis, settings, "j1", 2)
    await batch_event(redis, settings, "b2")
    resumed = await read(client, 4, **{"Last-Event-ID": cursor})

    missed = {message_id(e) for e in everything[2:]}
    assert missed <= {message_id(e) for e in resumed}
    assert not {message_id(e) for e in everything[:2]} & {message_id(e) for e in resumed}
    assert len({message_id(e) for e in resumed}) == 4
    assert all(e.id.startswith("batches:") and ",jobs:" in e.id for e in resumed)


async def test_filter_by_job_and_topic(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    await new_job(settings, "mine")  # a filter naming no job is 404 (issue 8, item 11)
    await job_event(redis, settings, "other", 1)
    await batch_event(redis, settings, "b")
    await job_event(redis, settings, "mine", 2)
    mine = await read(client, 1, "/events?topics=jobs&job_id=mine&after=jobs:0-0")
    assert '"job_id":"mine"' in mine[0].data
    assert mine[0].id.startswith("jobs:")


async def test_live_from_now_without_a_cursor(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    await job_event(redis, settings, "old", 1)
    async with httpx_sse.aconnect_sse(client, "GET", "/events?topics=jobs") as source:
        await job_event(redis, settings, "new", 2)
        async for sse in source.aiter_sse():
            if sse.event:
                assert '"job_id":"new"' in sse.data
                break


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/events?topics=jobs,nope", "unknown topics ['nope']"),
        ("/events?after=jobs:1-0", "cannot resume"),
        ("/events?after=garbage", "cannot resume"),
    ],
)
async def test_bad_requests(client: httpx.AsyncClient, url: str, words: str) -> None:
    response = await client.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]
