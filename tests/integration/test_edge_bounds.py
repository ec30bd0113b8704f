"""Accepted means done at the gateway's edge for moves, lists and companies (issue 8).

What the store cannot hold is refused at the door with a 4xx problem naming the
field, and nothing is published: ids past int64, times without an offset or outside
what a UTC time can be, NUL in text, blank or duplicate list names. A search matches
`%` and `_` as themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.catalog import demo as seed
from tests.support.gateway import serve
from tests.support.mover_stack import MY_LIST, MoverWorld, mover_world
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
BEYOND = [2**63, 2**64, 10**20]


@pytest.fixture
async def client(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=300, my_list=100, liked=10, ignore=20)
        await conn.execute(
            "INSERT INTO companies (id, name) VALUES (1001, '100% Fruit'), (1002, 'snake_case')"
        )
    async with serve(create_app(settings)) as c:
        yield c


def refused(response: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == PROBLEM
    assert field in response.text, response.text
    body: dict[str, Any] = response.json()
    return body


async def nothing_published(redis: aioredis.Redis, settings: Settings) -> None:
    prefix = settings.stream_prefix
    for stream in (streams.MOVER_COMMANDS, streams.JOBS_EVENTS):
        assert await redis.xlen(stream.prefixed(prefix).name) == 0


async def new_list(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post("/collections", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def move(target: str, **fields: Any) -> dict[str, Any]:
    return {"source": MY_LIST, "target": target, "mode": "copy", "selection": [1]} | fields


# --- item 2: ids within int64 -------------------------------------------------------


async def test_move_ids_beyond_int64_are_refused_naming_the_field(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await new_list(client, "Target")
    for big in BEYOND:
        excluded = move(target, selection={"all": True, "exclude": [3, big]})
        refused(await client.post("/moves", json=excluded), "exclude")
        refused(await client.post("/moves", json=move(target, selection=[1, big])), "selection")
    # The largest id the store holds is a well-formed id: it simply does not exist.
    unknown = await client.post("/moves", json=move(target, selection=[2**63 - 1]))
    assert refused(unknown, "do not exist")["unknown"] == [2**63 - 1]
    await nothing_published(redis, settings)


# --- item 3: times with an offset, inside the range of a UTC time --------------------


async def test_not_before_without_offset_or_outside_utc_range_is_refused(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await new_list(client, "Target")
    for when in (
        "2030-01-01T00:00:00",  # no offset: refused, never guessed
        "0001-01-01T00:00:00+01:00",  # before 0001-01-01 in UTC
        "0001-01-01T00:00:00Z",  # -infinity to PostgreSQL's driver
        "9999-12-31T23:59:59.999999Z",  # +infinity to it
        "9999-12-31T23:30:00-01:00",  # after 9999-12-31 in UTC
    ):
        refused(await client.post("/moves", json=move(target, not_before=when)), "not_before")
    await nothing_published(redis, settings)


@pytest.fixture
async def world(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[MoverWorld]:
    async with mover_world(settings, pool, companies=100, my_list=60) as w:
        yield w


async def test_far_past_means_now_and_far_future_is_scheduled(
    world: MoverWorld, pool: asyncpg.Pool
) -> None:
    target = await world.new_list()
    past = await world.move(**move(target, not_before="0001-01-01T00:00:01+00:00"))
    future = await world.move(**move(target, selection=[2], not_before="9999-12-31T23:59:59Z"))
    assert past["not_before"] == "0001-01-01T00:00:01Z"
    assert future["not_before"] == "9999-12-31T23:59:59Z"

    assert (await world.finished(past["id"]))["status"] == "completed"

    async def planned() -> bool:
        status = await pool.fetchval("SELECT status FROM move_jobs WHERE job_id = $1", future["id"])
        return bool(status == "scheduled")

    await wait_until(planned, what="the year-9999 job planned and waiting")
    assert (await world.job(future["id"]))["not_before"] == "9999-12-31T23:59:59Z"


# --- item 8: no 500 for NUL or big numbers anywhere in these routes -----------------


async def test_nul_in_search_or_list_name_is_refused(client: httpx.AsyncClient) -> None:
    refused(await client.get("/companies", params={"q": "a\x00b"}), "q", 400)
    refused(await client.get(f"/collections/{MY_LIST}/companies?q=%00"), "q", 400)
    refused(await client.post("/collections", json={"name": "My\u0000List"}), "name")
    listed = (await client.get("/collections")).json()
    assert listed["total"] == 3


async def test_paging_beyond_its_bounds_is_refused(client: httpx.AsyncClient) -> None:
    for query in (f"offset={2**63}", "offset=-1", "limit=0", f"limit={2**64}", "limit=1e3"):
        refused(await client.get(f"/companies?{query}"), query.partition("=")[0], 400)


# --- item 11: literal search, visible and unique list names --------------------------


async def test_search_matches_percent_and_underscore_literally(
    client: httpx.AsyncClient,
) -> None:
    async def names(url: str, q: str) -> list[str]:
        r = await client.get(url, params={"q": q})
        assert r.status_code == 200, r.text
        return [c["name"] for c in r.json()["items"]]

    assert await names("/companies", "%") == ["100% Fruit"]
    assert await names("/companies", "_") == ["snake_case"]
    assert await names("/companies", "0%") == ["100% Fruit"]
    assert await names("/companies", "\\") == []
    assert await names(f"/collections/{MY_LIST}/companies", "%") == []
    assert await names(f"/collections/{MY_LIST}/companies", "_") == []
    assert len(await names("/companies", "hooli")) > 0


async def test_blank_and_duplicate_list_names_are_refused(client: httpx.AsyncClient) -> None:
    for blank in ("", "   ", "\t\n"):
        refused(await client.post("/collections", json={"name": blank}), "name")
    first = await new_list(client, "Prospects")
    for again in ("Prospects", "  prospects ", "PROSPECTS"):
        body = refused(await client.post("/collections", json={"name": again}), "Prospects", 409)
        assert body["existing"] == {"id": first, "name": "Prospects"}
    seeded = refused(await client.post("/collections", json={"name": "my list"}), "My List", 409)
    assert seeded["existing"]["id"] == MY_LIST
    assert (await client.get("/collections")).json()["total"] == 4


async def test_seeding_again_keeps_one_list_per_name(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await new_list(client, "Prospects")
    async with pool.acquire() as conn:
        counts = await seed.seed(conn, companies=300, my_list=100, liked=10, ignore=20)
    assert counts == {
        "Companies to Ignore": 20,
        "Liked Companies": 10,
        "My List": 100,
        "Prospects": 0,
    }
