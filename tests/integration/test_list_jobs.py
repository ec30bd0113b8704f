"""Managing lists through the API: rename, remove companies (a job), delete (a job).

The mover and the aggregator run in-process (tests/support/mover_stack.py), so a
removal or a deletion goes the way a move goes: MoveCompanies on mover.commands,
pages and chunks, JobProgressed .. JobCompleted projected into `jobs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.runtime.settings import Settings
from tests.support.mover_stack import (
    IGNORE,
    LIKED,
    MY_LIST,
    MoverWorld,
    chunks_idle,
    mover_world,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"


@pytest.fixture
async def world(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[MoverWorld]:
    async with mover_world(settings, pool) as w:
        yield w


async def commands_sent(redis: aioredis.Redis, settings: Settings) -> int:
    return int(await redis.xlen(streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name))


async def size(world: MoverWorld, list_id: str) -> int:
    r = await world.client.get(f"/collections/{list_id}")
    assert r.status_code == 200, r.text
    return int(r.json()["companies"])


async def test_rename(world: MoverWorld) -> None:
    c = world.client
    renamed = await c.patch(f"/collections/{LIKED}", json={"name": "  Favourites "})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["companies"]) == ("Favourites", 10)
    assert (await c.get(f"/collections/{LIKED}")).json()["name"] == "Favourites"
    same = await c.patch(f"/collections/{LIKED}", json={"name": "FAVOURITES"})
    assert same.status_code == 200, "a list may take its own name in another case"
    assert same.json()["name"] == "FAVOURITES"
    # The old name is free again.
    assert (await c.post("/collections", json={"name": "Liked Companies"})).status_code == 201

    taken = await c.patch(f"/collections/{LIKED}", json={"name": " my list"})
    assert taken.status_code == 409, taken.text
    assert taken.json()["existing"] == {"id": MY_LIST, "name": "My List"}
    assert "exists already" in taken.json()["detail"]
    missing = await c.patch(f"/collections/{UNKNOWN}", json={"name": "Anything"})
    assert missing.status_code == 404
    assert UNKNOWN in missing.json()["detail"]
    for bad in ({"name": "   "}, {"name": ""}, {"name": "x" * 201}, {"name": "a\x00b"}):
        r = await c.patch(f"/collections/{LIKED}", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await c.get(f"/collections/{LIKED}")).json()["name"] == "FAVOURITES"


async def test_remove_three_companies(world: MoverWorld) -> None:
    r = await world.client.post("/removals", json={"source": MY_LIST, "selection": [3, 1, 2]})
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/jobs/{r.json()['id']}"
    assert (r.json()["kind"], r.json()["source"], r.json()["target"]) == ("remove", MY_LIST, None)
    job = await world.finished(r.json()["id"])

    assert (job["status"], job["kind"], job["total"], job["done"], job["removed"]) == (
        "completed", "remove", 3, 3, 3,
    )  # fmt: skip
    assert (job["added"], job["already_present"]) == (0, 0)
    assert await world.members(MY_LIST) == set(range(4, 501))
    assert await size(world, MY_LIST) == 497
    r = await world.client.post("/removals", json={"source": MY_LIST, "selection": [1, 4]})
    again = await world.finished(r.json()["id"])
    assert (again["total"], again["removed"]) == (1, 1), "only what is still in the list counts"


async def test_remove_all_but_two(world: MoverWorld) -> None:
    body = {"source": IGNORE, "selection": {"all": True, "exclude": [500, 525]}}
    r = await world.client.post("/removals", json=body)
    assert r.status_code == 202, r.text
    job = await world.finished(r.json()["id"])

    assert (job["status"], job["total"], job["removed"]) == ("completed", 48, 48)
    assert await world.members(IGNORE) == {500, 525}
    assert len(await world.members(MY_LIST)) == 500, "other lists keep their companies"


async def test_delete_a_list_of_thousands(settings: Settings, pool: asyncpg.Pool) -> None:
    async with mover_world(settings, pool, companies=4000, my_list=3000) as w:
        r = await w.client.delete(f"/collections/{MY_LIST}")
        assert r.status_code == 202, r.text
        assert (r.json()["kind"], r.json()["source"]) == ("delete", MY_LIST)
        job = await w.finished(r.json()["id"], within_s=60)
        gone = await w.client.get(f"/collections/{MY_LIST}")
        listed = (await w.client.get(f"/jobs?kind=delete&collection={MY_LIST}")).json()
        names = {c["name"] for c in (await w.client.get("/collections")).json()["items"]}

    assert (job["status"], job["total"], job["done"], job["removed"]) == (
        "completed", 3000, 3000, 3000,
    )  # fmt: skip
    assert gone.status_code == 404
    assert await w.members(MY_LIST) == set()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert names == {"Liked Companies", "Companies to Ignore"}
    assert await pool.fetchval("SELECT count(*) FROM companies") == 4000, "companies stay"


async def test_delete_of_an_empty_list_completes_at_once(world: MoverWorld) -> None:
    empty = await world.new_list("Empty")
    r = await world.client.delete(f"/collections/{empty}")
    assert r.status_code == 202, r.text
    job = await world.finished(r.json()["id"])
    assert (job["status"], job["total"], job["removed"]) == ("completed", 0, 0)
    assert (await world.client.get(f"/collections/{empty}")).status_code == 404


async def test_delete_cancelled_midway_keeps_the_list_and_retry_finishes_it(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    # Two workers and 10 ms per deleted membership: the deletion takes ~15 s.
    slow = msgspec.structs.replace(settings, mover_concurrency=2)
    async with mover_world(slow, pool, companies=4000, my_list=3000) as w:
        await pool.execute(
            """CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN PERFORM pg_sleep(0.01); RETURN OLD; END $$;
               CREATE TRIGGER slow_delete BEFORE DELETE ON memberships
               FOR EACH ROW EXECUTE FUNCTION slow_delete();"""
        )
        job = (await w.client.delete(f"/collections/{MY_LIST}")).json()

        async def some_removed() -> bool:
            return (await w.job(job["id"]))["removed"] > 0

        await wait_until(some_removed, timeout=30, what="the first chunks applied")
        into = await w.client.post(
            "/moves", json={"source": LIKED, "target": MY_LIST, "mode": "copy", "selection": [1]}
        )
        twice = await w.client.delete(f"/collections/{MY_LIST}")
        assert (await w.client.post(f"/jobs/{job['id']}/cancel")).status_code == 202
        cancelled = await w.finished(job["id"])
        await wait_until(
            lambda: chunks_idle(redis, settings), timeout=60, what="chunks under way finished"
        )

        async def settled() -> dict[str, Any] | None:
            now = await w.job(job["id"])
            return now if len(await w.members(MY_LIST)) == 3000 - now["removed"] else None

        kept = await wait_until(settled, timeout=30, what="counts match what was removed")
        still = await w.client.get(f"/collections/{MY_LIST}")
        await pool.execute("DROP TRIGGER slow_delete ON memberships")
        assert (await w.client.post(f"/jobs/{job['id']}/retry")).status_code == 202

        async def completed() -> dict[str, Any] | None:
            now = await w.job(job["id"])
            return now if now["status"] == "completed" else None

        done = await wait_until(completed, timeout=60, what="the retried deletion completed")
        gone = await w.client.get(f"/collections/{MY_LIST}")

    assert into.status_code == 422, into.text
    assert "being deleted" in into.json()["detail"]
    assert into.json()["job"] == job["id"]
    assert twice.status_code == 409, twice.text
    assert "being deleted already" in twice.json()["detail"]
    assert cancelled["status"] == "cancelled"
    assert 0 < kept["removed"] < 3000, "cancel should stop the deletion part-way"
    assert still.status_code == 200
    assert still.json()["companies"] == 3000 - kept["removed"]
    assert (done["removed"], done["total"], done["attempts"]) == (3000, 3000, 2)
    assert gone.status_code == 404


async def test_a_list_being_filled_is_not_deleted(world: MoverWorld) -> None:
    target = await world.new_list()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    move = await world.move(
        source=MY_LIST, target=target, mode="copy", selection=[1, 2], not_before=later
    )
    refused = await world.client.delete(f"/collections/{target}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["jobs"] == [move["id"]]
    assert "cancel them" in refused.json()["detail"]

    assert (await world.client.post(f"/jobs/{move['id']}/cancel")).status_code == 202
    await world.finished(move["id"])
    deleted = await world.client.delete(f"/collections/{target}")
    assert deleted.status_code == 202, deleted.text
    assert (await world.finished(deleted.json()["id"]))["status"] == "completed"


async def test_same_key_replays_removal_and_deletion(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    c = world.client
    body = {"source": MY_LIST, "selection": [7, 8]}
    key = {"Idempotency-Key": "remove-1"}
    first = await c.post("/removals", json=body, headers=key)
    await world.finished(first.json()["id"])
    second = await c.post("/removals", json=body, headers=key)
    other = await c.post("/removals", json={**body, "selection": [9]}, headers=key)

    doomed = await world.new_list("Doomed")
    dkey = {"Idempotency-Key": "delete-1"}
    deleted = await c.delete(f"/collections/{doomed}", headers=dkey)
    await world.finished(deleted.json()["id"])
    replayed = await c.delete(f"/collections/{doomed}", headers=dkey)  # the list is gone now
    elsewhere = await c.delete(f"/collections/{IGNORE}", headers=dkey)

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["status"] == "completed"
    assert other.status_code == 422
    assert other.json()["title"] == "Idempotency-Key reused"
    assert deleted.status_code == replayed.status_code == 202
    assert replayed.json()["id"] == deleted.json()["id"]
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert elsewhere.status_code == 422, elsewhere.text
    assert await commands_sent(redis, settings) == 2
    assert (await world.job(first.json()["id"]))["removed"] == 2
    assert (await c.get(f"/collections/{IGNORE}")).status_code == 200


async def test_bad_requests_publish_nothing(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    c = world.client
    cases = [
        (await c.post("/removals", json={"source": UNKNOWN, "selection": [1]}), 422, UNKNOWN),
        (await c.post("/removals", json={"source": MY_LIST, "selection": []}), 422,
         "no company ids"),
        (await c.post("/removals", json={"source": MY_LIST, "selection": [2**63]}), 422,
         "selection"),
        (await c.post("/removals", json={"source": MY_LIST, "selection": {"all": True,
                                          "exclude": [2**64]}}), 422, "exclude"),
        (await c.post("/removals", json={"source": MY_LIST, "selection": [1, 999999]}), 422,
         "do not exist"),
        (await c.post("/removals", json={"source": MY_LIST, "selection": [1], "priority": 9}),
         422, "priority"),
        (await c.post("/removals", json={"source": MY_LIST, "selection": [1],
                                         "not_before": "2030-01-01T00:00:00"}), 422, "timezone"),
        (await c.post("/removals", json={"source": MY_LIST, "target": LIKED,
                                         "selection": [1]}), 400, "target"),
        (await c.post("/removals", json={"source": "nope", "selection": [1]}), 400, "source"),
        (await c.delete(f"/collections/{UNKNOWN}"), 404, "does not exist"),
    ]  # fmt: skip
    for response, status, words in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert words in response.text, response.text
    assert await commands_sent(redis, settings) == 0
    assert len(await world.members(MY_LIST)) == 500


async def test_a_scheduled_removal_waits(world: MoverWorld) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await world.client.post(
        "/removals", json={"source": MY_LIST, "selection": [5], "not_before": later}
    )
    assert r.status_code == 202, r.text

    async def scheduled() -> dict[str, Any] | None:
        job = await world.job(r.json()["id"])
        return job if job["status"] == "scheduled" else None

    job = await wait_until(scheduled, what="the removal scheduled")
    assert job["total"] == 1
    assert 5 in await world.members(MY_LIST)
