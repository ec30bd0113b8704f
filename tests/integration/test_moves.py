"""Copy and move companies between lists through the API, mover and aggregator in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.runtime.settings import Settings
from tests.support.mover_stack import IGNORE, LIKED, MY_LIST, MoverWorld, mover_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[MoverWorld]:
    async with mover_world(settings, pool) as w:
        yield w


async def test_copy_of_ids_adds_them_and_a_second_copy_adds_nothing(world: MoverWorld) -> None:
    target = await world.new_list()
    ids = [3, 1, 2, 400]
    first = await world.finished(
        (await world.move(source=MY_LIST, target=target, mode="copy", selection=ids))["id"]
    )
    again = await world.finished(
        (await world.move(source=MY_LIST, target=target, mode="copy", selection=ids))["id"]
    )

    assert await world.members(target) == set(ids)
    assert (first["status"], first["total"], first["added"], first["already_present"]) == (
        "completed", 4, 4, 0,
    )  # fmt: skip
    assert (again["added"], again["already_present"], again["done"]) == (0, 4, 4)
    assert first["attempts"] == 1
    assert first["started_at"] <= first["finished_at"]


async def test_copy_all_with_overlap_and_exclusions(world: MoverWorld) -> None:
    # Liked Companies holds 1..10, all in My List (1..500); exclude 1..5 and 100.
    exclude = [1, 2, 3, 4, 5, 100]
    job = await world.finished(
        (
            await world.move(
                source=MY_LIST, target=LIKED, mode="copy",
                selection={"all": True, "exclude": exclude},
            )
        )["id"]
    )  # fmt: skip

    assert job["status"] == "completed"
    assert job["total"] == 500 - len(exclude)
    assert job["already_present"] == 5  # 6..10
    assert job["added"] == 500 - len(exclude) - 5
    assert await world.members(LIKED) == set(range(1, 501)) - {100}
    assert len(await world.members(MY_LIST)) == 500  # a copy leaves the source alone


async def test_move_all_removes_from_source_and_never_duplicates(world: MoverWorld) -> None:
    # Companies to Ignore: 476..525 (25 of them in My List, which is 1..500).
    job = await world.finished(
        (
            await world.move(
                source=IGNORE, target=MY_LIST, mode="move",
                selection={"all": True, "exclude": [525]},
            )
        )["id"]
    )  # fmt: skip

    assert (job["status"], job["total"], job["added"], job["already_present"]) == (
        "completed", 49, 24, 25,
    )  # fmt: skip
    assert job["removed"] == 49
    assert await world.members(IGNORE) == {525}
    assert await world.members(MY_LIST) == set(range(1, 525))


async def test_listing_reads(world: MoverWorld) -> None:
    lists = (await world.client.get("/collections")).json()
    by_name = {c["name"]: c for c in lists["items"]}
    assert by_name["My List"]["companies"] == 500
    assert lists["total"] == 3

    page = (await world.client.get(f"/collections/{MY_LIST}/companies?offset=10&limit=5")).json()
    assert [c["id"] for c in page["items"]] == [11, 12, 13, 14, 15]
    assert page["total"] == 500

    found = (await world.client.get("/companies?q=hooli&limit=3")).json()
    assert found["total"] > 0
    assert all("hooli" in c["name"].lower() for c in found["items"])


async def test_not_found_and_invalid_requests(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    c = world.client
    target = await world.new_list()
    unknown = "00000000-0000-4000-8000-0000000000ff"
    too_many = settings.max_ids_per_request + 1
    cases = [
        (await c.get(f"/collections/{unknown}"), 404, "does not exist"),
        (await c.get(f"/collections/{unknown}/companies"), 404, "does not exist"),
        (await c.get("/jobs/nope"), 404, "job nope does not exist"),
        (await c.post("/jobs/nope/cancel"), 404, "does not exist"),
        (await c.post("/moves", json={"source": MY_LIST, "target": MY_LIST, "mode": "copy",
                                      "selection": [1]}), 422, "the same list"),
        (await c.post("/moves", json={"source": unknown, "target": target, "mode": "copy",
                                      "selection": [1]}), 422, unknown),
        (await c.post("/moves", json={"source": MY_LIST, "target": target, "mode": "copy",
                                      "selection": [1, 999999]}), 422, "do not exist"),
        (await c.post("/moves", json={"source": MY_LIST, "target": target, "mode": "teleport",
                                      "selection": [1]}), 400, "mode"),
        (await c.post("/moves", json={"source": MY_LIST, "target": target, "mode": "copy",
                                      "selection": []}), 422, "no company ids"),
        (await c.post("/moves", json={"source": MY_LIST, "target": target, "mode": "copy",
                                      "selection": list(range(1, too_many + 1))}), 413, "at most"),
        (await c.post("/moves", json={"source": "not-a-uuid", "target": target, "mode": "copy",
                                      "selection": [1]}), 400, "source"),
        (await c.get("/collections/123/companies"), 404, ""),
        (await c.get("/jobs?limit=100000"), 400, "limit"),
    ]  # fmt: skip
    for response, status, words in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert words in response.text, response.text
    assert await redis.xlen(streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name) == 0


async def test_retried_post_with_the_same_key_is_one_job(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await world.new_list()
    body = {"source": MY_LIST, "target": target, "mode": "copy", "selection": [7, 8]}
    headers = {"Idempotency-Key": "retry-me"}
    first = await world.client.post("/moves", json=body, headers=headers)
    second = await world.client.post("/moves", json=body, headers=headers)

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await redis.xlen(streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name) == 1
    job = await world.finished(first.json()["id"])
    assert job["added"] == 2
    listing = (await world.client.get(f"/jobs?collection={target}")).json()
    assert listing["total"] == 1


async def test_job_listing_filters_sorts_and_counts(world: MoverWorld) -> None:
    a, b = await world.new_list("A"), await world.new_list("B")
    j1 = await world.move(source=MY_LIST, target=a, mode="copy", selection=[1], priority=1)
    j2 = await world.move(source=MY_LIST, target=b, mode="move", selection=[2], priority=5)
    await world.finished(j1["id"])
    await world.finished(j2["id"])
    c = world.client

    moves = (await c.get("/jobs?kind=move")).json()
    assert [j["id"] for j in moves["items"]] == [j2["id"]]
    assert moves["total"] == 1
    by_priority = (await c.get("/jobs?sort=-priority")).json()
    assert [j["id"] for j in by_priority["items"]] == [j2["id"], j1["id"]]
    for_a = (await c.get(f"/jobs?collection={a}&status=completed")).json()
    assert [j["id"] for j in for_a["items"]] == [j1["id"]]
    stats = (await c.get("/jobs/stats")).json()
    assert stats["by_status"]["completed"] == 2
    assert stats["total"] == 2
    assert stats["by_kind"] == {"copy": {"completed": 1}, "move": {"completed": 1}}
    conflict = await c.post(f"/jobs/{j1['id']}/cancel")
    assert conflict.status_code == 409
    assert (await c.post(f"/jobs/{j1['id']}/retry")).status_code == 409
