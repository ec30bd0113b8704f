"""`GET /batches/{id}/agg`: the last whole minute by an injected clock, and series."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts.runtime.settings import Settings
from tests.support.batches import Stack, aggregated, batch_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(hms: str) -> datetime:
    """A time on 2024-05-01 (UTC), e.g. at("10:11:10.5")."""
    return datetime.fromisoformat(f"2024-05-01T{hms}+00:00")


@pytest.fixture
def clock() -> Clock:
    return Clock(at("10:11:05"))


@pytest.fixture
async def stack(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool, clock: Clock
) -> AsyncIterator[Stack]:
    # A grace of 2 minutes: points pushed at 10:11:05 for 10:09:59 are on time.
    generous = msgspec.structs.replace(settings, late_grace_s=120)
    async with batch_stack(generous, clock) as running_stack:
        client = running_stack[0]
        assert (await client.put("/batches/a1", json={"rate": 0})).status_code == 201
        points = [
            (1, "10:09:59.999999"),
            (10, "10:10:00"),
            (20, "10:10:30"),
            (30, "10:10:59.999999"),
            (1000, "10:11:00"),
        ]
        body = [{"key": k, "ts": at(t).isoformat()} for k, t in points]
        assert (await client.post("/batches/a1/points", json=body)).status_code == 202
        await wait_until(lambda: _eq(aggregated(pool, "a1"), 5), what="5 points aggregated")
        yield running_stack


@pytest.mark.parametrize(
    ("now", "start", "count", "total"),
    [
        ("10:11:10", "10:10:00", 3, 60.0),  # the example: [10:10, 10:11)
        ("10:11:00", "10:10:00", 3, 60.0),  # exactly on a boundary: that minute just ended
        ("10:10:59.999999", "10:09:00", 1, 1.0),
        ("10:12:00", "10:11:00", 1, 1000.0),
        ("10:13:30", "10:12:00", 0, 0.0),  # an empty minute
    ],
)
async def test_last_whole_minute(
    stack: Stack, clock: Clock, now: str, start: str, count: int, total: float
) -> None:
    client, _, _ = stack
    clock.now = at(now)
    agg = (await client.get("/batches/a1/agg")).json()
    assert agg["start"] == at(start).isoformat().replace("+00:00", "Z")
    assert agg["count"] == count
    assert agg["sum"] == total
    if count:
        assert agg["avg"] == total / count
    else:
        assert agg["avg"] is agg["min"] is agg["max"] is None


async def test_the_minute_of_the_example_in_full(stack: Stack, clock: Clock) -> None:
    client, _, _ = stack
    clock.now = at("10:11:10")
    agg = (await client.get("/batches/a1/agg")).json()
    assert agg == agg | {"count": 3, "sum": 60.0, "avg": 20.0, "min": 10.0, "max": 30.0}
    assert agg["end"] == "2024-05-01T10:11:00Z"


async def test_series_has_one_row_per_minute(stack: Stack, clock: Clock) -> None:
    client, _, _ = stack
    clock.now = at("10:20:00")
    params = {"from": "2024-05-01T10:09:30Z", "to": "2024-05-01T10:13:00Z"}
    series = (await client.get("/batches/a1/agg", params=params)).json()
    assert series["start"] == "2024-05-01T10:09:00Z"
    rows = series["minutes"]
    assert [r["start"][11:16] for r in rows] == ["10:09", "10:10", "10:11", "10:12"]
    assert [r["count"] for r in rows] == [1, 3, 1, 0]
    assert [r["sum"] for r in rows] == [1.0, 60.0, 1000.0, 0.0]
    assert rows[3]["avg"] is None
    assert rows[3]["closed"] is True  # past its grace by the clock


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2024-05-01T10:13:00Z", "to": "2024-05-01T10:09:00Z"},
        {"from": "2024-05-01T00:00:00Z", "to": "2024-05-03T00:00:00Z"},
        {"to": "2024-05-01T10:09:00Z"},
        {"from": "yesterday"},
    ],
)
async def test_bad_ranges_are_400_problems(stack: Stack, params: dict[str, str]) -> None:
    client, _, _ = stack
    response = await client.get("/batches/a1/agg", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def _eq(value: object, want: int) -> bool:
    return int(await value) == want  # type: ignore[misc]
