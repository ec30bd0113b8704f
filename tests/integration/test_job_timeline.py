"""A job's timeline (GET /jobs/{id}/timeline) and the attempts ended per minute
(GET /jobs/stats/minutes), read from job_events, which the aggregator's projection
writes (real Redis and PostgreSQL; mover and aggregator in-process)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from aggregator.app import create_app as create_aggregator
from contracts import codec, streams
from contracts.messages import (
    Counts,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobQueued,
    JobStarted,
    Message,
    new_id,
)
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from gateway.catalog import demo as seed
from tests.support.gateway import serve
from tests.support.mover_stack import MY_LIST, mover_world
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
TURNS = ("JobStarted", "JobFailed", "JobCompleted")  # where an attempt starts and ends


async def whole_timeline(client: httpx.AsyncClient, job_id: str, limit: int) -> list[Any]:
    """Every item of the job's timeline, read `limit` at a time by following `next`."""
    items: list[Any] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        r = await client.get(f"/jobs/{job_id}/timeline", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["job_id"] == job_id
        assert len(page["items"]) <= limit
        items += page["items"]
        after = page["next"]
        if after is None:
            return items
        assert after == page["items"][-1]["entry_id"]


async def stream_events(redis: aioredis.Redis, settings: Settings, job_id: str) -> list[Any]:
    """(entry id, type) of the job's events in jobs.events, in stream order."""
    decoder = streams.JOBS_EVENTS.decoder()
    name = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
    found = []
    for entry_id, fields in await redis.xrange(name):
        event = decoder.decode(next(iter(fields.values())))
        if getattr(event, "job_id", None) == job_id:
            found.append((entry_id.decode(), type(event).__name__))
    return found


def key(entry_id: str) -> tuple[int, int]:
    return codec.entry_key(entry_id)


async def test_a_failed_then_retried_job_shows_both_attempts_in_order(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with mover_world(settings, pool) as w:
        target = await w.new_list()
        await w.refuse_250(target)
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})
        assert (await w.finished(job["id"]))["status"] == "failed"
        await pool.execute("DROP TRIGGER refuse_250 ON memberships")
        assert (await w.client.post(f"/jobs/{job['id']}/retry")).status_code == 202

        async def completed() -> bool:
            return (await w.job(job["id"]))["status"] == "completed"

        await wait_until(completed, what="the retried job completed")

        async def all_kept() -> list[Any] | None:
            items = await whole_timeline(w.client, job["id"], limit=500)
            kept = [(i["entry_id"], i["type"]) for i in items]
            return items if kept == await stream_events(redis, settings, job["id"]) else None

        items = await wait_until(all_kept, what="every event of jobs.events in the timeline")
        paged = await whole_timeline(w.client, job["id"], limit=2)

    assert paged == items, "pages of 2 read the same timeline"
    entries = [key(i["entry_id"]) for i in items]
    assert entries == sorted(entries)
    assert len(set(entries)) == len(entries)
    assert items[0]["type"] == "JobQueued"
    turns = [(i["type"], i["attempt"]) for i in items if i["type"] in TURNS]
    assert turns == [("JobStarted", 1), ("JobFailed", 1), ("JobStarted", 2), ("JobCompleted", 2)]
    attempts = [i["attempt"] for i in items]
    assert attempts == sorted(attempts), "attempt 1's events, then attempt 2's"
    failed = next(i for i in items if i["type"] == "JobFailed")
    assert "company 250 refused on purpose" in failed["error"]
    assert failed["status"] == "failed"
    assert 0 < failed["counts"]["added"] < 500
    assert items[-1]["status"] == "completed"
    assert items[-1]["counts"]["added"] == 500
    assert all(i["error"] is None for i in items if i["type"] != "JobFailed")


