"""Feeds and job routes at their edges (issue 8, items 8 and 9): a client that leaves a
batch's feed is uncounted, a Last-Event-ID that is not ours is 400 on every feed, and
a job id no job can have is 404, never a 500."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator

import httpx
import httpx_sse
import pytest

from contracts import streams
from contracts.runtime.settings import Settings
from gateway.app import create_app
from ingest.app import create_app as create_ingest
from tests.support.batches import named, running
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE
from tests.support.mover_stack import MY_LIST, MoverWorld, mover_world
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running(create_ingest, named(settings, "ingest")),
        uvicorn_serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE) as client,
    ):
        assert (await client.put("/batches/edge", json={"rate": 0})).status_code == 201
        yield client


async def clients_of(http: httpx.AsyncClient, settings: Settings) -> dict[str, float]:
    """`conveyor_sse_clients` of the batch feed's two streams, from /metrics."""
    names = [
        s.prefixed(settings.stream_prefix).name for s in (streams.POINTS, streams.BATCHES_EVENTS)
    ]
    counts = dict.fromkeys(names, 0.0)
    for line in (await http.get("/metrics")).text.splitlines():
        for name in names:
            if line.startswith(f'conveyor_sse_clients{{stream="{name}"}}'):
                counts[name] = float(line.rsplit(" ", 1)[1])
    return counts


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Garbage collection off: a subscription dropped unclosed is then never uncounted,
    so only an explicit release can bring the gauge back."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_gc")
async def test_leaving_a_batch_feed_uncounts_both_its_streams(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    async def counted(n: float) -> bool:
        now = await clients_of(http, settings)
        return set(now.values()) == {n}

    for _round in range(3):
        async with httpx_sse.aconnect_sse(http, "GET", "/batches/edge/events") as source:
            # One iterator held for the whole block: a dropped `aiter_sse()` generator is
            # finalised at once, and closing it closes the response (the client leaves).
            events = source.aiter_sse()
            first = await asyncio.wait_for(anext(events), timeout=10)
            assert first.event == "snapshot"
            await wait_until(lambda: counted(1.0), what="conveyor_sse_clients 1 on both")
        await wait_until(lambda: counted(0.0), what="conveyor_sse_clients back to 0 on both")


@pytest.mark.parametrize(
    "last_event_id", ["nope", "1-0", "1-0,x", "\u00b2-0,1-0", "1" * 30 + "-0,1-0", "1-0,2-0,3-0"]
)
async def test_a_batch_feed_refuses_a_last_event_id_that_is_not_its_own(
    http: httpx.AsyncClient, last_event_id: str
) -> None:
    r = await http.get(
        "/batches/edge/events", headers={"Last-Event-ID": last_event_id.encode("latin-1")}
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Last-Event-ID" in r.json()["detail"]


@pytest.fixture
async def world(settings: Settings, pool: object) -> AsyncIterator[MoverWorld]:
    async with mover_world(settings, pool, companies=200, my_list=100) as w:  # type: ignore[arg-type]
        yield w


async def test_job_ids_no_job_can_have_are_404_and_bad_filters_400(world: MoverWorld) -> None:
    http = world.client
    for path in ("/jobs/a%00b", "/jobs/" + "f" * 65, "/jobs/a%00b/events"):
        r = await http.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for verb in ("cancel", "retry"):
        r = await http.post(f"/jobs/a%00b/{verb}")
        assert r.status_code == 404, (verb, r.text)
    r = await http.get("/jobs", params={"kind": "co\x00py"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("last_event_id", ["\u00b2-0", "1" * 30 + "-0", "x", "1-0-0"])
async def test_a_job_feed_refuses_a_last_event_id_that_is_not_an_entry_id(
    world: MoverWorld, last_event_id: str
) -> None:
    target = await world.new_list()
    job = await world.move(source=MY_LIST, target=target, mode="copy", selection=[1])
    r = await world.client.get(
        f"/jobs/{job['id']}/events", headers={"Last-Event-ID": last_event_id.encode("latin-1")}
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
