"""A mover SIGKILLed after a small job's command committed and before its events were
published: another mover finds the command applied, publishes them, and the job ends
completed with exact counts (mover/short.py)."""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.runtime.settings import Settings
from tests.integration.test_small_jobs import chunks_sent, job_events
from tests.support.mover_stack import MY_LIST, mover_world
from tests.support.outages import OwnRedis
from tests.support.processes import free_port, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def movers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        kill(proc)


async def up(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 204
    except httpx.TransportError:
        return False


async def hold_inserts(pool: asyncpg.Pool, target: str, key: int) -> None:
    """Inserting into `target` waits for advisory lock `key` (the test holds it)."""
    await pool.execute(
        f"""CREATE FUNCTION hold_{key}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.collection_id = '{target}' THEN PERFORM pg_advisory_xact_lock({key});
            END IF; RETURN NEW; END $$;
            CREATE TRIGGER hold_{key} BEFORE INSERT ON memberships
            FOR EACH ROW EXECUTE FUNCTION hold_{key}();"""
    )


async def test_sigkill_between_commit_and_publish_still_completes_the_job(
    settings: Settings,
    pool: asyncpg.Pool,
    own_redis: OwnRedis,
    tmp_path: Path,
    movers: list[subprocess.Popen[bytes]],
) -> None:
    await own_redis.start()
    settings = msgspec.structs.replace(settings, redis_url=own_redis.url)
    redis = aioredis.from_url(own_redis.url)
    await wait_until(lambda: _answers(redis), timeout=10, what="own redis up")

    def start_mover(n: int) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        proc = start_module("mover", settings, tmp_path / f"mover-{n}.log", MOVER_PORT=str(port))
        movers.append(proc)
        return port, proc

    key = random.randrange(1, 2**31)
    port, victim = start_mover(0)
    async with mover_world(settings, pool, in_process_movers=0) as w:
        await wait_until(lambda: up(port), timeout=30, what="mover up")
        target = await w.new_list()
        await hold_inserts(pool, target, key)
        async with pool.acquire() as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", key)
            job = await w.move(source=MY_LIST, target=target, mode="copy", selection=[5, 6, 7])

            async def mover_waits() -> bool:
                return bool(
                    await pool.fetchval(
                        """SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory'
                           AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1""",
                        key,
                    )
                )

            await wait_until(mover_waits, timeout=30, what="the mover inside the command")
            await redis.client_pause(60_000, all=False)  # writes wait: no publish gets out
            await holder.execute("SELECT pg_advisory_unlock($1)", key)

        async def committed() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM move_jobs WHERE job_id = $1", job["id"]
            )
            return bool(status == "completed")

        await wait_until(committed, timeout=30, what="the command committed")
        assert kill(victim, signal.SIGKILL) == -signal.SIGKILL
        said = {type(e).__name__ for e in await job_events(redis, settings, job["id"])}
        await redis.client_unpause()
        assert said == {"JobQueued"}, "killed before it published anything"
        commands = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
        assert (await redis.xpending(commands, streams.MOVER))["pending"] == 1

        port, _ = start_mover(1)
        done = await w.finished(job["id"], within_s=60)

        assert (done["status"], done["total"], done["added"], done["already_present"]) == (
            "completed", 3, 3, 0,
        )  # fmt: skip
        assert await w.members(target) == {5, 6, 7}
        types = sorted(type(e).__name__ for e in await job_events(redis, settings, job["id"]))
        assert types == ["JobCompleted", "JobQueued", "JobStarted"]
        assert await chunks_sent(redis, settings) == 0
        await wait_until(
            lambda: _none_pending(redis, commands), timeout=30, what="the command acknowledged"
        )
    await redis.aclose()


async def _none_pending(redis: aioredis.Redis, stream: str) -> bool:
    return bool((await redis.xpending(stream, streams.MOVER))["pending"] == 0)


async def _answers(redis: aioredis.Redis) -> bool:
    try:
        return bool(await redis.ping())
    except aioredis.ConnectionError:
        return False