async def test_unknown_job_is_404_and_an_accepted_one_is_known(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """No aggregator runs: the accepted move has no projected row, yet its timeline is
    there (empty until the projection applies its JobQueued)."""
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=100, my_list=50, liked=10, ignore=5)
    async with serve(create_gateway(settings)) as client:
        target = await client.post("/collections", json={"name": "Target"})
        body = {"source": MY_LIST, "target": target.json()["id"], "mode": "copy",
                "selection": [1, 2]}  # fmt: skip
        accepted = await client.post("/moves", json=body)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        known = await client.get(f"/jobs/{job_id}/timeline")
        unknown = await client.get(f"/jobs/{new_id()}/timeline")
        nul = await client.get("/jobs/a%00b/timeline")

    assert known.status_code == 200, known.text
    assert known.json() == {"job_id": job_id, "items": [], "limit": 200, "next": None}
    for r in (unknown, nul):
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == PROBLEM
        assert "does not exist" in r.json()["detail"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/jobs/stats/minutes?minutes=0", "minutes"),
        ("/jobs/stats/minutes?minutes=1441", "minutes"),
        ("/jobs/stats/minutes?minutes=abc", "minutes"),
        ("/jobs/x/timeline?limit=0", "limit"),
        ("/jobs/x/timeline?limit=501", "limit"),
        ("/jobs/x/timeline?after=yesterday", "after"),
        ("/jobs/x/timeline?after=1-2-3", "after"),
    ],
)
async def test_bad_queries_are_refused(settings: Settings, url: str, field: str) -> None:
    async with serve(create_gateway(settings)) as client:
        r = await client.get(url)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == PROBLEM
    assert field in r.text


@contextlib.asynccontextmanager
async def aggregating(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    aggregator, _ = create_aggregator(settings)
    async with aggregator, serve(create_gateway(settings)) as client:
        yield client


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


async def test_attempts_ended_are_counted_in_their_minutes(
    settings: Settings, redis: aioredis.Redis
) -> None:
    now = datetime.now(UTC)
    two_ago, four_ago = minute_of(now) - timedelta(minutes=2), minute_of(now) - timedelta(minutes=4)
    jobs = [new_id() for _ in range(5)]
    events: list[Message] = [JobQueued(id=new_id(), job_id=j, kind="copy") for j in jobs]
    counts = Counts(total=3, done=3, added=3)
    events += [
        JobStarted(id=new_id(), job_id=jobs[0], attempt=1, at=two_ago + timedelta(seconds=1)),
        JobCompleted(
            id=new_id(), job_id=jobs[0], attempt=1, counts=counts, at=two_ago + timedelta(seconds=5)
        ),
        JobCompleted(id=new_id(), job_id=jobs[1], attempt=1, at=two_ago + timedelta(seconds=59)),
        JobFailed(id=new_id(), job_id=jobs[2], attempt=1, error="x", at=two_ago),
        # attempt 1 of jobs[3] failed four minutes ago, attempt 2 completed two ago
        JobFailed(id=new_id(), job_id=jobs[3], attempt=1, error="y", at=four_ago),
        JobCompleted(id=new_id(), job_id=jobs[3], attempt=2, at=two_ago + timedelta(seconds=30)),
        JobCancelled(id=new_id(), job_id=jobs[4], attempt=1, at=four_ago + timedelta(seconds=3)),
    ]
    name = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
    for event in events:
        await codec.publish(redis, name, event)
    expected = {
        two_ago: {"completed": 3, "failed": 1, "cancelled": 0},
        four_ago: {"completed": 0, "failed": 1, "cancelled": 1},
    }

    async with aggregating(settings) as client:

        async def counted() -> list[Any] | None:
            r = await client.get("/jobs/stats/minutes", params={"minutes": 10})
            assert r.status_code == 200, r.text
            rows: list[Any] = r.json()["minutes"]
            got = {
                datetime.fromisoformat(m["minute"]): {k: m[k] for k in expected[two_ago]}
                for m in rows
            }
            return rows if all(got.get(m) == c for m, c in expected.items()) else None

        rows = await wait_until(counted, what="the ended attempts counted")
        default = (await client.get("/jobs/stats/minutes")).json()["minutes"]
        asked_at = datetime.now(UTC)

    minutes = [datetime.fromisoformat(m["minute"]) for m in rows]
    assert len(minutes) == 10
    assert len(default) == 60
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(minutes))
    assert all(m.tzinfo is not None and m.utcoffset() == timedelta(0) for m in minutes)
    assert minute_of(now) <= minutes[-1] <= minute_of(asked_at), "ends at the current minute"
    for m in rows:
        at = datetime.fromisoformat(m["minute"])
        if at not in expected:
            assert (m["completed"], m["failed"], m["cancelled"]) == (0, 0, 0), m
    last_default = datetime.fromisoformat(default[-1]["minute"])
    assert minute_of(now) <= last_default <= minute_of(asked_at)
