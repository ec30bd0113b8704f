"""A batch from start to stop through the real gateway, ingest and aggregator (in-process)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from aggregator.app import create_app as create_aggregator
from contracts.runtime.service import Service
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from ingest.app import create_app as create_ingest
from tests.support.batches import aggregated, entry_ms, named, recorded, running
from tests.support.gateway import serve
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def ingest(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Service]:
    async with running(create_ingest, named(settings, "ingest")) as service:
        yield service


@pytest.fixture
async def aggregator(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Service]:
    async with running(create_aggregator, named(settings, "aggregator")) as service:
        yield service


@pytest.fixture
async def client(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_gateway(settings)) as test_client:
        yield test_client


async def test_start_produce_aggregate_stop_and_start_again(
    client: httpx.AsyncClient,
    ingest: Service,
    aggregator: Service,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    started = await client.put("/batches/b1", json={"rate": 40})
    assert started.status_code == 201, started.text
    assert started.headers["location"] == "/batches/b1"
    run = started.json()
    assert run["status"] == "running"

    await wait_until(lambda: _ge(aggregated(pool, "b1"), 10), what="points aggregated")
    view = (await client.get("/batches/b1")).json()
    assert view["status"] == "running"
    assert view["run_id"] == run["run_id"]
    assert view["rate"] == 40

    stopped = await client.delete("/batches/b1")
    stop_ms = int(time.time() * 1000)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    assert (await redis.hlen(f"{settings.stream_prefix}batches.running")) == 0

    # Stopped means no more points: none of the run was appended after the stop
    # (the producer is fenced off at once), and its producer has ended.
    await wait_until(lambda: _no_producer(ingest), what="the producer ended", timeout=30)
    entries = [(e, m) for e, m in await recorded(redis, settings) if m.run_id == run["run_id"]]
    assert entries
    assert max(entry_ms(e) for e, _ in entries) <= stop_ms
    assert all(0 <= v.key <= 100 and v.key == int(v.key) for _, m in entries for v in m.points)

    async def projected_stopped() -> bool:
        got = (await client.get("/batches/b1")).json()
        return got["status"] == "stopped" and got["stopped_at"] is not None

    await wait_until(projected_stopped, what="the stop projected")
    again = await client.delete("/batches/b1")
    assert again.json()["already_stopped"] is True

    restarted = await client.post("/batches", json={"batch_id": "b1", "rate": 0})
    assert restarted.status_code == 201
    assert restarted.json()["run_id"] != run["run_id"]
    listed = (await client.get("/batches")).json()

    async def two_runs() -> bool:
        got = (await client.get("/batches/b1")).json()
        return got["runs"] == 2 and got["status"] == "running"

    await wait_until(two_runs, what="the second run projected")
    assert [b["batch_id"] for b in listed["items"]] == ["b1"]
    assert await _sample(ingest, "conveyor_batch_leases_acquired_total") == 1


async def test_unknown_batch_is_404_problem(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/batches/nope"),
        await client.delete("/batches/nope"),
        await client.get("/batches/nope/agg"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_bad_start_options_are_400_or_422_problems(client: httpx.AsyncClient) -> None:
    for body in ({"distribution": "zipf"}, {"nope": 1}, {"rate": "fast"}):
        response = await client.put("/batches/b2", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # Well-formed but out of bounds or inconsistent: 422 naming the field (issue 8).
    for body, field in (({"rate": -1}, "rate"), ({"low": 5, "high": 1}, "low")):
        response = await client.put("/batches/b2", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["key"] for e in response.json()["errors"]] == [field]
    assert (await client.put("/batches/bad id!", json={})).status_code in (400, 404)


async def _ge(value: object, floor: int) -> bool:
    return int(await value) >= floor  # type: ignore[misc]


async def _no_producer(service: Service) -> bool:
    return await _sample(service, "conveyor_batch_producers") == 0


async def _sample(service: Service, name: str) -> float:
    return service.metrics.registry.get_sample_value(name) or 0.0


async def test_a_retried_post_with_the_same_key_starts_nothing_even_after_a_stop(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    headers = {"Idempotency-Key": "start-k1"}
    body = {"batch_id": "k1", "rate": 0}
    first = await client.post("/batches", json=body, headers=headers)
    again = await client.post("/batches", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["status"] == "running"

    assert (await client.delete("/batches/k1")).status_code == 200
    late_retry = await client.post("/batches", json=body, headers=headers)
    assert late_retry.status_code == 200
    assert late_retry.json() == first.json() | {"status": "stopped", "already_running": False}
    assert await redis.hlen(f"{settings.stream_prefix}batches.running") == 0
    # Another key (or none) starts it again.
    assert (await client.post("/batches", json=body)).status_code == 201


@pytest.mark.parametrize(
    ("setting", "url", "request_"),
    [
        ("redis_url", "redis://127.0.0.1:1/0", ("put", "/batches/down")),
        ("database_url", "postgresql://postgres@127.0.0.1:1/postgres", ("get", "/batches")),
    ],
)
async def test_redis_or_postgres_down_is_503_problem(
    settings: Settings, setting: str, url: str, request_: tuple[str, str]
) -> None:
    down = msgspec.structs.replace(settings, **{setting: url})
    async with serve(create_gateway(down)) as gateway:
        method, path = request_
        response = await gateway.request(method.upper(), path)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert "unreachable" in response.json()["detail"]
