"""The mover's world for a test: demo data, mover + aggregator in-process, a gateway client."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from aggregator.app import create_app as create_aggregator
from contracts import streams
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from gateway.catalog import demo as seed
from mover.app import create_app as create_mover
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE
from tests.support.waiting import wait_until

MY_LIST, LIKED, IGNORE = str(seed.MY_LIST), str(seed.LIKED), str(seed.IGNORE)
FINISHED = ("completed", "failed", "cancelled")


@dataclass
class MoverWorld:
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    settings: Settings

    async def new_list(self, name: str = "Target") -> str:
        r = await self.client.post("/collections", json={"name": name})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def move(self, **body: Any) -> dict[str, Any]:
        r = await self.client.post("/moves", json=body)
        assert r.status_code == 202, r.text
        return dict(r.json())

    async def job(self, job_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def finished(self, job_id: str, within_s: float = 30) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if job["status"] in FINISHED else None

        return await wait_until(done, timeout=within_s, what=f"job {job_id} finished")

    async def refuse_250(self, target: str) -> None:
        """Make inserting company 250 into `target` fail (a trigger named refuse_250;
        `DROP TRIGGER refuse_250 ON memberships` lets it through again)."""
        await self.pool.execute(
            f"""CREATE FUNCTION refuse_250() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.company_id = 250 AND NEW.collection_id = '{target}' THEN
                  RAISE EXCEPTION 'company 250 refused on purpose'; END IF; RETURN NEW; END $$;
                CREATE TRIGGER refuse_250 BEFORE INSERT ON memberships
                FOR EACH ROW EXECUTE FUNCTION refuse_250();"""
        )

    async def members(self, list_id: str) -> set[int]:
        rows = await self.pool.fetch(
            "SELECT company_id FROM memberships WHERE collection_id = $1", uuid.UUID(list_id)
        )
        return {r["company_id"] for r in rows}


@contextlib.asynccontextmanager
async def mover_world(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    companies: int = 1000,
    my_list: int = 500,
    slow_ms: int = 0,
    in_process_movers: int = 1,
) -> AsyncIterator[MoverWorld]:
    """Seeded data (with the insert throttle when `slow_ms`), the services, a client."""
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=companies, my_list=my_list, liked=10, ignore=50)
        if slow_ms:
            await seed.slow_db(conn, on=True, delay_ms=slow_ms)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(in_process_movers):
            await stack.enter_async_context(create_mover(settings)[0])
        async with _world(settings, pool) as world:
            yield world


@contextlib.asynccontextmanager
async def _world(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[MoverWorld]:
    aggregator, _ = create_aggregator(settings)
    async with (
        aggregator,
        uvicorn_serve(create_gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE) as client,
    ):
        yield MoverWorld(client, pool, settings)


async def chunks_idle(redis: aioredis.Redis, settings: Settings) -> str:
    """'' while a chunk is waiting or under way on either lane, else what they show."""
    seen = []
    for spec in (streams.MOVER_CHUNKS, streams.MOVER_EXPRESS):
        name = spec.prefixed(settings.stream_prefix).name
        info = {g["name"].decode(): g for g in await redis.xinfo_groups(name)}
        group = info.get(streams.MOVER)
        if group and (group["pending"] or group.get("lag")):
            return ""
        seen.append(f"{name}: {group}")
    return "; ".join(seen)
