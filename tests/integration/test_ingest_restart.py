"""Running batches survive the ingest service: a restart after SIGKILL carries them on,
a SIGTERM hands them over at once, and never do two processes produce one batch."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from tests.support.batches import drained, entry_ms, recorded
from tests.support.gateway import serve
from tests.support.processes import consumer_name, free_port, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BATCHES = ("r1", "r2")


@pytest.fixture
def fast_lease(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, batch_lease_ms=1500)


@pytest.fixture
async def client(
    fast_lease: Settings, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_gateway(fast_lease)) as test_client:
        yield test_client


def start_ingest(settings: Settings, log: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    proc = start_module("ingest", settings, log, INGEST_PORT=str(free_port()))
    procs.append(proc)
    return consumer_name(proc)


async def producers_by_batch(
    redis: aioredis.Redis, settings: Settings
) -> dict[str, list[tuple[str, str]]]:
    """batch_id -> [(entry id, producing process)] in stream order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for entry_id, message in await recorded(redis, settings):
        process = (message.producer or "").split(":")[0]
        out.setdefault(message.batch_id, []).append((entry_id, process))
    return out


async def produced_by(redis: aioredis.Redis, settings: Settings, process: str) -> bool:
    """Every batch has points from `process`."""
    found = await producers_by_batch(redis, settings)
    return all(any(p == process for _, p in found.get(b, [])) for b in BATCHES)


def assert_never_two_producers(found: dict[str, list[tuple[str, str]]]) -> None:
    """Per batch, each process's entries form one run: no interleaving."""
    for batch_id, entries in found.items():
        switches = [entries[0][1]]
        for _, process in entries[1:]:
            if process != switches[-1]:
                switches.append(process)
        assert len(switches) == len(set(switches)), (batch_id, switches)


async def test_restart_after_sigkill_carries_running_batches_on(
    client: httpx.AsyncClient,
    fast_lease: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    settings = fast_lease
    first = start_ingest(settings, tmp_path / "first.log", procs)
    for batch_id in BATCHES:
        assert (await client.put(f"/batches/{batch_id}", json={"rate": 50})).status_code == 201
    await wait_until(lambda: produced_by(redis, settings, first), timeout=30, what="first produces")

    assert kill(procs[0], signal.SIGKILL) == -signal.SIGKILL
    second = start_ingest(settings, tmp_path / "second.log", procs)
    await wait_until(lambda: produced_by(redis, settings, second), timeout=30, what="takeover")

    found = await producers_by_batch(redis, settings)
    assert_never_two_producers(found)
    assert {p for entries in found.values() for _, p in entries} == {first, second}
    for batch_id in BATCHES:
        view = (await client.get(f"/batches/{batch_id}")).json()
        assert view["status"] == "running"

    # What the killed process had read and not stored is claimed and stored by the new one.
    await client.delete("/batches/r1")
    await client.delete("/batches/r2")
    stream = streams.INGEST_POINTS.prefixed(settings.stream_prefix).name
    await wait_until(lambda: drained(redis, stream, streams.INGEST), timeout=30, what="drained")
    sent = sum(len(m.points) for _, m in await recorded(redis, settings))
    assert await pool.fetchval("SELECT count(*) FROM points") == sent


async def test_sigterm_hands_batches_over_at_once(
    client: httpx.AsyncClient,
    fast_lease: Settings,
    redis: aioredis.Redis,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    settings = fast_lease
    names = [start_ingest(settings, tmp_path / f"i{n}.log", procs) for n in range(2)]
    for batch_id in BATCHES:
        assert (await client.put(f"/batches/{batch_id}", json={"rate": 50})).status_code == 201

    async def owners() -> dict[str, str]:
        found = {}
        for batch_id in BATCHES:
            owner = await redis.get(f"{settings.stream_prefix}batches.lease:{batch_id}")
            if owner is None:
                return {}
            found[batch_id] = owner.decode().split(":")[0]
        return found

    before = await wait_until(owners, what="both batches owned")
    leaving = before["r1"]
    proc = procs[names.index(leaving)]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM
    # Released on the way out: nobody waits for the lease to expire.
    for batch_id in BATCHES:
        owner = await redis.get(f"{settings.stream_prefix}batches.lease:{batch_id}")
        assert owner is None or not owner.decode().startswith(leaving + ":")
    staying = next(n for n in names if n != leaving)

    async def all_with_staying() -> bool:
        return set((await owners()).values()) == {staying}

    await wait_until(all_with_staying, timeout=10, what="the other process owns both")
    await wait_until(lambda: produced_by(redis, settings, staying), what="it produces both")
    found = await producers_by_batch(redis, settings)
    assert_never_two_producers(found)
    last_of_leaving = max(entry_ms(e) for e, p in found["r1"] if p == leaving)
    first_of_staying = min(entry_ms(e) for e, p in found["r1"] if p == staying)
    assert first_of_staying > last_of_leaving
