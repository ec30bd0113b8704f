"""Points pushed over HTTP: all or nothing, every bad item named, late ones stored apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.codec import entry_fields
from contracts.messages import Point, RecordPoints, utcnow
from contracts.runtime.settings import Settings
from tests.support.batches import Stack, aggregated, batch_stack, recorded
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.fixture
async def stack(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[Stack]:
    small = msgspec.structs.replace(settings, max_points_per_request=50)
    async with batch_stack(small) as running_stack:
        client = running_stack[0]
        assert (await client.put("/batches/p1", json={"rate": 0})).status_code == 201
        yield running_stack


async def nothing_published(redis: aioredis.Redis, settings: Settings) -> bool:
    return await redis.xlen(streams.INGEST_POINTS.prefixed(settings.stream_prefix).name) == 0


async def test_bad_items_are_all_named_and_nothing_is_published(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    client, _, _ = stack
    future = (utcnow() + timedelta(hours=1)).isoformat()
    body = [
        {"key": 1},
        {"key": "x"},
        {"ts": "2024-01-01T00:00:00Z"},
        {"key": 2, "ts": "2024-01-01T00:00:00"},
        {"key": 3, "colour": "red"},
        {"key": 4, "ts": future},
        {"key": True},
        {"key": 5.5, "ts": "2024-01-01T00:00:00+02:00"},
    ]
    response = await client.post("/batches/p1/points", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["detail"] == "6 of 8 points are invalid; nothing was accepted"
    errors = {e["index"]: e["error"] for e in problem["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6]
    assert "Expected `float`, got `str`" in errors[1]
    assert "missing required field `key`" in errors[2]
    assert "timezone" in errors[3]
    assert "unknown field `colour`" in errors[4]
    assert "ahead of the server clock" in errors[5]
    assert "got `bool`" in errors[6]
    assert await nothing_published(redis, settings)


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"key": 1}', 422),  # not an array
        (b"[]", 422),
        (b"[1e999]", 422),
        (b'[{"key": 1}', 400),  # not JSON
        (msgspec.json.encode([{"key": i} for i in range(51)]), 413),
    ],
)
async def test_malformed_empty_and_oversized_bodies(
    stack: Stack, redis: aioredis.Redis, settings: Settings, content: bytes, status: int
) -> None:
    client, _, _ = stack
    headers = {"content-type": "application/json"}
    response = await client.post("/batches/p1/points", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["limit"] == 50
    assert await nothing_published(redis, settings)


async def test_a_batch_that_does_not_run_takes_no_points(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    client, _, _ = stack
    response = await client.post("/batches/other/points", json=[{"key": 1}])
    assert response.status_code == 404  # never started (issue 8, item 11)
    assert "no batch" in response.json()["detail"]
    await client.delete("/batches/p1")
    assert (await client.post("/batches/p1/points", json=[{"key": 1}])).status_code == 409
    assert await nothing_published(redis, settings)


async def test_accepted_points_are_stored_and_aggregated_once_per_idempotency_key(
    stack: Stack, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, ingest, _ = stack
    now = utcnow()
    body = [{"key": k, "ts": now.isoformat()} for k in (1, 2, 3.5)] + [{"key": 10}]
    headers = {"Idempotency-Key": "push-1"}
    first = await client.post("/batches/p1/points", json=body, headers=headers)
    again = await client.post("/batches/p1/points", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["accepted"] == 4
    assert again.json() == first.json() | {"duplicate": True}
    assert len(await recorded(redis, settings)) == 1

    late = [{"key": 100, "ts": (now - timedelta(minutes=5)).isoformat()}]
    assert (await client.post("/batches/p1/points", json=late)).status_code == 202

    await wait_until(lambda: _eq(aggregated(pool, "p1"), 4), what="4 points aggregated")

    async def counted() -> bool:
        view = (await client.get("/batches/p1")).json()
        return view["points"] == 5 and view["late_points"] == 1

    await wait_until(counted, what="5 points, 1 late")
    rows = await pool.fetch("SELECT key, late FROM points ORDER BY key")
    assert [(r["key"], r["late"]) for r in rows] == [
        (1, False),
        (2, False),
        (3.5, False),
        (10, False),
        (100, True),
    ]
    registry = ingest.metrics.registry
    assert registry.get_sample_value("conveyor_late_points_total") == 1
    assert registry.get_sample_value("conveyor_points_ingested_total", {"source": "pushed"}) == 5
    await pool.execute(
        "INSERT INTO jobs (id, kind, status, priority, max_attempts)"
        " VALUES ('j1', 'move', 'failed', 3, 3), ('j2', 'move', 'failed', 3, 3)"
    )
    stats = (await client.get("/stats")).json()
    assert stats["points_stored"] == 5
    assert stats["points_late"] == 1
    assert stats["batches_running"] == 1
    assert stats["jobs"] == {
        "queued": 0,
        "scheduled": 0,
        "running": 0,
        "completed": 0,
        "failed": 2,
        "cancelled": 0,
    }


async def test_a_poison_message_in_a_read_stores_and_counts_its_neighbours_once(
    stack: Stack, redis: aioredis.Redis, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Three RecordPoints read together, the middle one unstorable (a NUL in its batch
    id: a producer that skipped the gateway's checks). The read's COPY fails, the read
    falls back to one by one: the neighbours are stored and counted once each, the
    poison alone is dead-lettered."""
    _, ingest, _ = stack
    now = utcnow()

    def message(n: int, batch_id: str) -> RecordPoints:
        points = [Point(key=float(i), ts=now) for i in range(n)]
        return RecordPoints(id=f"rp-{n}", batch_id=batch_id, points=points, received_at=now)

    stream = streams.INGEST_POINTS.prefixed(settings.stream_prefix).name
    async with redis.pipeline(transaction=True) as together:  # one read takes all three
        for sent in (message(2, "p1"), message(3, "p1\x00"), message(4, "p1")):
            together.xadd(stream, entry_fields(sent))  # type: ignore[arg-type]
        await together.execute()

    async def dead_lettered() -> bool:
        return bool(await redis.xlen(f"{stream}.dlq") == 1)

    await wait_until(dead_lettered, timeout=30, what="the poison dead-lettered")
    stored = await pool.fetch("SELECT message_id, count(*) AS n FROM points GROUP BY 1")
    assert {r["message_id"]: r["n"] for r in stored} == {"rp-2": 2, "rp-4": 4}
    registry = ingest.metrics.registry
    assert registry.get_sample_value("conveyor_points_ingested_total", {"source": "pushed"}) == 6


async def _eq(value: object, want: int) -> bool:
    return int(await value) == want  # type: ignore[misc]
