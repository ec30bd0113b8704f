"""`Delivery.consume(..., on_dead_letter=...)`: told of every dead letter, after the fact."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import codec
from contracts.delivery import list_dead
from contracts.messages import Message, new_id
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings
from tests.support.probe import GROUP, MODES, PROBE, TABLES_DDL, Tally, apply_tally, consume_kwargs
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", MODES)
async def test_hook_gets_the_message_and_reason_after_it_is_in_the_dlq(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, mode: str
) -> None:
    await pool.execute(TABLES_DDL)
    await pool.execute("INSERT INTO probe_poison (key) VALUES ('bad')")
    stream = PROBE.prefixed(settings.stream_prefix).name
    told: list[tuple[Message | None, str, int]] = []

    async def on_dead_letter(message: Message | None, reason: str) -> None:
        told.append((message, reason, len(await list_dead(redis, stream))))
        if len(told) == 1:
            raise RuntimeError("a failing hook is logged, not raised")

    def register(service: Service) -> None:
        service.delivery.consume(
            PROBE, GROUP, apply_tally, on_dead_letter=on_dead_letter, **consume_kwargs(mode)
        )

    app, _ = build_service("probe", settings, register)
    poison = Tally(id=new_id(), key="bad")
    async with app:
        await redis.xadd(stream, {codec.DATA_FIELD: b"not json"})
        await codec.publish(redis, stream, poison)
        await codec.publish(redis, stream, Tally(id=new_id(), key="fine"))
        await wait_until(lambda: _len(told, 2), timeout=30, what="two dead letters told")

    (undecodable, why_1, dlq_1), (message, why_2, dlq_2) = told
    assert undecodable is None
    assert why_1.startswith("undecodable:")
    assert message == poison
    assert "tally bad is poison" in why_2
    assert (dlq_1, dlq_2) == (1, 2), "the hook runs once the entry is in the dead-letter stream"
    assert await pool.fetchval("SELECT count(*) FROM probe_effects WHERE key = 'fine'") == 1


async def _len(items: Sequence[object], n: int) -> bool:
    return len(items) >= n
