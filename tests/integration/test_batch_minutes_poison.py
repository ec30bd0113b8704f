"""One poison minute never stalls its neighbours (issue 8, item 1).

A minute whose sum no double can hold is written straight into the store (as data
that bypassed the gateway's bounds would be). Every other minute, of its batch and
of others, still closes; the bad one is recorded once (log, metric, `close_error`)
instead of failing the closer every second, and `/agg` over it answers 200.
"""

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

NOW = floor_minute(utcnow())
OLD = NOW - timedelta(minutes=5)
CLOSER_LOG = "conveyor.aggregator.minutes"


@pytest.fixture
async def stack(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[Stack]:
    await plant(pool, "bad", OLD, total="1e400")  # older than every good minute: first in line
    await plant(pool, "bad", OLD + timedelta(minutes=1), total="3")
    await plant(pool, "good", OLD + timedelta(minutes=1), total="7")
    async with batch_stack(settings) as running_stack:
        yield running_stack


async def plant(pool: asyncpg.Pool, batch_id: str, minute: datetime, *, total: str) -> None:
    await pool.execute(
        "INSERT INTO minute_aggregates (batch_id, minute, count, sum, min, max)"
        " VALUES ($1, $2, 2, $3::numeric, 1, 2)",
        batch_id,
        minute,
        total,
    )
    await pool.execute(
        "INSERT INTO batch_runs (run_id, batch_id, started_at) VALUES ($1, $1, $2)"
        " ON CONFLICT DO NOTHING",
        batch_id,
        minute,
    )


async def closed_minutes(redis: aioredis.Redis, settings: Settings) -> set[tuple[str, datetime]]:
    name = streams.BATCHES_EVENTS.prefixed(settings.stream_prefix).name
    decoder = streams.BATCHES_EVENTS.decoder()
    events = [decoder.decode(f[b"__data__"]) for _, f in await redis.xrange(name)]
    return {(e.batch_id, e.minute) for e in events if isinstance(e, MinuteClosed)}


async def test_a_minute_that_cannot_close_does_not_stop_the_others(
    stack: Stack,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=CLOSER_LOG)
    _, _, aggregator = stack
    good = {("bad", OLD + timedelta(minutes=1)), ("good", OLD + timedelta(minutes=1))}

    async def others_closed() -> bool:
        return good <= await closed_minutes(redis, settings)

    await wait_until(others_closed, what="the good minutes closed")

    # Later minutes keep closing: the closer goes on, and does not log the bad one again.
    for n in range(2, 4):
        await plant(pool, "good", OLD + timedelta(minutes=n), total=str(n))
        late = ("good", OLD + timedelta(minutes=n))
        await wait_until(
            lambda late=late: _has(closed_minutes(redis, settings), late), what=f"minute {n}"
        )
    assert ("bad", OLD) not in await closed_minutes(redis, settings)
    row = await pool.fetchrow(
        "SELECT closed, close_error FROM minute_aggregates WHERE batch_id = 'bad' AND minute = $1",
        OLD,
    )
    assert row is not None
    assert not row["closed"]
    assert "out of range" in row["close_error"]
    failures = [r for r in caplog.records if r.name == CLOSER_LOG and r.levelno >= logging.WARNING]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "bad" in failures[0].getMessage()
    registry = aggregator.metrics.registry
    assert registry.get_sample_value("conveyor_minutes_close_failed_total") == 1


async def test_agg_over_a_minute_with_an_unrepresentable_sum_is_not_a_500(stack: Stack) -> None:
    client, _, _ = stack
    params = {"from": OLD.isoformat(), "to": (OLD + timedelta(minutes=2)).isoformat()}
    response = await client.get("/batches/bad/agg", params=params)
    assert response.status_code == 200, response.text
    first, second = response.json()["minutes"]
    assert (first["count"], first["sum"], first["avg"]) == (2, None, None)
    assert (second["count"], second["sum"], second["avg"]) == (2, 3.0, 1.5)


async def _has(found: object, item: tuple[str, datetime]) -> bool:
    return item in await found  # type: ignore[operator]
