"""Consumers of stopped processes do not pile up in XINFO CONSUMERS.

A process deletes its own consumer from each group on a clean stop when it holds
nothing pending; the periodic upkeep deletes consumers idle past a bound with
nothing pending; a consumer with pending entries is never deleted (XAUTOCLAIM
needs those entries, and XGROUP DELCONSUMER would drop them).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import codec
from contracts.delivery.maintenance import remove_idle_consumers
from contracts.messages import new_id
from contracts.runtime.service import STALE_CONSUMER_CLAIMS
from contracts.runtime.settings import Settings
from tests.support.probe import GROUP, PROBE, TABLES_DDL, Tally, create_app
from tests.support.processes import consumer_name, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def consumers(redis: aioredis.Redis, stream: str) -> dict[str, dict[str, int]]:
    try:
        found = await redis.xinfo_consumers(stream, GROUP)
    except aioredis.ResponseError:
        return {}
    return {c["name"].decode(): {"pending": c["pending"], "idle": c["idle"]} for c in found}


async def test_a_cleanly_stopped_process_removes_its_consumer(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    await pool.execute(TABLES_DDL)
    stream = PROBE.prefixed(settings.stream_prefix).name
    proc = start_module("tests.support.probe", settings, tmp_path / "probe.log")
    procs.append(proc)
    name = consumer_name(proc)

    async def joined() -> bool:
        assert proc.poll() is None, "the probe exited"
        return name in await consumers(redis, stream)

    await wait_until(joined, timeout=30, what="the probe's consumer in the group")
    await codec.publish(redis, stream, Tally(id=new_id(), key="k"))
    await wait_until(
        lambda: pool.fetchval("SELECT count(*) FROM probe_effects"), what="the entry applied"
    )

    assert kill(proc, signal.SIGTERM) == -signal.SIGTERM
    assert name not in await consumers(redis, stream)


async def test_a_process_stopped_holding_an_entry_keeps_its_consumer(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    await pool.execute(TABLES_DDL)
    quick = msgspec.structs.replace(settings, shutdown_grace_s=0.5, claim_idle_ms=60_000)
    stream = PROBE.prefixed(settings.stream_prefix).name
    proc = start_module("tests.support.probe", quick, tmp_path / "probe.log")
    procs.append(proc)
    name = consumer_name(proc)
    await wait_until(lambda: _has(redis, stream, name), timeout=30, what="the probe joined")
    await codec.publish(redis, stream, Tally(id=new_id(), key="slow", sleep_s=60))

    async def holding() -> bool:
        return (await consumers(redis, stream)).get(name, {}).get("pending", 0) == 1

    await wait_until(holding, what="the slow entry in the probe's hands")
    assert kill(proc, signal.SIGTERM) == -signal.SIGTERM
    assert (await consumers(redis, stream))[name]["pending"] == 1


async def _has(redis: aioredis.Redis, stream: str, name: str) -> bool:
    return name in await consumers(redis, stream)


async def test_upkeep_removes_idle_consumers_without_pending_only(
    settings: Settings, redis: aioredis.Redis
) -> None:
    # A short claim idle time makes the staleness bound (STALE_CONSUMER_CLAIMS x it) short.
    # The service is built, not started: its own consumers would read and claim the entry.
    short = msgspec.structs.replace(settings, claim_idle_ms=20)
    bound_ms = STALE_CONSUMER_CLAIMS * short.claim_idle_ms
    stream = PROBE.prefixed(settings.stream_prefix).name
    _app, service = create_app(short)
    me = service.delivery.consumer
    # "holder" read an entry and never acknowledged it; "ghost" and "me" hold nothing.
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xadd(stream, {"data": b"{}"})
    await redis.xreadgroup(GROUP, "holder", {stream: ">"}, count=1)
    for name in ("ghost", me):
        await redis.xgroup_createconsumer(stream, GROUP, name)

    async def all_stale() -> bool:
        found = await consumers(redis, stream)
        return all(found[n]["idle"] > bound_ms for n in ("ghost", "holder", me))

    await wait_until(all_stale, what="the consumers idle past the bound")
    try:
        await service.upkeep()
    finally:
        await service.close()
    found = await consumers(redis, stream)
    assert "ghost" not in found
    assert found["holder"]["pending"] == 1
    assert me in found


async def test_remove_idle_consumers_spares_the_recent_and_a_missing_group(
    settings: Settings, redis: aioredis.Redis
) -> None:
    stream = f"{settings.stream_prefix}cleanup"
    assert await remove_idle_consumers(redis, stream, "nogroup", idle_ms=0) == []
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    await redis.xgroup_createconsumer(stream, "g", "recent")
    await redis.xgroup_createconsumer(stream, "g", "me")
    assert await remove_idle_consumers(redis, stream, "g", idle_ms=3_600_000) == []
    assert await remove_idle_consumers(redis, stream, "g", idle_ms=0, keep="me") == ["recent"]
    assert await remove_idle_consumers(redis, stream, "g", idle_ms=0, only="me") == ["me"]
