"""The console's company grid on a 50,000-company list: how fast a page comes back.

One gateway process, "My List" of 50,000 companies (100,000 in all). PAGES requests
one after another, each for a random page of 50 rows (then PAGES/3 searches),
through the API (`GET /collections/{id}/companies`) and through the console's grid
fragment (what the page swaps in), beside the reference: the same two queries (the
page and its total) sent straight to PostgreSQL with asyncpg. Reported: p50/p99 in
ms for each and the ratio of the console's p99 to the reference's.

Then the same while a copy of the whole list runs on the slow database (100 ms per
inserted row, `conveyor slowdb on`) with its mover: the grid must stay responsive
while the copy holds connections.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from contracts.runtime.db import connect
from contracts.runtime.settings import Settings
from gateway.catalog import demo as seed
from gateway.catalog import sql as catalog_sql
from tests.perf.stack import AUTH, fresh_schema, percentile, services, wait_ready

PAGES = 300
LIMIT = 50
LIST_SIZE = 50_000
SEARCHES = ["acme", "7", "global 1", "zzz-nothing"]


def _pages(rng: random.Random, *, search: bool) -> list[tuple[int, str | None]]:
    """Random pages of the whole list, or the first pages of a search's matches."""
    if search:
        return [(rng.randrange(0, 4) * LIMIT, rng.choice(SEARCHES)) for _ in range(PAGES // 3)]
    return [(rng.randrange(0, LIST_SIZE // LIMIT) * LIMIT, None) for _ in range(PAGES)]


async def _timed(
    pages: list[tuple[int, str | None]], fetch: Callable[[int, str | None], Awaitable[Any]]
) -> dict[str, float]:
    took = []
    for offset, q in pages:
        start = time.perf_counter()
        await fetch(offset, q)
        took.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(percentile(took, 50), 1), "p99_ms": round(percentile(took, 99), 1)}


async def _measure(
    client: httpx.AsyncClient, pool: asyncpg.Pool, list_id: str, rng: random.Random
) -> dict[str, dict[str, float]]:
    pages, searches = _pages(rng, search=False), _pages(rng, search=True)

    async def api(offset: int, q: str | None) -> None:
        params: dict[str, Any] = {"offset": offset, "limit": LIMIT, **({"q": q} if q else {})}
        r = await client.get(f"/collections/{list_id}/companies", params=params)
        r.raise_for_status()

    async def console(offset: int, q: str | None) -> None:
        params: dict[str, Any] = {
            "list": list_id,
            "page": offset // LIMIT + 1,
            **({"q": q} if q else {}),
        }
        r = await client.get("/console/lists/grid", params=params, headers={"HX-Request": "true"})
        r.raise_for_status()
        assert "data-list-id" in r.text, r.text[:200]

    async def reference(offset: int, q: str | None) -> None:
        await catalog_sql.members(conn=pool, collection_id=list_id, q=q, offset=offset, limit=LIMIT)

    await _timed(pages[:20], api)  # warm every path once
    await _timed(pages[:20], console)
    return {
        "reference_sql": await _timed(pages, reference),
        "api": await _timed(pages, api),
        "console_grid": await _timed(pages, console),
        "search_reference_sql": await _timed(searches, reference),
        "search_console_grid": await _timed(searches, console),
    }


async def run(base: Settings) -> dict[str, object]:
    rng = random.Random(7)
    async with fresh_schema(base) as settings:
        conn = await connect(settings)
        await seed.seed(conn, companies=100_000, my_list=LIST_SIZE, liked=10, ignore=50)
        lists = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM collections")}
        await conn.close()
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=2,
            server_settings={"search_path": settings.db_schema},
        )
        try:
            with services(settings, {"gateway": 1, "mover": 1, "aggregator": 1}) as bench:
                await wait_ready(bench.gateway)
                async with httpx.AsyncClient(base_url=bench.gateway, headers=AUTH, timeout=30) as c:
                    quiet = await _measure(c, pool, str(lists["My List"]), rng)
                    slow = await _during_slow_copy(c, pool, settings, lists, rng)
        finally:
            await pool.close()
    ratio = quiet["console_grid"]["p99_ms"] / max(quiet["reference_sql"]["p99_ms"], 0.1)
    return {
        "list_size": LIST_SIZE,
        "pages": PAGES,
        "quiet": quiet,
        "during_slow_copy": slow,
        "console_p99_vs_sql_p99": round(ratio, 2),
    }


async def _during_slow_copy(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,
    lists: dict[str, Any],
    rng: random.Random,
) -> dict[str, Any]:
    conn = await connect(settings)
    await seed.slow_db(conn, on=True)
    try:
        target = (await client.post("/collections", json={"name": "grid bench target"})).json()
        move = {
            "source": str(lists["My List"]),
            "target": target["id"],
            "mode": "copy",
            "selection": {"all": True},
        }
        job = (await client.post("/moves", json=move)).json()
        await asyncio.sleep(2)  # let the copy take its connections before measuring
        measured = await _measure(client, pool, str(lists["My List"]), rng)
        state = (await client.get(f"/jobs/{job['id']}")).json()
        await client.post(f"/jobs/{job['id']}/cancel")  # it would take 80 minutes
        measured["copy_during"] = {"status": state["status"], "done": state["done"]}
        return measured
    finally:
        await seed.slow_db(conn, on=False)
        await conn.close()
