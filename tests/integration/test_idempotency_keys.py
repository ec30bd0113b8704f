"""`Idempotency-Key`: the same key with the same request replays; with another request
it is a 422 problem and nothing is published (issue 8, item 11), on every POST that
takes the header: /moves, /batches, /batches/{id}/points."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.catalog import demo as seed
from tests.support.gateway import serve

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
MY_LIST, LIKED = str(seed.MY_LIST), str(seed.LIKED)


@pytest.fixture
async def client(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=100, my_list=60, liked=5, ignore=10)
    async with serve(create_app(settings)) as c:
        yield c


def key_reused(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["title"] == "Idempotency-Key reused"
    assert "Idempotency-Key" in response.json()["detail"]


def stream(settings: Settings, which: streams.StreamSpec) -> str:
    return which.prefixed(settings.stream_prefix).name


async def test_moves_same_key_other_body_is_422_same_body_replays(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    key = {"Idempotency-Key": "move-1"}
    body = {"source": MY_LIST, "target": LIKED, "mode": "copy", "selection": [7, 8]}
    first = await client.post("/moves", json=body, headers=key)
    assert first.status_code == 202, first.text

    for other in ({"selection": [7, 9]}, {"mode": "move"}, {"priority": 5}):
        key_reused(await client.post("/moves", json=body | other, headers=key))
    # The same request spelled otherwise (key order, a default written out) replays.
    same = {"priority": 3, **dict(reversed(body.items()))}
    again = await client.post("/moves", json=same, headers=key)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await redis.xlen(stream(settings, streams.MOVER_COMMANDS)) == 1
    # Another key is another request.
    other_key = {"Idempotency-Key": "move-2"}
    assert (await client.post("/moves", json=body, headers=other_key)).status_code == 202


async def test_batch_start_same_key_other_body_is_422_same_body_replays(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    key = {"Idempotency-Key": "start-1"}
    body = {"batch_id": "k1", "rate": 0}
    first = await client.post("/batches", json=body, headers=key)
    assert first.status_code == 201, first.text

    for other in ({"batch_id": "k2"}, {"rate": 5}):
        key_reused(await client.post("/batches", json=body | other, headers=key))
    again = await client.post("/batches", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["run_id"] == first.json()["run_id"]
    assert await redis.xlen(stream(settings, streams.INGEST_COMMANDS)) == 1
    assert await redis.hkeys(f"{settings.stream_prefix}batches.running") == [b"k1"]


async def test_points_same_key_other_body_is_422_same_body_replays(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    assert (await client.put("/batches/p1", json={"rate": 0})).status_code == 201
    key = {"Idempotency-Key": "push-1"}
    body = [{"key": 1}, {"key": 2.5, "ts": "2024-01-01T00:00:00Z"}]
    first = await client.post("/batches/p1/points", json=body, headers=key)
    assert first.status_code == 202, first.text

    key_reused(await client.post("/batches/p1/points", json=body[:1], headers=key))
    key_reused(await client.post("/batches/p1/points", json=[{"key": 1}, {"key": 3}], headers=key))
    again = await client.post("/batches/p1/points", json=body, headers=key)
    assert again.status_code == 202, again.text
    assert again.json() == first.json() | {"duplicate": True}
    assert await redis.xlen(stream(settings, streams.INGEST_POINTS)) == 1
