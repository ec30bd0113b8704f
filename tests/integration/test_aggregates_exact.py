"""The per-minute aggregates equal a recomputation from the raw points, after a SIGKILL
of the aggregator inside its transactions (half the points applied, the rest read and
waiting on a lock) and after duplicate deliveries."""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.messages import utcnow
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from ingest.app import create_app as create_ingest
from tests.support.batches import (
    aggregated,
    drained,
    named,
    running,
    stored_equals_recomputed,
)
from tests.support.gateway import serve
from tests.support.processes import consumer_name, free_port, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REQUESTS = 120
PER_REQUEST = 250
LATE_EVERY = 50  # every 50th point is two hours old: stored, not aggregated


@pytest.fixture
def exact_settings(settings: Settings) -> Settings:
    # An hour of grace: points spread over the last 30 minutes all count.
    return msgspec.structs.replace(settings, late_grace_s=3600, max_batches=3)


@pytest.fixture
async def client(
    exact_settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running(create_ingest, named(exact_settings, "ingest")),
        serve(create_gateway(exact_settings)) as test_client,
    ):
        yield test_client


@pytest.fixture
def aggregators() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        kill(proc)


def start_aggregator(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return start_module("aggregator", settings, log, AGGREGATOR_PORT=str(free_port()))


def bodies(rng: random.Random) -> list[list[dict[str, object]]]:
    now = utcnow()
    out = []
    for _ in range(REQUESTS):
        body: list[dict[str, object]] = []
        for i in range(PER_REQUEST):
            age = (
                timedelta(hours=2)
                if i % LATE_EVERY == 0
                else timedelta(seconds=rng.uniform(0, 1800))
            )
            key = rng.choice([rng.randint(-50, 50), round(rng.uniform(-1e6, 1e6), 3), 0.1])
            body.append({"key": key, "ts": (now - age).isoformat()})
        out.append(body)
    return out


async def test_sigkill_mid_stream_and_duplicates_leave_exact_aggregates(
    client: httpx.AsyncClient,
    exact_settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    aggregators: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    settings = exact_settings
    batch_ids = ["x1", "x2", "x3"]
    for batch_id in batch_ids:
        assert (await client.put(f"/batches/{batch_id}", json={"rate": 0})).status_code == 201
    first = start_aggregator(settings, tmp_path / "first.log")
    aggregators.append(first)

    rng = random.Random(4)
    payloads = bodies(rng)
    half = REQUESTS // 2
    on_time = REQUESTS * PER_REQUEST * (LATE_EVERY - 1) // LATE_EVERY
    first_half = on_time * half // REQUESTS
    points = streams.POINTS.prefixed(settings.stream_prefix).name

    async def post(bodies_: list[list[dict[str, object]]], offset: int) -> None:
        for n, body in enumerate(bodies_, start=offset):
            response = await client.post(f"/batches/{batch_ids[n % 3]}/points", json=body)
            assert response.status_code == 202, response.text

    # The first half is applied for good ...
    await post(payloads[:half], 0)
    await wait_until(
        lambda: _equals(aggregated(pool), first_half), timeout=60, what="the first half applied"
    )
    # ... the second half is read, and its transactions wait on a table lock held here,
    # so the SIGKILL lands inside them (not, by luck of timing, between two reads: one
    # read applies up to 50 requests' points in one transaction).
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("LOCK TABLE minute_aggregates IN EXCLUSIVE MODE")
        await post(payloads[half:], half)

        async def inside_a_transaction() -> bool:
            held = await redis.xpending_range(
                points, streams.AGGREGATOR, min="-", max="+", count=100
            )
            mine = any(h["consumer"].decode() == consumer_name(first) for h in held)
            return mine and bool(
                await pool.fetchval(
                    """SELECT count(*) > 0 FROM pg_locks
                       WHERE relation = 'minute_aggregates'::regclass AND NOT granted"""
                )
            )

        await wait_until(inside_a_transaction, timeout=30, what="the aggregator mid-transaction")
        assert kill(first, signal.SIGKILL) == -signal.SIGKILL
    # Nothing of the killed transactions was applied; their entries are still pending.
    assert await aggregated(pool) == first_half
    assert (await redis.xpending(points, streams.AGGREGATOR))["pending"] > 0

    second = start_aggregator(settings, tmp_path / "second.log")
    aggregators.append(second)
    await wait_until(lambda: drained(redis, points, streams.AGGREGATOR), timeout=60, what="drained")
    assert await aggregated(pool) == on_time
    assert await stored_equals_recomputed(pool)

    # Duplicate deliveries: the same messages appended again (as a replay would).
    entries = await redis.xrange(points, count=30)
    for _entry_id, fields in entries:
        await redis.xadd(points, fields)
    await wait_until(lambda: drained(redis, points, streams.AGGREGATOR), timeout=30, what="drained")
    assert await aggregated(pool) == on_time
    assert await stored_equals_recomputed(pool)
    assert await pool.fetchval("SELECT count(*) FROM points") == REQUESTS * PER_REQUEST
    assert (
        await pool.fetchval("SELECT count(*) FROM points WHERE late")
        == REQUESTS * PER_REQUEST // LATE_EVERY
    )


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
