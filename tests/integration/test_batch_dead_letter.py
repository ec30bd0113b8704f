"""A command that cannot be applied ends its batch, visibly (issue 8).

A StartBatch that fails on every delivery is dead-lettered by the delivery rules;
ingest's `on_dead_letter` then drops the run (its slot is free again), and the
batch shows `failed` with the reason in `GET /batches/{id}` and on its feed's
stream (`batches.events`), instead of `running` forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.messages import BatchStopped, IngestCommand
from contracts.runtime.db import DbConnection
from contracts.runtime.settings import Settings
from ingest.lifecycle import Lifecycle
from tests.support.batches import Stack, batch_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(
    settings: Settings, redis: aioredis.Redis, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    applied = Lifecycle.handle

    async def poisoned(self: Lifecycle, command: IngestCommand, conn: DbConnection) -> None:
        if command.batch_id == "doomed":
            raise RuntimeError("cannot apply this start")
        await applied(self, command, conn)

    monkeypatch.setattr(Lifecycle, "handle", poisoned)
    async with batch_stack(settings) as running_stack:
        yield running_stack


async def stopped_events(redis: aioredis.Redis, settings: Settings) -> list[BatchStopped]:
    name = streams.BATCHES_EVENTS.prefixed(settings.stream_prefix).name
    decoder = streams.BATCHES_EVENTS.decoder()
    events = [decoder.decode(f[b"__data__"]) for _, f in await redis.xrange(name)]
    return [e for e in events if isinstance(e, BatchStopped)]


async def test_a_dead_lettered_start_fails_its_batch_with_the_reason(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    client, _, _ = stack
    started = await client.put("/batches/doomed", json={"rate": 5})
    assert started.status_code == 201, started.text
    assert (await client.put("/batches/fine", json={"rate": 0})).status_code == 201

    async def failed() -> dict[str, object] | None:
        view: dict[str, object] = (await client.get("/batches/doomed")).json()
        return view if view["status"] == "failed" else None

    view = await wait_until(failed, timeout=30, what="the batch shown failed")
    assert view["run_id"] == started.json()["run_id"]
    assert "dead-lettered" in str(view["reason"])
    assert "cannot apply this start" in str(view["reason"])
    dlq = streams.INGEST_COMMANDS.prefixed(settings.stream_prefix).dlq
    assert await redis.xlen(dlq) == 1

    (stopped,) = [e for e in await stopped_events(redis, settings) if e.batch_id == "doomed"]
    assert stopped.reason.startswith("failed: ")
    assert (await client.get("/batches/fine")).json()["status"] == "running"
    assert (await client.get("/stats")).json()["batches_running"] == 1  # its slot is free
    pushed = await client.post("/batches/doomed/points", json=[{"key": 1}])
    assert pushed.status_code == 409  # known, not running
