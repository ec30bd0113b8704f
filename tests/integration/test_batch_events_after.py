"""`GET /batches/{id}/events?after=<cursor>`: a browser's EventSource resumes by query
(it cannot set Last-Event-ID on a new connection) exactly as by the header."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import httpx_sse
import pytest
import redis.asyncio as aioredis

from contracts.runtime.settings import Settings
from tests.support.batches import served_batch

pytestmark = pytest.mark.integration

URL = "/batches/a1/events"


@pytest.fixture
async def client(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[httpx.AsyncClient]:
    async with served_batch(settings, "a1") as http:
        yield http


async def read(
    client: httpx.AsyncClient, n: int, params: dict[str, str], opened: asyncio.Event | None = None
) -> list[httpx_sse.ServerSentEvent]:
    """The first `n` PointsRecorded events of the feed (the snapshot set `opened`)."""
    got: list[httpx_sse.ServerSentEvent] = []
    async with httpx_sse.aconnect_sse(client, "GET", URL, params=params) as source:
        async for sse in source.aiter_sse():
            if sse.event == "snapshot" and opened is not None:
                opened.set()
            if sse.event == "PointsRecorded":
                got.append(sse)
                if len(got) == n:
                    return got
    raise AssertionError(f"the feed ended after {len(got)} of {n} events")


def keys(events: list[httpx_sse.ServerSentEvent]) -> list[float]:
    return [p["key"] for e in events for p in json.loads(e.data)["points"]]


def points_position(event_id: str) -> str:
    """The `points:<entry id>` part of a cursor."""
    return next(part for part in event_id.split(",") if part.startswith("points:"))


async def test_after_resumes_with_exactly_what_was_missed(client: httpx.AsyncClient) -> None:
    opened = asyncio.Event()
    live = asyncio.create_task(read(client, 5, {"points_per_s": "1000"}, opened))
    await asyncio.wait_for(opened.wait(), 10)
    for k in range(5):  # one message each, in order (ingest.points is one stream)
        assert (await client.post("/batches/a1/points", json=[{"key": k}])).status_code == 202
    seen = await asyncio.wait_for(live, 15)
    assert keys(seen) == [0.0, 1.0, 2.0, 3.0, 4.0]

    # A new connection with ?after= the second event's id: the three that followed, once.
    resumed = await read(client, 3, {"points_per_s": "1000", "after": seen[1].id})
    assert [e.data for e in resumed] == [e.data for e in seen[2:]]
    assert points_position(resumed[-1].id) == points_position(seen[-1].id)

    # Last-Event-ID, when a client sends both, is where it resumes.
    headers = {"Last-Event-ID": seen[3].id}
    async with httpx_sse.aconnect_sse(
        client, "GET", URL, params={"after": seen[0].id}, headers=headers
    ) as source:
        async for sse in source.aiter_sse():
            if sse.event == "PointsRecorded":
                assert keys([sse]) == [4.0]
                break


async def test_an_after_that_is_not_a_cursor_of_this_feed_is_400(
    client: httpx.AsyncClient,
) -> None:
    bad = await client.get(URL, params={"after": "jobs:1-0"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert "Last-Event-ID (or after) 'jobs:1-0' is not" in bad.json()["detail"]
