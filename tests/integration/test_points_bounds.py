"""Accepted means done for points (issue 8, items 1, 4 and 11): what the gateway takes
fits the store and its sums, and every accepted point ends somewhere visible."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.messages import MinuteClosed, utcnow
from contracts.minutes import floor_minute
from contracts.runtime.settings import Settings
from tests.support.batches import Stack, batch_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
BOUND = 1e15  # gateway.frontdoor.fields.MAX_ABS_VALUE


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# Points stamped in a minute three minutes ago and received 6 s into it (the gateway's
# clock): on time, and the minute is due to close at once.
MINUTE = floor_minute(utcnow()) - timedelta(minutes=3)


@pytest.fixture
async def stack(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[Stack]:
    async with batch_stack(settings, Clock(MINUTE + timedelta(seconds=6))) as running_stack:
        assert (await running_stack[0].put("/batches/x1", json={"rate": 0})).status_code == 201
        yield running_stack


def _stream(settings: Settings, spec: streams.StreamSpec) -> str:
    return spec.prefixed(settings.stream_prefix).name


async def nothing_published(redis: aioredis.Redis, settings: Settings) -> bool:
    return await redis.xlen(_stream(settings, streams.INGEST_POINTS)) == 0


async def test_values_past_the_bound_are_422_naming_each_item_and_nothing_is_published(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    client, _, _ = stack
    for body, indexes in (
        ([{"key": 1e308}, {"key": 1e308}], [0, 1]),
        ([{"key": 1}, {"key": -1.0000001e15}, {"key": BOUND}], [1]),
    ):
        response = await client.post("/batches/x1/points", json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        assert [e["index"] for e in response.json()["errors"]] == indexes
    assert await nothing_published(redis, settings)


async def test_times_that_do_not_fit_utc_or_lie_ahead_are_422(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    client, _, _ = stack
    body = [
        {"key": 1, "ts": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
        {"key": 2, "ts": "9999-12-31T23:59:59-14:00"},  # past year 9999 in UTC
        {"key": 3, "ts": "2024-05-01T10:00:00"},  # no offset
        {"key": 4, "ts": "0001-01-01T23:59:59+14:00"},  # fine: far past, late
    ]
    response = await client.post("/batches/x1/points", json=body)
    assert response.status_code == 422, response.text
    assert [e["index"] for e in response.json()["errors"]] == [0, 1, 2]
    assert await nothing_published(redis, settings)


async def test_extreme_allowed_points_are_aggregated_exactly_or_counted_late(
    stack: Stack,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    client, _, _ = stack
    at = (MINUTE + timedelta(seconds=5)).isoformat()
    keys = [BOUND] * 40 + [-BOUND, 5e-324, -5e-324, BOUND - 1]
    on_time = [{"key": k, "ts": at} for k in keys]
    far = [
        {"key": BOUND, "ts": "0001-01-01T23:59:59+14:00"},
        {"key": -BOUND, "ts": "1900-01-01T00:00:00-12:00"},
        {"key": 1, "ts": (MINUTE - timedelta(days=365 * 100)).isoformat()},
    ]
    response = await client.post("/batches/x1/points", json=on_time + far)
    assert response.status_code == 202, response.text

    async def announced() -> MinuteClosed | None:
        name = _stream(settings, streams.BATCHES_EVENTS)
        decoder = streams.BATCHES_EVENTS.decoder()
        events = [decoder.decode(f[b"__data__"]) for _, f in await redis.xrange(name)]
        return next((e for e in events if isinstance(e, MinuteClosed)), None)

    closed = await wait_until(announced, what="the minute closed")
    assert (closed.minute, closed.count) == (MINUTE, len(keys))
    assert closed.sum == 40 * BOUND - BOUND + BOUND - 1
    assert (closed.min, closed.max) == (-BOUND, BOUND)

    agg = await client.get("/batches/x1/agg", params={"from": MINUTE.isoformat(), "to": at})
    assert agg.status_code == 200, agg.text
    (row,) = agg.json()["minutes"]
    assert (row["count"], row["sum"], row["closed"]) == (len(keys), closed.sum, True)
    assert row["avg"] == pytest.approx(closed.sum / len(keys))

    async def counted() -> bool:
        view = (await client.get("/batches/x1")).json()
        return bool(view["points"] == len(keys) + 3 and view["late_points"] == 3)

    await wait_until(counted, what="every point counted, 3 late")
    for stream in (streams.INGEST_POINTS, streams.POINTS, streams.BATCHES_EVENTS):
        assert await redis.xlen(_stream(settings, stream) + ".dlq") == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_agg_over_extreme_ranges_is_a_4xx_not_a_500(stack: Stack) -> None:
    client, _, _ = stack
    for params in (
        {"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-01T01:00:00Z"},
        {"from": "9999-12-31T23:00:00Z", "to": "9999-12-31T23:59:59Z"},
        {"from": "9999-12-31T23:59:00-14:00"},
    ):
        response = await client.get("/batches/x1/agg", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"] == PROBLEM


async def test_unknown_batch_is_404_and_a_stopped_one_409(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    client, _, _ = stack
    unknown = await client.post("/batches/never/points", json=[{"key": 1}])
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers["content-type"] == PROBLEM
    await client.delete("/batches/x1")

    async def projected() -> bool:
        return (await client.get("/batches/x1")).json()["status"] == "stopped"

    await wait_until(projected, what="x1 stopped")
    stopped = await client.post("/batches/x1/points", json=[{"key": 1}])
    assert stopped.status_code == 409, stopped.text
    assert "not running" in stopped.json()["detail"]
    assert await nothing_published(redis, settings)


@pytest.mark.parametrize("batch_id", ["a%00b", "a%0A", "%00"])
async def test_batch_ids_with_nul_or_newline_are_refused_on_every_route(
    stack: Stack, batch_id: str
) -> None:
    client, _, _ = stack
    for method, path, body in (
        ("GET", f"/batches/{batch_id}", None),
        ("GET", f"/batches/{batch_id}/agg", None),
        ("GET", f"/batches/{batch_id}/events", None),
        ("DELETE", f"/batches/{batch_id}", None),
        ("POST", f"/batches/{batch_id}/points", [{"key": 1}]),
        ("PUT", f"/batches/{batch_id}", {}),
    ):
        response = await client.request(method, path, json=body)
        assert response.status_code in (400, 404), (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM
    named = await client.post("/batches", json={"batch_id": "a\n"})
    assert named.status_code == 400, named.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"low": -1.5e15}, "low"),
        ({"high": 1e308}, "high"),
        ({"mean": -1e300, "distribution": "normal"}, "mean"),
        ({"stddev": 2e15, "distribution": "normal"}, "stddev"),
        ({"stddev": -1}, "stddev"),
        ({"rate": 1e9}, "rate"),
        ({"low": 5, "high": 1}, "low"),
    ],
)
async def test_start_options_past_their_bounds_are_refused_naming_the_field(
    stack: Stack, redis: aioredis.Redis, settings: Settings, body: dict[str, object], field: str
) -> None:
    client, _, _ = stack
    commands = _stream(settings, streams.INGEST_COMMANDS)
    before = await redis.xlen(commands)
    response = await client.put("/batches/s1", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [e["key"] for e in response.json()["errors"]] == [field]
    assert await redis.xlen(commands) == before


async def test_a_run_at_the_extremes_of_its_options_makes_points_within_the_bound(
    stack: Stack, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, _, _ = stack
    body = {"rate": 200, "distribution": "normal", "mean": BOUND, "stddev": BOUND}
    assert (await client.put("/batches/n1", json=body)).status_code == 201

    async def made() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM points WHERE batch_id = 'n1'"))

    await wait_until(lambda: _at_least(made(), 100), what="100 points made")
    assert await client.delete("/batches/n1")
    extremes = await pool.fetchrow("SELECT max(abs(key)) AS most FROM points WHERE batch_id = 'n1'")
    assert extremes is not None
    assert extremes["most"] == BOUND  # half the draws are above the mean: clamped
    for stream in (streams.INGEST_POINTS, streams.POINTS):
        assert await redis.xlen(_stream(settings, stream) + ".dlq") == 0


async def _at_least(value: object, floor: int) -> bool:
    return int(await value) >= floor  # type: ignore[misc]
