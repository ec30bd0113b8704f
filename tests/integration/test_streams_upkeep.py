"""Trimming never removes what a group has not read and acknowledged."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.delivery.maintenance import trim
from contracts.messages import StopBatch
from contracts.runtime.settings import Settings

pytestmark = pytest.mark.integration
FAR_FUTURE_MS = 10**13  # every entry is past its retention window


async def fill(redis: aioredis.Redis, name: str, n: int) -> list[bytes]:
    return [
        await redis.xadd(name, codec.entry_fields(StopBatch(id=str(i), batch_id="b", run_id="r")))
        for i in range(n)
    ]


async def test_no_trim_while_a_reader_group_is_missing(
    redis: aioredis.Redis, settings: Settings
) -> None:
    spec = streams.INGEST_COMMANDS.prefixed(settings.stream_prefix)
    await fill(redis, spec.name, 5)
    assert await trim(redis, spec, now_ms=FAR_FUTURE_MS) == 0
    assert await redis.xlen(spec.name) == 5


async def test_trim_stops_at_unread_and_unacknowledged_entries(
    redis: aioredis.Redis, settings: Settings
) -> None:
    spec = streams.INGEST_COMMANDS.prefixed(settings.stream_prefix)
    ids = await fill(redis, spec.name, 10)
    await redis.xgroup_create(spec.name, streams.INGEST, id="0")
    # The group reads 6 entries and acknowledges all but the 4th.
    await redis.xreadgroup(streams.INGEST, "c", {spec.name: ">"}, count=6)
    await redis.xack(spec.name, streams.INGEST, *[i for n, i in enumerate(ids[:6]) if n != 3])

    removed = await trim(redis, spec, now_ms=FAR_FUTURE_MS)

    left = [entry_id for entry_id, _ in await redis.xrange(spec.name)]
    assert removed == 3
    assert left == ids[3:]


async def test_trim_keeps_the_retention_window(redis: aioredis.Redis, settings: Settings) -> None:
    spec = streams.INGEST_COMMANDS.prefixed(settings.stream_prefix)
    ids = await fill(redis, spec.name, 4)
    await redis.xgroup_create(spec.name, streams.INGEST, id="$")  # has read everything
    # The entries may span several milliseconds: the window is measured from the oldest,
    # and one millisecond later exactly the oldest millisecond's entries go.
    oldest_ms = int(ids[0].split(b"-")[0])
    assert await trim(redis, spec, now_ms=oldest_ms + spec.retention_ms) == 0
    assert await redis.xlen(spec.name) == 4
    # (below the group's last-delivered id, the newest entry, which is never trimmed)
    expired = [i for i in ids[:-1] if int(i.split(b"-")[0]) == oldest_ms]
    assert await trim(redis, spec, now_ms=oldest_ms + spec.retention_ms + 1) == len(expired)
    assert await redis.xlen(spec.name) == 4 - len(expired)
