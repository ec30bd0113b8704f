"""GET /streams, the dead letters of a stream and their replay over HTTP (gateway/operations/),
against real Redis, with the test settings' API keys (tests/support/keys.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.delivery import dead_letter, list_dead
from contracts.messages import CancelJob
from contracts.runtime.settings import Settings
from gateway.app import create_app
from tests.support.gateway import serve
from tests.support.keys import READ

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
DEAD = "/streams/mover.commands/dead-letters"


@pytest.fixture
async def client(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings)) as test_client:  # the write key by default
        yield test_client


def commands(settings: Settings) -> str:
    return streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name


MESSAGES = [CancelJob(id="m0", job_id="j0"), CancelJob(id="m1", job_id="j1")]


async def give_up(redis: aioredis.Redis, name: str, message: CancelJob, reason: str) -> str:
    """Append `message`, read it in group `mover` and dead-letter it; its DLQ id."""
    entry = await redis.xadd(name, codec.entry_fields(message))  # type: ignore[arg-type]
    await redis.xreadgroup(streams.MOVER, "c1", {name: ">"}, count=1)
    return await dead_letter(
        redis, stream=name, group=streams.MOVER, entry_id=codec.as_text(entry),
        data=codec.encode(message), reason=reason, deliveries=4, consumer="c1",
    )  # fmt: skip


@pytest.fixture
async def two_dead(redis: aioredis.Redis, settings: Settings) -> list[str]:
    """mover.commands with group `mover` and two dead letters (MESSAGES: boom, bang)."""
    name = commands(settings)
    await redis.xgroup_create(name, streams.MOVER, id="0", mkstream=True)
    return [
        await give_up(redis, name, MESSAGES[0], "boom"),
        await give_up(redis, name, MESSAGES[1], "bang"),
    ]


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = response.json()
    return body


async def test_the_overview_with_a_read_key(
    client: httpx.AsyncClient, two_dead: list[str], redis: aioredis.Redis, settings: Settings
) -> None:
    await redis.xadd(commands(settings), codec.entry_fields(CancelJob(id="m2", job_id="j2")))  # type: ignore[arg-type]
    await redis.xreadgroup(streams.MOVER, "c1", {commands(settings): ">"}, count=1)

    response = await client.get("/streams", headers=READ)

    assert response.status_code == 200, response.text
    found = {s["name"]: s for s in response.json()["streams"]}
    assert list(found) == [s.name for s in streams.ALL]
    mover = found["mover.commands"]
    assert (mover["length"], mover["dead_letters"]) == (3, 2)
    assert mover["retention_ms"] == streams.MOVER_COMMANDS.retention_ms
    [group] = mover["groups"]
    assert (group["name"], group["consumers"], group["pending"], group["lag"]) == (
        "mover", 1, 1, 0,
    )  # fmt: skip
    assert isinstance(group["oldest_pending_ms"], int)
    assert 0 <= group["oldest_pending_ms"] < 60_000  # m2 was appended during this test
    assert found["points"] == {
        "name": "points", "key": settings.stream_prefix + "points", "length": 0,
        "dead_letters": 0, "retention_ms": streams.POINTS.retention_ms, "groups": [],
    }  # fmt: skip


async def test_dead_letters_are_listed_newest_first_with_their_reason(
    client: httpx.AsyncClient, two_dead: list[str]
) -> None:
    response = await client.get(DEAD, headers=READ)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stream"], body["total"]) == ("mover.commands", 2)
    letters = body["dead_letters"]
    assert [d["dlq_id"] for d in letters] == two_dead[::-1]
    assert [d["reason"] for d in letters] == ["bang", "boom"]
    assert letters[1]["group"] == "mover"
    assert letters[1]["deliveries"] == 4
    assert letters[1]["data"] == codec.encode(MESSAGES[0]).decode()
    assert letters[1]["failed_at"].endswith("Z")

    one = await client.get(DEAD, params={"count": 1}, headers=READ)
    assert [d["dlq_id"] for d in one.json()["dead_letters"]] == [two_dead[1]]


@pytest.mark.parametrize("count", ["0", "1001", "many"])
async def test_count_out_of_bounds_is_400(client: httpx.AsyncClient, count: str) -> None:
    body = assert_problem(await client.get(DEAD, params={"count": count}, headers=READ), 400)
    assert "count" in str(body)


async def test_replay_puts_the_entry_back_and_removes_the_dead_letter(
    client: httpx.AsyncClient, two_dead: list[str], redis: aioredis.Redis, settings: Settings
) -> None:
    response = await client.post(f"{DEAD}/replay", json={"ids": [two_dead[0]]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stream"], body["left"]) == ("mover.commands", 1)
    [new_id] = body["entry_ids"]
    [(_, fields)] = await redis.xrange(commands(settings), min=new_id, max=new_id)
    assert fields[codec.DATA_FIELD] == codec.encode(MESSAGES[0])
    assert fields[b"replayed_from"] == two_dead[0].encode()
    assert [d.dlq_id for d in await list_dead(redis, commands(settings))] == [two_dead[1]]

    again = await client.post(f"{DEAD}/replay", json={"ids": [two_dead[0]]})
    assert two_dead[0] in str(assert_problem(again, 404)["detail"])


async def test_replay_all(
    client: httpx.AsyncClient, two_dead: list[str], redis: aioredis.Redis, settings: Settings
) -> None:
    response = await client.post(f"{DEAD}/replay", json={"all": True})

    assert response.status_code == 200, response.text
    assert (len(response.json()["entry_ids"]), response.json()["left"]) == (2, 0)
    assert await list_dead(redis, commands(settings)) == []
    assert await redis.xlen(commands(settings)) == 4


async def test_an_unknown_id_is_404_and_nothing_is_replayed(
    client: httpx.AsyncClient, two_dead: list[str], redis: aioredis.Redis, settings: Settings
) -> None:
    for unknown in ["1-1", "5", "x" * 41]:
        response = await client.post(f"{DEAD}/replay", json={"ids": [two_dead[0], unknown]})
        body = assert_problem(response, 404)
        assert unknown in str(body["detail"])
        assert body["missing"] == [unknown]
    assert len(await list_dead(redis, commands(settings))) == 2
    assert await redis.xlen(commands(settings)) == 2


async def test_replay_with_a_read_key_is_403(
    client: httpx.AsyncClient, two_dead: list[str], redis: aioredis.Redis, settings: Settings
) -> None:
    response = await client.post(f"{DEAD}/replay", json={"ids": two_dead}, headers=READ)

    assert_problem(response, 403)
    assert len(await list_dead(redis, commands(settings))) == 2


@pytest.mark.parametrize(
    "body",
    [{}, {"all": False}, {"ids": []}, {"ids": ["1-1"], "all": True}, {"ids": ["1-1"] * 1001}],
)
async def test_a_replay_that_says_neither_or_both_or_too_many_is_422(
    client: httpx.AsyncClient, two_dead: list[str], body: dict[str, object]
) -> None:
    assert_problem(await client.post(f"{DEAD}/replay", json=body), 422)


async def test_an_unknown_stream_is_404_listing_the_known_ones(client: httpx.AsyncClient) -> None:
    for response in [
        await client.get("/streams/nosuch.stream/dead-letters", headers=READ),
        await client.post("/streams/nosuch.stream/dead-letters/replay", json={"all": True}),
    ]:
        body = assert_problem(response, 404)
        assert "nosuch.stream" in str(body["detail"])
        assert body["known"] == [s.name for s in streams.ALL]


async def test_the_newest_of_many_dead_letters_can_be_replayed(
    client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    """Replay finds dead letters by id, not among the oldest 1000 only."""
    dlq = f"{commands(settings)}.dlq"
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(1001):
            pipe.xadd(dlq, {codec.DATA_FIELD: b"{}", b"reason": f"r{n}".encode()})
        await pipe.execute()
    [newest] = (await client.get(DEAD, params={"count": 1}, headers=READ)).json()["dead_letters"]
    assert newest["reason"] == "r1000"

    response = await client.post(f"{DEAD}/replay", json={"ids": [newest["dlq_id"]]})

    assert response.status_code == 200, response.text
    assert response.json()["left"] == 1000
    [(_, fields)] = await redis.xrevrange(commands(settings), count=1)
    assert fields[b"replayed_from"] == newest["dlq_id"].encode()
