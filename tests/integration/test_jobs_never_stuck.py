"""Issue 8: no job stays queued or running with nothing to move it on, and what a person
sees of a job (its row, its feed) says what happened: a command the mover cannot apply
fails its job with the reason; cancel and retry work on a job never planned; a command
Redis lost is sent again (the job row is an outbox); a job for later shows `scheduled`;
a job's feed goes on after its snapshot and ends after its final event."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import httpx_sse
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.delivery import list_dead
from contracts.messages import JobQueued, MoveCompanies, Selection, derived_id, new_id
from contracts.runtime.settings import Settings
from mover.app import create_app as create_mover
from tests.support.mover_stack import MY_LIST, MoverWorld, mover_world
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REFUSE_PLANNING = """
CREATE FUNCTION refuse_plans() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'planning refused on purpose'; END $$;
CREATE TRIGGER refuse_plans BEFORE INSERT ON move_pages
  FOR EACH ROW EXECUTE FUNCTION refuse_plans();"""


def commands(settings: Settings) -> str:
    return streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name


async def status_is(w: MoverWorld, job_id: str, *wanted: str) -> dict[str, Any] | None:
    r = await w.client.get(f"/jobs/{job_id}")
    job = r.json() if r.status_code == 200 else {}
    return job if job.get("status") in wanted else None


async def feed(
    client: httpx.AsyncClient, url: str, **headers: str
) -> list[httpx_sse.ServerSentEvent]:
    """Every event of an SSE response until the server ends it (fails if it does not)."""
    seen = []
    async with asyncio.timeout(30):
        async with httpx_sse.aconnect_sse(client, "GET", url, headers=headers) as source:
            async for sse in source.aiter_sse():
                if sse.event and sse.event != "message":
                    seen.append(sse)
    return seen


@contextlib.asynccontextmanager
async def mover(settings: Settings) -> AsyncIterator[None]:
    async with create_mover(settings)[0]:
        yield


async def test_a_move_the_mover_cannot_plan_fails_with_the_reason_and_retry_runs_it(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with mover_world(settings, pool) as w:
        target = await w.new_list()
        await pool.execute(REFUSE_PLANNING)
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})

        failed = await wait_until(
            lambda: status_is(w, job["id"], "failed"), timeout=30, what="the job failed"
        )
        events = await feed(w.client, f"/jobs/{job['id']}/events")
        await pool.execute("DROP TRIGGER refuse_plans ON move_pages")
        assert (await w.client.post(f"/jobs/{job['id']}/cancel")).status_code == 409
        retried = await w.client.post(f"/jobs/{job['id']}/retry")

        async def retry_finished() -> dict[str, Any] | None:  # not the first attempt's end
            found = await status_is(w, job["id"], "completed", "failed")
            return found if found and found["attempts"] >= 2 else None

        done = await wait_until(retry_finished, what="the retry finished")
        dead = await list_dead(redis, commands(settings))

    assert "MoveCompanies could not be applied" in failed["error"]
    assert "planning refused on purpose" in failed["error"]
    assert failed["finished_at"] is not None
    assert [e.event for e in events] == ["snapshot"], "a final job's feed ends at once"
    assert retried.status_code == 202
    assert (done["status"], done["added"], done["attempts"], done["error"]) == (
        "completed", 500, 2, None,
    )  # fmt: skip
    assert await w.members(target) == set(range(1, 501)) | await w.members(target)
    assert len(dead) == 1


async def test_an_id_beyond_int64_in_a_command_fails_its_job_and_its_feed_says_so(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """Issue 8 item 2, from behind the gateway (which refuses such ids at the edge now)."""
    async with mover_world(settings, pool, in_process_movers=0) as w:
        target = await w.new_list()
        job_id = new_id()
        command = MoveCompanies(
            id=job_id, job_id=job_id, source=MY_LIST, target=target, mode="copy",
            selection=Selection(all=True, exclude=[2**63]),
        )  # fmt: skip
        queued = JobQueued(id=derived_id(job_id, "queued"), job_id=job_id, kind="copy")
        jobs_events = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
        await codec.publish(redis, jobs_events, queued)
        await wait_until(lambda: status_is(w, job_id, "queued"), what="the job queued")
        following = asyncio.create_task(feed(w.client, f"/jobs/{job_id}/events"))
        await codec.publish(redis, commands(settings), command)
        async with mover(settings):
            failed = await wait_until(
                lambda: status_is(w, job_id, "failed"), timeout=30, what="the job failed"
            )
            events = await following
            retried = await w.client.post(f"/jobs/{job_id}/retry")
            again = await wait_until(
                lambda: _attempt(w, job_id, 2, "failed"), timeout=30, what="the retry failed"
            )

    assert "out of int64 range" in failed["error"] or "out of range" in failed["error"]
    assert [e.event for e in events] == ["snapshot", "JobFailed"], "the feed ends after it"
    assert json.loads(events[-1].data)["attempt"] == 1
    assert retried.status_code == 202
    assert "RetryJob could not be applied" in again["error"]


async def _attempt(w: MoverWorld, job_id: str, attempt: int, status: str) -> dict[str, Any] | None:
    job = await w.job(job_id)
    return job if (job["attempts"], job["status"]) == (attempt, status) else None


async def test_cancel_before_the_mover_planned_it_then_retry_runs_it(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with mover_world(settings, pool, in_process_movers=0) as w:
        target = await w.new_list()
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection=[1, 2, 3])
        # The MoveCompanies is gone (lost); the cancel is the first the mover hears of it.
        ((entry_id, _),) = await redis.xrange(commands(settings), count=1)
        await redis.xdel(commands(settings), entry_id)
        cancel = await w.client.post(f"/jobs/{job['id']}/cancel")
        async with mover(settings):
            cancelled = await wait_until(
                lambda: status_is(w, job["id"], "cancelled"), what="the job cancelled"
            )
            retried = await w.client.post(f"/jobs/{job['id']}/retry")
            done = await wait_until(
                lambda: status_is(w, job["id"], "completed"), what="the retried job done"
            )

    assert cancel.status_code == 202
    assert cancelled["attempts"] == 1
    assert retried.status_code == 202
    assert (done["added"], done["attempts"]) == (3, 2)
    assert await w.members(target) == {1, 2, 3}


async def test_a_command_redis_lost_is_sent_again_and_the_job_completes(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    settings = msgspec.structs.replace(settings, job_replan_after_s=1.0)
    async with mover_world(settings, pool, in_process_movers=0) as w:
        target = await w.new_list()
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})
        ((entry_id, _),) = await redis.xrange(commands(settings), count=1)
        await redis.xdel(commands(settings), entry_id)  # Redis lost it after the 202
        async with mover(settings):
            done = await wait_until(
                lambda: status_is(w, job["id"], "completed"), what="the job completed"
            )
        sent = await redis.xrange(commands(settings))

    assert done["added"] == 500
    assert len(sent) == 1, "one gateway sends it again once, not once per sweep"


async def scheduled_copy(w: MoverWorld, not_before: datetime) -> dict[str, Any]:
    """A copy of companies 1 and 2 for `not_before`, once it shows `scheduled`."""
    target = await w.new_list()
    job = await w.move(
        source=MY_LIST, target=target, mode="copy", selection=[1, 2],
        not_before=not_before.isoformat(),
    )  # fmt: skip
    await wait_until(lambda: status_is(w, job["id"], "scheduled"), what="scheduled")
    return job


async def test_a_job_for_later_shows_scheduled_then_runs_when_due(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    not_before = datetime.now(UTC) + timedelta(seconds=3)
    async with mover_world(settings, pool) as w:
        job = await scheduled_copy(w, not_before)
        listed = (await w.client.get("/jobs", params={"status": "scheduled"})).json()
        stats = (await w.client.get("/jobs/stats")).json()
        done = await wait_until(lambda: status_is(w, job["id"], "completed"), what="done")

    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert stats["by_status"]["scheduled"] == 1
    assert datetime.fromisoformat(done["started_at"]) >= not_before - timedelta(seconds=1)


async def test_a_retried_job_whose_start_time_is_ahead_waits_for_it_again(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Cancelled while scheduled, then retried before its time: scheduled again (a new
    attempt), and it runs only when its `not_before` comes."""
    not_before = datetime.now(UTC) + timedelta(seconds=4)
    async with mover_world(settings, pool) as w:
        job = await scheduled_copy(w, not_before)
        assert (await w.client.post(f"/jobs/{job['id']}/cancel")).status_code == 202
        await wait_until(lambda: status_is(w, job["id"], "cancelled"), what="cancelled")
        assert (await w.client.post(f"/jobs/{job['id']}/retry")).status_code == 202
        again = await wait_until(
            lambda: status_is(w, job["id"], "scheduled", "running", "completed"), what="retried"
        )
        done = await wait_until(lambda: status_is(w, job["id"], "completed"), what="done")

    assert (again["status"], again["attempts"]) == ("scheduled", 2)
    assert datetime.fromisoformat(done["started_at"]) >= not_before - timedelta(seconds=1)
    assert done["added"] == 2


async def test_a_live_feed_ends_after_the_final_event(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with mover_world(settings, pool, slow_ms=1) as w:
        target = await w.new_list()
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})
        events = await feed(w.client, f"/jobs/{job['id']}/events")
        snapshot = json.loads(events[0].data)
        resumed = await feed(
            w.client, f"/jobs/{job['id']}/events", **{"Last-Event-ID": events[1].id}
        )

    assert events[-1].event == "JobCompleted"
    kinds = [e.event for e in events]
    assert kinds.count("JobCompleted") == 1
    assert "JobQueued" not in kinds, "nothing the snapshot already holds is replayed"
    assert snapshot["status"] in ("queued", "running")
    assert [e.id for e in resumed[1:]] == [e.id for e in events[2:]]
