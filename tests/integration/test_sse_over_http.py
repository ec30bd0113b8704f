"""The live feeds as a client meets them over HTTP (issue 8, items 6, 9 and 11).

- heartbeats are SSE comments, byte for byte, never events;
- `conveyor_sse_clients` comes back to zero whatever ends a stream: a client that
  disconnects from a single or a merged feed, an overflow, a server shutdown;
- `/events` answers 404 for a job or batch that does not exist, and 400 (never 500)
  for parameters it cannot use.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import httpx_sse
import pytest
import redis.asyncio as aioredis
from litestar import Litestar

from contracts import codec, streams
from contracts.messages import Counts, JobProgressed, MoveCompanies, Selection, new_id
from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.feeds.fanout import Feeds
from gateway.feeds.sse import HEARTBEAT_BYTES, merge
from gateway.jobs import sql as jobs_sql
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MERGED = "/events?topics=jobs,batches"


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    app = create_app(settings)
    async with (
        uvicorn_serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE) as http,
    ):
        yield app, http


def stream_names(settings: Settings) -> list[str]:
    return [
        spec.prefixed(settings.stream_prefix).name
        for spec in (streams.JOBS_EVENTS, streams.BATCHES_EVENTS)
    ]


async def sse_clients(http: httpx.AsyncClient, settings: Settings) -> dict[str, float]:
    """`conveyor_sse_clients` per stream of this test, as `GET /metrics` shows it."""
    text = (await http.get("/metrics")).text
    counts = dict.fromkeys(stream_names(settings), 0.0)
    for line in text.splitlines():
        for name in counts:
            if line.startswith(f'conveyor_sse_clients{{stream="{name}"}}'):
                counts[name] = float(line.rsplit(" ", 1)[1])
    return counts


async def wait_for_clients(
    http: httpx.AsyncClient, settings: Settings, jobs: int, batches: int
) -> None:
    wanted = dict(zip(stream_names(settings), (float(jobs), float(batches)), strict=True))

    async def reached() -> bool:
        return await sse_clients(http, settings) == wanted

    await wait_until(reached, what=f"conveyor_sse_clients == {wanted}")


# --- item 6: heartbeats -------------------------------------------------------------


def beat_fast(app: Litestar) -> None:
    """Heartbeats as often as the reader can (once per XREAD block, about 1 s)."""
    for spec in (streams.JOBS_EVENTS, streams.BATCHES_EVENTS):
        app.state.feeds.get(spec).heartbeat_s = 0.05


async def test_heartbeats_are_comments_only_on_the_wire(
    gateway: tuple[Litestar, httpx.AsyncClient],
) -> None:
    app, http = gateway
    beat_fast(app)
    body = b""
    async with http.stream("GET", "/events?topics=jobs") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_bytes():
            body += chunk
            if body.count(b": heartbeat") >= 2:
                break
    assert HEARTBEAT_BYTES == b": heartbeat\r\n\r\n"
    assert body == HEARTBEAT_BYTES * 2  # nothing else: no `data:` line, no event


async def test_an_sse_client_sees_no_event_for_a_heartbeat(
    gateway: tuple[Litestar, httpx.AsyncClient], redis: aioredis.Redis, settings: Settings
) -> None:
    app, http = gateway
    beat_fast(app)
    feed = app.state.feeds.get(streams.JOBS_EVENTS)
    async with httpx_sse.aconnect_sse(http, "GET", "/events?topics=jobs") as source:
        first = asyncio.create_task(anext(source.aiter_sse()))
        await wait_for_clients(http, settings, 1, 0)
        witness = await feed.subscribe(match=lambda _m: True)  # hears the same broadcasts
        beats = [await asyncio.wait_for(anext(witness), timeout=10) for _ in range(2)]
        await witness.aclose()
        assert [b.event for b in beats] == ["heartbeat", "heartbeat"]
        event = JobProgressed(id=new_id(), job_id="j", counts=Counts(done=1, total=2))
        await codec.publish(redis, stream_names(settings)[0], event)
        sse = await asyncio.wait_for(first, timeout=10)
    assert (sse.event, '"job_id":"j"' in sse.data) == ("JobProgressed", True)


# --- item 9: conveyor_sse_clients ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "jobs", "batches"),
    [(MERGED, 1, 1), ("/events?topics=jobs", 1, 0), ("/events?topics=batches", 0, 1)],
)
async def test_clients_gauge_returns_to_zero_when_clients_disconnect(
    gateway: tuple[Litestar, httpx.AsyncClient], settings: Settings, url: str, jobs: int,
    batches: int,
) -> None:  # fmt: skip
    _app, http = gateway
    for _round in range(3):
        async with contextlib.AsyncExitStack() as clients:
            for _ in range(4):
                await clients.enter_async_context(httpx_sse.aconnect_sse(http, "GET", url))
            await wait_for_clients(http, settings, 4 * jobs, 4 * batches)
        # every client has hung up
        await wait_for_clients(http, settings, 0, 0)


async def test_clients_gauge_returns_to_zero_when_a_client_disconnects_mid_event(
    gateway: tuple[Litestar, httpx.AsyncClient], redis: aioredis.Redis, settings: Settings
) -> None:
    _app, http = gateway
    async with httpx_sse.aconnect_sse(http, "GET", MERGED) as source:
        await wait_for_clients(http, settings, 1, 1)
        for i in range(50):  # a stream busy writing when the client goes
            event = JobProgressed(id=new_id(), job_id="j", counts=Counts(done=i, total=50))
            await codec.publish(redis, stream_names(settings)[0], event)
        async for _sse in source.aiter_sse():
            break
    await wait_for_clients(http, settings, 0, 0)


async def test_clients_gauge_returns_to_zero_at_shutdown(
    gateway: tuple[Litestar, httpx.AsyncClient], settings: Settings
) -> None:
    app, http = gateway
    ends: list[str] = []

    async def follow(url: str) -> None:
        async with httpx_sse.aconnect_sse(http, "GET", url) as source:
            ends.extend([sse.event async for sse in source.aiter_sse() if sse.event])

    followers = [asyncio.create_task(follow(u)) for u in (MERGED, MERGED, "/events?topics=jobs")]
    await wait_for_clients(http, settings, 3, 2)
    await app.state.feeds.close()  # what SIGTERM does first (gateway/__main__.py)
    await asyncio.wait_for(asyncio.gather(*followers), timeout=10)
    assert ends == ["closed"] * 3
    await wait_for_clients(http, settings, 0, 0)


async def test_clients_gauge_returns_to_zero_after_an_overflow_in_a_merged_feed(
    redis: aioredis.Redis, settings: Settings
) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    feeds = Feeds(redis, settings.stream_prefix, registry)
    jobs_name, batches_name = stream_names(settings)

    def clients(name: str) -> float | None:
        return registry.get_sample_value("conveyor_sse_clients", {"stream": name})

    try:
        jobs = feeds.get(streams.JOBS_EVENTS)
        jobs.buffer = 2
        merged = merge(
            {
                "jobs": await jobs.subscribe(match=lambda _m: True),
                "batches": await feeds.get(streams.BATCHES_EVENTS).subscribe(match=lambda _m: True),
            }
        )
        assert (clients(jobs_name), clients(batches_name)) == (1, 1)
        for i in range(10):  # nobody reads: the jobs side overflows
            event = JobProgressed(id=new_id(), job_id="j", counts=Counts(done=i, total=10))
            await codec.publish(redis, jobs_name, event)

        async def overflowed() -> bool:
            return jobs._subscribers == set() or any(s.ended for s in jobs._subscribers)

        await wait_until(overflowed, what="the jobs subscriber overflowed")
        seen = [event.event async for _topic, event in merged]
        assert seen[-1] == "overflow"
        assert (clients(jobs_name), clients(batches_name)) == (0, 0)
    finally:
        await feeds.close()


async def test_a_subscription_closed_before_it_starts_is_uncounted_once(
    redis: aioredis.Redis, settings: Settings
) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    feeds = Feeds(redis, settings.stream_prefix, registry)
    name = stream_names(settings)[0]
    try:
        subscription = await feeds.get(streams.JOBS_EVENTS).subscribe(match=lambda _m: True)
        assert registry.get_sample_value("conveyor_sse_clients", {"stream": name}) == 1
        await subscription.aclose()
        await subscription.aclose()
        del subscription
        assert registry.get_sample_value("conveyor_sse_clients", {"stream": name}) == 0
    finally:
        await feeds.close()


# --- item 11: unknown filters, bad parameters ----------------------------------------


async def new_job(settings: Settings, job_id: str | None = None) -> str:
    """A job accepted (as `POST /moves` records it), so that filters on it are not 404."""
    conn = await asyncpg.connect(settings.database_url, server_settings={
        "search_path": settings.db_schema})  # fmt: skip
    try:
        job_id = job_id or str(uuid.uuid4())
        command = MoveCompanies(
            id=job_id, job_id=job_id, source=str(uuid.uuid4()), target=str(uuid.uuid4()),
            mode="move", selection=Selection(ids=[1]),
        )  # fmt: skip
        await jobs_sql.accept(
            conn=conn, job_id=job_id, command=codec.encode(command).decode(),
            queued_entry="0-0", accepted_at=command.at,
        )  # fmt: skip
        return job_id
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("query", "words"),
    [("job_id=nope", "job nope does not exist"), ("batch_id=nope", "no batch 'nope'"),
     ("topics=jobs&job_id=nope", "does not exist"), ("topics=batches&batch_id=nope", "no batch")],
)  # fmt: skip
async def test_a_filter_naming_nothing_is_404(
    gateway: tuple[Litestar, httpx.AsyncClient], settings: Settings, query: str, words: str
) -> None:
    _app, http = gateway
    response = await http.get(f"/events?{query}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]
    assert await sse_clients(http, settings) == dict.fromkeys(stream_names(settings), 0.0)


async def test_a_filter_naming_a_job_that_exists_streams(
    gateway: tuple[Litestar, httpx.AsyncClient], redis: aioredis.Redis, settings: Settings
) -> None:
    _app, http = gateway
    job_id = await new_job(settings)
    async with httpx_sse.aconnect_sse(http, "GET", f"/events?job_id={job_id}") as source:
        assert source.response.status_code == 200
        await wait_for_clients(http, settings, 1, 1)
        event = JobProgressed(id=new_id(), job_id=job_id, counts=Counts(done=1, total=2))
        await codec.publish(redis, stream_names(settings)[0], event)
        async for sse in source.aiter_sse():
            assert (sse.event, job_id in sse.data) == ("JobProgressed", True)
            break


@pytest.mark.parametrize(
    "query",
    [
        "job_id=%00", "batch_id=a%00b", "topics=jobs%00", "topics=%00",
        "after=jobs:%00,batches:0-0", "after=jobs:%C2%B2-0,batches:0-0",  # '²' is a digit
        "after=jobs:%D9%A1-0,batches:0-0",  # Arabic-Indic one
        "after=jobs:99999999999999999999999-0,batches:0-0", "after=jobs:1-2-3,batches:0-0",
        "after=jobs:18446744073709551616-0,batches:0-0", "topics=jobs&after=jobs:-1",
        "topics=", "topics=,,", "job_id=" + "x" * 65,
    ],
)  # fmt: skip
async def test_bad_parameters_are_4xx_problems_never_500(
    gateway: tuple[Litestar, httpx.AsyncClient], settings: Settings, query: str
) -> None:
    _app, http = gateway
    response = await http.get(f"/events?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await sse_clients(http, settings) == dict.fromkeys(stream_names(settings), 0.0)


@pytest.mark.parametrize(
    "header",
    [b"jobs:" + b"9" * 30 + b"-0,batches:0-0", b"jobs:\xb2-0,batches:0-0"],  # latin-1 '²'
)
async def test_a_bad_last_event_id_is_400(
    gateway: tuple[Litestar, httpx.AsyncClient], header: bytes
) -> None:
    _app, http = gateway
    response = await http.get("/events", headers={b"last-event-id": header})
    assert response.status_code == 400, response.text
