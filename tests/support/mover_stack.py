"""The mover's world for a test: demo data, mover + aggregator in-process, a gateway client."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from aggregator.app import create_app as create_aggregator
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
