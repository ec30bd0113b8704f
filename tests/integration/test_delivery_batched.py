"""What only the batched mode has: a read applied as one transaction, and its fallback.

Entries are appended before the probe starts (its group made first, at the start of the
stream), so that its first XREADGROUP takes them all together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import codec
from contracts.delivery import list_dead
from contracts.messages import Message, new_id
from contracts.runtime.service import Service
from contracts.runtime.settings import Settings
from tests.support.probe import BATCH, GROUP, PROBE, TABLES_DDL, Tally, create_app
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
FALLBACK = "one by one instead"


async def append_together(redis: aioredis.Redis, stream: str, messages: Sequence[Message]) -> None:
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    async with redis.pipeline(transaction=True) as pipe:
        for message in messages:
            pipe.xadd(stream, codec.entry_fields(message))  # type: ignore[arg-type]
        await pipe.execute()


def outcome(service: Service, name: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "conveyor_messages_total",
        {"stream": PROBE.prefixed(service.settings.stream_prefix).name, "group": GROUP,
         "outcome": name},
    )  # fmt: skip
    return value or 0.0


def counter(service: Service, name: str) -> float:
    labels = {"stream": PROBE.prefixed(service.settings.stream_prefix).name, "group": GROUP}
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


async def pending(redis: aioredis.Redis, stream: str) -> int:
    return int((await redis.xpending(stream, GROUP))["pending"])


async def keys(pool: asyncpg.Pool) -> list[str]:
    return [r["key"] for r in await pool.fetch("SELECT key FROM probe_effects ORDER BY key")]


async def test_a_poison_entry_in_the_middle_fails_alone(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await pool.execute(TABLES_DDL)
    await pool.execute("INSERT INTO probe_poison (key) VALUES ('bad')")
    stream = PROBE.prefixed(settings.stream_prefix).name
    good = [f"good-{i}" for i in range(6)]
    poison = Tally(id=new_id(), key="bad")
    messages = [Tally(id=new_id(), key=k) for k in good[:3]]
    messages += [poison, *(Tally(id=new_id(), key=k) for k in good[3:])]
    assert len(messages) <= BATCH
    await append_together(redis, stream, messages)

    app, probe = create_app(settings, mode="batched")
    with caplog.at_level(logging.WARNING, logger="conveyor.delivery"):
        async with app:
            await wait_until(lambda: _eq(keys(pool), good), what="the neighbours applied")
            dead = await wait_until(lambda: list_dead(redis, stream), what="the dead letter")
            await wait_until(lambda: _eq(pending(redis, stream), 0), what="nothing pending")

    assert any(FALLBACK in r.getMessage() for r in caplog.records), "the read was not one batch"
    assert [d.data for d in dead] == [codec.encode(poison).decode()]
    assert dead[0].deliveries == settings.max_deliveries + 1
    assert "tally bad is poison" in dead[0].reason
    assert await keys(pool) == good
    assert outcome(probe, "applied") == 6
    assert outcome(probe, "dead_lettered") == 1
    assert outcome(probe, "failed") == settings.max_deliveries
    assert counter(probe, "conveyor_messages_acked_total") == 7


async def test_duplicates_within_one_read_are_applied_once(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await pool.execute(TABLES_DDL)
    stream = PROBE.prefixed(settings.stream_prefix).name
    twice = Tally(id=new_id(), key="twice")
    once = Tally(id=new_id(), key="once")
    await append_together(redis, stream, [twice, once, twice, twice])

    app, probe = create_app(settings, mode="batched")
    with caplog.at_level(logging.WARNING, logger="conveyor.delivery"):
        async with app:
            await wait_until(lambda: _eq(pending(redis, stream), 0), what="all acknowledged")

    assert await keys(pool) == ["once", "twice"]
    assert outcome(probe, "applied") == 2
    assert outcome(probe, "duplicate") == 2
    assert counter(probe, "conveyor_messages_consumed_total") == 4
    assert counter(probe, "conveyor_messages_acked_total") == 4
    assert not any(FALLBACK in r.getMessage() for r in caplog.records), "the batch failed"
    recorded = await pool.fetch(
        "SELECT message_id FROM applied_messages WHERE consumer_group = $1", GROUP
    )
    assert sorted(r["message_id"] for r in recorded) == sorted([twice.id, once.id])


async def test_a_read_already_applied_is_acknowledged_and_changes_nothing(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await pool.execute(TABLES_DDL)
    stream = PROBE.prefixed(settings.stream_prefix).name
    messages = [Tally(id=new_id(), key=f"k{i}") for i in range(5)]
    await append_together(redis, stream, messages)
    app, _ = create_app(settings, mode="batched")
    async with app:
        await wait_until(lambda: _eq(pending(redis, stream), 0), what="the first read")
    for message in messages:  # published again, as after a lost publish confirmation
        await codec.publish(redis, stream, message)

    app, probe = create_app(settings, mode="batched")
    async with app:
        await wait_until(lambda: _ge(outcome_of(probe, "duplicate"), 5), what="the duplicates")
        await wait_until(lambda: _eq(pending(redis, stream), 0), what="all acknowledged")

    assert await keys(pool) == [f"k{i}" for i in range(5)]
    assert outcome(probe, "applied") == 0


async def _eq(value: object, expected: object) -> bool:
    return bool(await value == expected)  # type: ignore[misc]


async def _ge(value: object, expected: float) -> bool:
    return bool(await value >= expected)  # type: ignore[misc]


async def outcome_of(service: Service, name: str) -> float:
    return outcome(service, name)


async def test_a_slow_read_keeps_its_lease_and_is_not_claimed_away(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await pool.execute(TABLES_DDL)
    stream = PROBE.prefixed(settings.stream_prefix).name
    slow_s = 3 * settings.claim_idle_ms / 1000  # the read's effect outlasts the idle time
    messages = [Tally(id=new_id(), key=f"k{i}", sleep_s=slow_s if i == 1 else 0) for i in range(4)]
    await append_together(redis, stream, messages)

    app, probe = create_app(settings, mode="batched")
    async with app:
        await wait_until(lambda: _eq(keys(pool), [f"k{i}" for i in range(4)]), what="applied")
        await wait_until(lambda: _eq(pending(redis, stream), 0), what="all acknowledged")

    assert counter(probe, "conveyor_reclaimed_total") == 0
    assert outcome(probe, "applied") == 4
    assert outcome(probe, "duplicate") == 0
