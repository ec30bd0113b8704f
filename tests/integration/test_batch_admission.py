"""The batch limit and one task per batch, under concurrent starts over two gateways
and two ingest services (all in this process, each with its own clients)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from contracts.runtime.service import Service
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from ingest.app import create_app as create_ingest
from tests.support.batches import named, recorded, running
from tests.support.gateway import serve
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateways(
    settings: Settings, redis: aioredis.Redis
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serve(create_gateway(settings))) for _ in range(2)]


@pytest.fixture
async def ingests(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[list[Service]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running(create_ingest, named(settings, f"i{n}")))
            for n in range(2)
        ]


async def owners(
    redis: aioredis.Redis, settings: Settings, ingests: list[Service]
) -> dict[str, str]:
    """batch_id -> the ingest service holding its producer's lease."""
    found = {}
    async for key in redis.scan_iter(match=f"{settings.stream_prefix}batches.lease:*"):
        owner = (await redis.get(key)).decode()
        batch_id = key.decode().rsplit(":", 1)[1]
        names = [s.settings.consumer_name for s in ingests]
        found[batch_id] = next(n for n in names if owner.startswith(n + ":"))
    return found


def producers_gauge(ingests: list[Service]) -> float:
    return sum(
        s.metrics.registry.get_sample_value("conveyor_batch_producers") or 0 for s in ingests
    )


async def test_fifty_concurrent_starts_admit_exactly_the_limit(
    gateways: list[httpx.AsyncClient],
    ingests: list[Service],
    redis: aioredis.Redis,
    settings: Settings,
) -> None:
    requests = [gateways[i % 2].put(f"/batches/c{i}", json={"rate": 20}) for i in range(50)]
    responses = await asyncio.gather(*requests)

    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 5, 429: 45}, codes
    admitted = sorted(r.json()["batch_id"] for r in responses if r.status_code == 201)
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"]
        body = refused.json()
        assert body["limit"] == 5
        assert sorted(body["running"]) == admitted
        assert "At most 5 batches" in body["detail"]

    # Exactly the admitted batches get produced, each by one producer.
    async def points_of_all() -> bool:
        seen = {m.batch_id for _, m in await recorded(redis, settings)}
        return seen == set(admitted)

    await wait_until(points_of_all, what="points from every admitted batch")
    assert sorted(await owners(redis, settings, ingests)) == admitted
    assert producers_gauge(ingests) == 5
    by_batch: dict[str, set[str | None]] = {}
    for _, message in await recorded(redis, settings):
        by_batch.setdefault(message.batch_id, set()).add(message.producer)
    assert all(len(p) == 1 for p in by_batch.values()), by_batch
    assert await redis.hlen(f"{settings.stream_prefix}batches.running") == 5


async def test_concurrent_starts_of_one_batch_start_one_task(
    gateways: list[httpx.AsyncClient],
    ingests: list[Service],
    redis: aioredis.Redis,
    settings: Settings,
) -> None:
    responses = await asyncio.gather(
        *(gateways[i % 2].put("/batches/same", json={"rate": 50}) for i in range(20))
    )
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 200: 19}, codes
    assert len({r.json()["run_id"] for r in responses}) == 1
    assert all(r.json()["already_running"] for r in responses if r.status_code == 200)

    async def enough() -> bool:
        return len(await recorded(redis, settings)) >= 10

    await wait_until(enough, what="ten messages of points")
    producers = {m.producer for _, m in await recorded(redis, settings)}
    assert len(producers) == 1, producers
    assert list(await owners(redis, settings, ingests)) == ["same"]
    assert producers_gauge(ingests) == 1
