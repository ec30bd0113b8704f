"""A worker started while Redis or PostgreSQL is away stays up and says it is not ready.

Each worker is a real process (`python -m ...`): under `make run` one process that
exits stops all of them, so "it starts anyway" is a property of the process. Redis
is a `redis-server` of the test's own on a free port, started late; PostgreSQL is a
port nothing listens on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import codec
from contracts.messages import new_id
from contracts.runtime.settings import Settings
from tests.support.outages import OwnRedis, with_port
from tests.support.probe import PROBE, TABLES_DDL, Tally
from tests.support.processes import free_port, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def still_running(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.poll() is None, f"the process exited ({proc.returncode}):\n{log.read_text()}"


async def answer(url: str, proc: subprocess.Popen[bytes], log: Path) -> httpx.Response | None:
    """The process's answer at `url`, None while it does not listen yet."""
    still_running(proc, log)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(url)
    except httpx.TransportError:
        return None


async def not_ready(base: str, proc: subprocess.Popen[bytes], log: Path, store: str) -> None:
    """Up (liveness 2xx), not ready (503 problem naming `store`), for a while: no exit."""
    health = await wait_until(
        lambda: answer(f"{base}/healthz", proc, log), timeout=30, what="/healthz to answer"
    )
    assert health is not None
    assert health.status_code in (200, 204)
    ready = await answer(f"{base}/readyz", proc, log)
    assert ready is not None
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    body = ready.json()
    assert body["status"] == 503
    assert store in body["detail"]
    assert body["checks"][store] != "ok"

    # It keeps retrying rather than exiting: a few readiness answers later it is still up.
    seen: list[int] = []

    async def third_not_ready() -> bool:
        r = await answer(f"{base}/readyz", proc, log)
        seen.append(r.status_code if r else 0)
        return seen.count(503) >= 3

    await wait_until(third_not_ready, timeout=15, interval=0.3, what="three 503s")


async def is_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    r = await answer(f"{base}/readyz", proc, log)
    return r is not None and r.status_code == 200


async def test_worker_started_before_redis_waits_then_consumes(
    settings: Settings,
    pool: asyncpg.Pool,
    own_redis: OwnRedis,
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    await pool.execute(TABLES_DDL)
    port, log = free_port(), tmp_path / "probe.log"
    late = msgspec.structs.replace(settings, redis_url=own_redis.url)
    proc = start_module("tests.support.probe", late, log, PROBE_PORT=str(port))
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"

    await not_ready(base, proc, log, "redis")

    await own_redis.start()
    await wait_until(lambda: is_ready(base, proc, log), timeout=30, what="ready once Redis is up")
    body = (await answer(f"{base}/readyz", proc, log)).json()  # type: ignore[union-attr]
    assert body["checks"] == {"redis": "ok", "postgres": "ok", "consumers": "ok"}

    client = aioredis.from_url(own_redis.url)
    try:
        stream = PROBE.prefixed(settings.stream_prefix).name
        await codec.publish(client, stream, Tally(id=new_id(), key="late"))

        async def applied() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM probe_effects WHERE key='late'"))

        await wait_until(applied, timeout=20, what="the entry consumed")
    finally:
        await client.aclose()


@pytest.mark.parametrize("service", ["ingest", "mover", "aggregator"])
async def test_worker_without_postgres_stays_up_not_ready(
    settings: Settings, service: str, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / f"{service}.log"
    closed = with_port(settings.database_url, free_port())
    no_pg = msgspec.structs.replace(settings, database_url=closed)
    proc = start_module(service, no_pg, log, **{f"{service.upper()}_PORT": str(port)})
    procs.append(proc)
    await not_ready(f"http://127.0.0.1:{port}", proc, log, "postgres")


@pytest.mark.parametrize("service", ["ingest", "mover", "aggregator", "gateway"])
async def test_service_without_redis_stays_up_not_ready(
    settings: Settings, service: str, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / f"{service}.log"
    no_redis = msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    proc = start_module(service, no_redis, log, **{f"{service.upper()}_PORT": str(port)})
    procs.append(proc)
    await not_ready(f"http://127.0.0.1:{port}", proc, log, "redis")
