"""`GET /batches/{id}/events`: live points (sampled), minutes, lifecycle; exact resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import httpx_sse
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import Point, RecordPoints, new_id, utcnow
from contracts.minutes import floor_minute
from contracts.runtime.settings import Settings
from tests.support.batches import served_batch

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[httpx.AsyncClient]:
    async with served_batch(settings, "e1") as http:
        yield http


async def read(
    client: httpx.AsyncClient,
    until: set[str],
    opened: asyncio.Event | None = None,
    params: dict[str, str] | None = None,
    at_least: int = 0,
    **headers: str,
) -> list[dict[str, str]]:
    """Events of the batch feed until each kind in `until` was seen and, after the
    snapshot, at least `at_least` events; `opened` is set at the snapshot, when the
    feed is subscribed."""
    seen: list[dict[str, str]] = []
    url = "/batches/e1/events"
    async with httpx_sse.aconnect_sse(client, "GET", url, params=params, headers=headers) as src:
        assert src.response.headers["content-type"].startswith("text/event-stream")
        async for sse in src.aiter_sse():
            seen.append({"id": sse.id, "event": sse.event, "data": sse.data})
            if opened is not None and sse.event == "snapshot":
                opened.set()
            if until <= {e["event"] for e in seen} and len(seen) > at_least:
                return seen
    raise AssertionError(f"the feed ended before {until}: {seen}")


def final_positions(ids: list[str]) -> list[str]:
    """Per stream, the furthest position among combined ids."""
    sides = list(zip(*(i.split(",") for i in ids), strict=True))  # `topic:entry-id` each
    return [max(side, key=lambda e: tuple(map(int, e.split(":")[1].split("-")))) for side in sides]


async def test_points_minutes_and_stop_then_an_exact_resume(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    async def act() -> None:
        assert (await client.post("/batches/e1/points", json=[{"key": 4}])).status_code == 202
        # A minute three minutes ago, stamped then by a producer: it closes at once.
        minute = floor_minute(utcnow()) - timedelta(minutes=3)
        stamped = RecordPoints(
            id=new_id(),
            batch_id="e1",
            points=[Point(key=k, ts=minute) for k in (1.0, 2.0)],
            received_at=minute,
        )
        stream = streams.INGEST_POINTS.prefixed(settings.stream_prefix).name
        await codec.publish(redis, stream, stamped)
        assert (await client.delete("/batches/e1")).status_code == 200

    opened = asyncio.Event()
    reader = asyncio.create_task(read(client, {"BatchStopped", "MinuteClosed"}, opened))
    # The feed starts at the streams' ends when it connects: act once it is open.
    await asyncio.wait_for(opened.wait(), 10)
    await act()
    events = await reader
    kinds = [e["event"] for e in events]
    assert kinds[0] == "snapshot"
    assert json.loads(events[0]["data"])["status"] == "running"
    assert "PointsRecorded" in kinds
    assert "MinuteClosed" in kinds
    minute = json.loads(events[kinds.index("MinuteClosed")]["data"])
    assert (minute["count"], minute["sum"], minute["avg"]) == (2, 3.0, 1.5)
    ids = [e["id"] for e in events[1:]]
    assert len(set(ids)) == len(ids)

    # Resuming gives exactly what came after, per stream (the two streams may
    # interleave differently, so the combined ids may differ, not the events).
    after = events[2:]
    # (every one of them: two PointsRecorded may come in either order, so stopping at
    # the first of each kind could stop one short)
    resumed = await read(
        client, {e["event"] for e in after}, at_least=len(after), **{"Last-Event-ID": ids[0]}
    )
    assert sorted((e["event"], e["data"]) for e in resumed[1:]) == sorted(
        (e["event"], e["data"]) for e in after
    )
    assert resumed[-1]["id"] == ",".join(final_positions(ids))


async def test_points_are_sampled_to_the_asked_rate(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    opened = asyncio.Event()
    reader = asyncio.create_task(read(client, {"PointsRecorded"}, opened, {"points_per_s": "3"}))
    await asyncio.wait_for(opened.wait(), 10)
    body = [{"key": k} for k in range(100)]
    assert (await client.post("/batches/e1/points", json=body)).status_code == 202
    events = await reader
    sample = json.loads(events[-1]["data"])
    assert sample["count"] == 100
    assert [p["key"] for p in sample["points"]] == [0.0, 33.0, 66.0]


async def test_unknown_batch_feed_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/batches/nope/events")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
