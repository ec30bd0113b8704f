"""The delivery rules across processes: SIGKILL mid-handler, SIGTERM under load.

Each runs against one-by-one and batched probes (tests/support/probe.py `MODES`);
and a batched probe killed in the middle of a read's transaction.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import codec
from contracts.messages import new_id
from contracts.runtime.settings import Settings
from tests.support.probe import BATCH, GROUP, MODES, PROBE, TABLES_DDL, Tally
from tests.support.processes import consumer_name, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def tables(pool: asyncpg.Pool) -> None:
    await pool.execute(TABLES_DDL)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def consuming(redis: aioredis.Redis, stream: str, proc: subprocess.Popen[bytes]) -> bool:
    """The process has joined the group (its consumer shows in XINFO CONSUMERS)."""
    assert proc.poll() is None, "the probe process exited"
    try:
        consumers = await redis.xinfo_consumers(stream, GROUP)
    except aioredis.ResponseError:
        return False
    return consumer_name(proc) in {c["name"].decode() for c in consumers}


async def test_entry_of_a_killed_consumer_is_claimed_and_applied_once(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    tables: None,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    mode: str,
) -> None:
    stream = PROBE.prefixed(settings.stream_prefix).name
    first = start_module("tests.support.probe", settings, tmp_path / "first.log", PROBE_MODE=mode)
    procs.append(first)
    await wait_until(lambda: consuming(redis, stream, first), what="first probe consuming")

    await codec.publish(redis, stream, Tally(id=new_id(), key="slow", sleep_s=2.0))

    async def held_by_first() -> bool:
        rows = await redis.xpending_range(stream, GROUP, min="-", max="+", count=10)
        return any(r["consumer"].decode() == consumer_name(first) for r in rows)

    await wait_until(held_by_first, what="the entry in the first consumer's hands")
    assert kill(first, signal.SIGKILL) == -signal.SIGKILL

    second = start_module("tests.support.probe", settings, tmp_path / "second.log", PROBE_MODE=mode)
    procs.append(second)

    async def applied() -> list[asyncpg.Record]:
        return await pool.fetch("SELECT pid FROM probe_effects WHERE key = 'slow'")

    done = await wait_until(applied, timeout=30, what="the entry applied by the second probe")
    await wait_until(lambda: _no_pending(redis, stream), timeout=10, what="the entry acknowledged")
    assert [r["pid"] for r in done] == [second.pid]
    assert await pool.fetchval("SELECT count(*) FROM probe_effects") == 1


async def test_sigterm_under_load_loses_nothing_and_applies_nothing_twice(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    tables: None,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    mode: str,
) -> None:
    stream = PROBE.prefixed(settings.stream_prefix).name
    env = {"PROBE_WORKERS": "4", "PROBE_MODE": mode}
    a = start_module("tests.support.probe", settings, tmp_path / "a.log", **env)
    b = start_module("tests.support.probe", settings, tmp_path / "b.log", **env)
    procs += [a, b]
    for proc in (a, b):
        await wait_until(lambda p=proc: consuming(redis, stream, p), what="probe consuming")

    total = 300
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(total):
            pipe.xadd(stream, codec.entry_fields(Tally(id=new_id(), key=f"k{i}", sleep_s=0.05)))
        await pipe.execute()

    async def some_done() -> bool:
        return bool(await pool.fetchval("SELECT count(*) >= 20 FROM probe_effects"))

    await wait_until(some_done, what="work under way")
    a.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down, so the exit status is SIGTERM's.
    assert a.wait(timeout=settings.shutdown_grace_s + 10) == -signal.SIGTERM
    assert "FastStream app shut down gracefully" in (tmp_path / "a.log").read_text()

    async def all_applied() -> bool:
        return bool(
            await pool.fetchval("SELECT count(DISTINCT key) = $1 FROM probe_effects", total)
        )

    await wait_until(all_applied, timeout=60, what=f"all {total} applied")
    await wait_until(lambda: _no_pending(redis, stream), timeout=10, what="nothing pending")
    assert await pool.fetchval("SELECT count(*) FROM probe_effects") == total
    by_pid = dict(await pool.fetch("SELECT pid, count(*) FROM probe_effects GROUP BY pid"))
    assert set(by_pid) == {a.pid, b.pid}, "both probes should have done part of the work"


async def test_a_batch_killed_mid_transaction_applies_none_then_each_once(
    settings: Settings,
    redis: aioredis.Redis,
    pool: asyncpg.Pool,
    tables: None,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    stream = PROBE.prefixed(settings.stream_prefix).name
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    keys = [f"k{i}" for i in range(BATCH)]  # one read; its effect sleeps 3 s
    async with redis.pipeline(transaction=True) as pipe:
        for i, key in enumerate(keys):
            message = Tally(id=new_id(), key=key, sleep_s=3.0 if i == 3 else 0.0)
            pipe.xadd(stream, codec.entry_fields(message))  # type: ignore[arg-type]
        await pipe.execute()
    first = start_module(
        "tests.support.probe", settings, tmp_path / "first.log", PROBE_MODE="batched"
    )
    procs.append(first)

    async def all_held_by_first() -> bool:
        rows = await redis.xpending_range(stream, GROUP, min="-", max="+", count=100)
        return len(rows) == BATCH and all(
            r["consumer"].decode() == consumer_name(first) for r in rows
        )

    await wait_until(all_held_by_first, what="the whole read in the first consumer's hands")
    # Inside the transaction: its rows are written (uncommitted) while the effect sleeps.
    await wait_until(lambda: _in_transaction(pool), what="the batch's transaction under way")
    assert kill(first, signal.SIGKILL) == -signal.SIGKILL

    assert await pool.fetchval("SELECT count(*) FROM probe_effects") == 0
    assert await pool.fetchval("SELECT count(*) FROM applied_messages") == 0
    assert int((await redis.xpending(stream, GROUP))["pending"]) == BATCH

    second = start_module(
        "tests.support.probe", settings, tmp_path / "second.log", PROBE_MODE="batched"
    )
    procs.append(second)

    async def all_applied() -> bool:
        return bool(
            await pool.fetchval("SELECT count(DISTINCT key) = $1 FROM probe_effects", BATCH)
        )

    await wait_until(all_applied, timeout=60, what="every entry applied by the second probe")
    await wait_until(lambda: _no_pending(redis, stream), timeout=10, what="all acknowledged")
    rows = await pool.fetch("SELECT key, pid FROM probe_effects ORDER BY key")
    assert [r["key"] for r in rows] == sorted(keys), "each applied exactly once"
    assert {r["pid"] for r in rows} == {second.pid}


async def _in_transaction(pool: asyncpg.Pool) -> bool:
    """A session is inside the batched probe's transaction, its rows written (uncommitted)
    by `apply_tallies` (whose INSERT alone reads `AS t(m, k)`), its effect asleep."""
    return bool(
        await pool.fetchval(
            """SELECT count(*) > 0 FROM pg_stat_activity
               WHERE datname = current_database() AND state = 'idle in transaction'
                 AND query LIKE '%probe_effects%AS t(m, k)%'"""
        )
    )


async def _no_pending(redis: aioredis.Redis, stream: str) -> bool:
    return int((await redis.xpending(stream, GROUP))["pending"]) == 0
