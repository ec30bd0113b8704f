"""Rate limits with leases (gateway/frontdoor/ratelimit.py), on a real Redis bucket:
processes spend no more than the bucket gives, a busy key asks Redis once per lease
rather than per request, and an error while asking leaves no request waiting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from contracts.runtime.settings import Settings
from gateway.frontdoor.ratelimit import MAX_LEASE, RateLimit

pytestmark = pytest.mark.integration


class Counting:
    """A Redis client that counts the scripts it runs (and can be made to fail)."""

    def __init__(self, redis: aioredis.Redis, *, fail: bool = False) -> None:
        self.redis, self.fail, self.asks = redis, fail, 0

    async def eval(self, *args: Any) -> Any:
        self.asks += 1
        await asyncio.sleep(0.01)  # an answer that takes a while: others ask meanwhile
        if self.fail:
            raise ConnectionError("Redis is away")
        return await self.redis.eval(*args)


async def test_processes_never_spend_more_than_the_bucket_gives(
    settings: Settings, redis: aioredis.Redis
) -> None:
    tight = msgspec.structs.replace(settings, rate_limit_per_s=200.0, rate_limit_burst=20)
    processes = [RateLimit(tight) for _ in range(3)]  # one bucket, three gateways
    assert processes[0].most == 20  # leases of up to 20 tokens (200/s over 0.1 s)
    began = time.monotonic()
    outcomes = await asyncio.gather(
        *(processes[i % 3].spend("k", redis) for i in range(600))  # type: ignore[arg-type]
    )
    elapsed = time.monotonic() - began
    admitted = outcomes.count(0)
    assert admitted >= 20, "the burst at least"
    assert admitted <= 20 + 200 * elapsed + 1, (admitted, elapsed)
    refused = [wait for wait in outcomes if wait]
    assert refused
    assert all(wait >= 1 for wait in refused)


async def test_a_busy_key_asks_redis_once_per_lease(
    settings: Settings, redis: aioredis.Redis
) -> None:
    roomy = msgspec.structs.replace(settings, rate_limit_per_s=1e6, rate_limit_burst=10**6)
    limit, counting = RateLimit(roomy), Counting(redis)
    for _ in range(10):  # 32 requests in flight at a time, as the intake benchmark sends
        waits = await asyncio.gather(*(limit.spend("k", counting) for _ in range(32)))  # type: ignore[arg-type]
        assert waits == [0] * 32
    assert limit.leases["k"].want == MAX_LEASE
    assert counting.asks < 32, f"{counting.asks} asks for 320 requests"


async def test_a_slow_key_asks_on_every_request_and_is_refused_past_its_burst(
    settings: Settings, redis: aioredis.Redis
) -> None:
    slow = msgspec.structs.replace(settings, rate_limit_per_s=1.0, rate_limit_burst=5)
    limit, counting = RateLimit(slow), Counting(redis)
    waits = [await limit.spend("k", counting) for _ in range(8)]  # type: ignore[arg-type]
    assert waits[:5] == [0] * 5
    assert all(wait >= 1 for wait in waits[5:])
    assert counting.asks == 8


async def test_an_error_while_asking_reaches_every_waiting_request(
    settings: Settings, redis: aioredis.Redis
) -> None:
    limit, failing = RateLimit(settings), Counting(redis, fail=True)
    results = await asyncio.wait_for(
        asyncio.gather(
            *(limit.spend("k", failing) for _ in range(5)),  # type: ignore[arg-type]
            return_exceptions=True,
        ),
        timeout=5,
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert limit.leases["k"].asking is None
