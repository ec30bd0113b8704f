"""The delivery rules in one process, against real Redis and PostgreSQL.

One contract suite, two configurations: every test taking `probe` runs against a
one-by-one consumer and a batched one (`many=`, tests/support/probe.py `MODES`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import codec
from contracts.delivery import list_dead, replay
from contracts.delivery.idempotency import forget_applied_before
from contracts.messages import new_id
from contracts.runtime.service import Service
from contracts.runtime.settings import Settings
from tests.support.probe import GROUP, MODES, PROBE, TABLES_DDL, Tally, create_app
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=MODES)
async def probe(
    settings: Settings, pool: asyncpg.Pool, request: pytest.FixtureRequest
) -> AsyncIterator[Service]:
    await pool.execute(TABLES_DDL)
    app, service = create_app(settings, mode=request.param)
    async with app:
        yield service


def stream(settings: Settings) -> str:
    return PROBE.prefixed(settings.stream_prefix).name


async def rows(pool: asyncpg.Pool, key: str | None = None) -> int:
    if key is None:
        return int(await pool.fetchval("SELECT count(*) FROM probe_effects"))
    return int(await pool.fetchval("SELECT count(*) FROM probe_effects WHERE key = $1", key))


async def pending(redis: aioredis.Redis, settings: Settings) -> int:
    return int((await redis.xpending(stream(settings), GROUP))["pending"])


def outcome(service: Service, name: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "conveyor_messages_total",
        {"stream": stream(service.settings), "group": GROUP, "outcome": name},
    )
    return value or 0.0


async def test_every_message_applied_once_and_acknowledged(
    probe: Service, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    for i in range(20):
        await codec.publish(redis, stream(settings), Tally(id=new_id(), key=f"k{i}"))

    await wait_until(lambda: _eq(rows(pool), 20), what="20 effects")
    await wait_until(lambda: _eq(pending(redis, settings), 0), what="nothing pending")
    assert outcome(probe, "applied") == 20


async def test_same_message_id_published_twice_is_applied_once(
    probe: Service, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    message = Tally(id=new_id(), key="twice")
    await codec.publish(redis, stream(settings), message)
    await codec.publish(redis, stream(settings), message)

    await wait_until(lambda: _ge(outcome_async(probe, "duplicate"), 1), what="the duplicate")
    assert await rows(pool, "twice") == 1
    assert outcome(probe, "applied") == 1
    assert await pending(redis, settings) == 0


async def test_redelivery_after_a_lost_ack_changes_nothing(
    probe: Service,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_xack = probe.redis.xack
    lost: list[Any] = []

    async def lose_first_ack(*args: Any) -> int:
        if not lost:
            lost.append(args)
            raise ConnectionError("ack lost on the way to Redis")
        return int(await real_xack(*args))

    monkeypatch.setattr(probe.redis, "xack", lose_first_ack)
    await codec.publish(redis, stream(settings), Tally(id=new_id(), key="lost-ack"))

    # The entry stays pending, is claimed after claim_idle_ms, found applied, acknowledged.
    await wait_until(lambda: _ge(outcome_async(probe, "duplicate"), 1), what="the redelivery")
    await wait_until(lambda: _eq(pending(redis, settings), 0), what="nothing pending")
    assert lost, "the first ack was not attempted"
    assert await rows(pool, "lost-ack") == 1


async def test_poison_message_is_dead_lettered_and_replayable(
    probe: Service, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    await pool.execute("INSERT INTO probe_poison (key) VALUES ('bad')")
    poison = Tally(id=new_id(), key="bad")
    await codec.publish(redis, stream(settings), poison)
    for i in range(5):
        await codec.publish(redis, stream(settings), Tally(id=new_id(), key=f"after-{i}"))

    await wait_until(lambda: _eq(rows(pool), 5), what="the messages behind the poison")
    dead = await wait_until(lambda: list_dead(redis, stream(settings)), what="a dead letter")
    await wait_until(lambda: _eq(pending(redis, settings), 0), what="an empty pending list")

    assert len(dead) == 1
    letter = dead[0]
    assert letter.group == GROUP
    assert letter.deliveries == settings.max_deliveries + 1
    assert f"gave up after {settings.max_deliveries} deliveries" in letter.reason
    assert "tally bad is poison" in letter.reason
    assert codec.encode(poison).decode() == letter.data
    assert await rows(pool, "bad") == 0

    await pool.execute("DELETE FROM probe_poison WHERE key = 'bad'")  # the fix
    replayed = await replay(redis, stream(settings))

    assert len(replayed) == 1
    await wait_until(lambda: _eq(rows(pool, "bad"), 1), what="the replayed message applied")
    assert await list_dead(redis, stream(settings)) == []
    await wait_until(lambda: _eq(pending(redis, settings), 0), what="nothing pending")


async def test_undecodable_entry_is_dead_lettered_at_once(
    probe: Service, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    await redis.xadd(stream(settings), {codec.DATA_FIELD: b'{"type":"Tally","id":"x"}'})
    await redis.xadd(stream(settings), {codec.DATA_FIELD: b"not json at all"})
    await codec.publish(redis, stream(settings), Tally(id=new_id(), key="fine"))

    await wait_until(lambda: _eq(rows(pool, "fine"), 1), what="the good message")
    dead = await wait_until(
        lambda: _len_at_least(list_dead(redis, stream(settings)), 2), what="two dead letters"
    )
    assert all(d.reason.startswith("undecodable:") for d in dead)
    assert "missing required field `key`" in dead[0].reason
    assert [d.deliveries for d in dead] == [1, 1]
    assert await pending(redis, settings) == 0


async def test_replayed_message_already_applied_changes_nothing(
    probe: Service, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings
) -> None:
    message = Tally(id=new_id(), key="once")
    await codec.publish(redis, stream(settings), message)
    await wait_until(lambda: _eq(rows(pool, "once"), 1), what="first application")
    # An operator dead-letters by hand what was in fact applied, then replays it.
    await redis.xadd(f"{stream(settings)}.dlq", codec.entry_fields(message))
    await replay(redis, stream(settings))

    await wait_until(lambda: _ge(outcome_async(probe, "duplicate"), 1), what="the replay seen")
    assert await rows(pool, "once") == 1


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _ge(value: Any, expected: float) -> bool:
    return bool(await value >= expected)


async def _len_at_least(value: Any, n: int) -> Any:
    found = await value
    return found if len(found) >= n else None


async def outcome_async(service: Service, name: str) -> float:
    return outcome(service, name)


async def test_old_idempotency_records_are_forgotten_recent_ones_kept(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """INSERT INTO applied_messages (consumer_group, message_id, stream, entry_id, applied_at)
           VALUES ('g', 'old', 's', '1-0', now() - interval '9 days'),
                  ('g', 'recent', 's', '2-0', now() - interval '7 days')"""
    )
    assert await forget_applied_before(pool, days=8) == 1
    left = await pool.fetch("SELECT message_id FROM applied_messages WHERE consumer_group = 'g'")
    assert [r["message_id"] for r in left] == ["recent"]
