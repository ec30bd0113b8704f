"""Jobs on a slow database: cancel, retry after a failure, follow over SSE, lanes."""

from __future__ import annotations

import json

import asyncpg
import httpx
import httpx_sse
import pytest
import redis.asyncio as aioredis

from contracts.runtime.settings import Settings
from tests.support.mover_stack import MY_LIST, chunks_idle, mover_world
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_cancel_stops_new_chunks_and_keeps_finished_ones(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with mover_world(settings, pool, companies=4000, my_list=3000, slow_ms=5) as w:
        target = await w.new_list()
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})

        async def some_progress() -> bool:
            return (await w.job(job["id"]))["done"] > 0

        await wait_until(some_progress, what="the first chunks applied")
        cancelled = await w.client.post(f"/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 202
        final = await w.finished(job["id"])
        await wait_until(
            lambda: chunks_idle(redis, settings), timeout=60, what="chunks under way finished"
        )

        async def settled() -> dict[str, object] | None:
            now = await w.job(job["id"])
            return now if len(await w.members(target)) == now["added"] else None

        settled_job = await wait_until(settled, what="the job's counts match what was applied")

    assert final["status"] == "cancelled"
    assert settled_job["status"] == "cancelled"
    assert 0 < settled_job["added"] < 3000, "cancel should stop the job part-way"
    assert settled_job["done"] == settled_job["added"]


async def test_failed_chunk_fails_the_job_and_retry_redoes_only_what_failed(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with mover_world(settings, pool) as w:
        target = await w.new_list()
        await w.refuse_250(target)
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})
        failed = await w.finished(job["id"])
        assert failed["status"] == "failed"
        assert "company 250 refused on purpose" in failed["error"]
        assert "failed 3 times" in failed["error"]
        assert 0 < failed["added"] < 500
        assert 250 not in await w.members(target)

        done_in_run_1 = {
            r["page"]
            for r in await pool.fetch(
                "SELECT page FROM move_pages WHERE job_id = $1 AND status = 'done'", job["id"]
            )
        }
        failed_page = await pool.fetchval(
            "SELECT page FROM move_pages WHERE job_id = $1 AND 250 = ANY (company_ids)", job["id"]
        )
        await pool.execute("DROP TRIGGER refuse_250 ON memberships")
        retried = await w.client.post(f"/jobs/{job['id']}/retry")
        assert retried.status_code == 202

        async def completed() -> dict[str, object] | None:
            now = await w.job(job["id"])
            return now if now["status"] == "completed" else None

        done = await wait_until(completed, what="the retried job completed")
        run_2 = {
            r["page"]
            for r in await pool.fetch(
                "SELECT page FROM move_pages WHERE job_id = $1 AND released_run = 2", job["id"]
            )
        }

    assert (done["added"], done["total"], done["attempts"]) == (500, 500, 2)
    assert failed_page in run_2
    assert done_in_run_1
    assert not done_in_run_1 & run_2, "pages finished in the first run are not done again"
    assert await w.members(target) == set(range(1, 501))


def entry(entry_id: str) -> tuple[int, ...]:
    return tuple(map(int, entry_id.split("-")))


async def read_events(client: httpx.AsyncClient, url: str, **headers: str) -> list[dict[str, str]]:
    """Events of a job feed until its final event."""
    seen: list[dict[str, str]] = []
    async with httpx_sse.aconnect_sse(client, "GET", url, headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            seen.append({"id": sse.id, "event": sse.event, "data": sse.data})
            if sse.event in ("JobCompleted", "JobFailed", "JobCancelled"):
                return seen
    raise AssertionError(f"the feed ended without a final event: {seen}")


async def test_follow_right_after_202_misses_nothing_and_resumes_exactly(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with mover_world(settings, pool, slow_ms=1) as w:
        target = await w.new_list()
        job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})
        events = await read_events(w.client, job["links"]["events"])
        kinds = [e["event"] for e in events]
        assert kinds[0] == "snapshot"
        snapshot = json.loads(events[0]["data"])
        assert snapshot["id"] == job["id"]
        # The feed goes on after the snapshot (issue 8): JobStarted only if it was not in it.
        if snapshot["status"] == "queued":
            assert kinds[1] == "JobStarted"
        else:
            assert "JobStarted" not in kinds
        assert all(entry(e["id"]) > entry(events[0]["id"]) for e in events[1:]), "only after it"
        assert kinds[-1] == "JobCompleted"
        assert json.loads(events[-1]["data"])["counts"]["added"] == 500
        ids = [e["id"] for e in events[1:]]
        assert ids == sorted(ids, key=entry)
        assert len(set(ids)) == len(ids)

        resumed = await read_events(w.client, job["links"]["events"], **{"Last-Event-ID": ids[0]})

    assert [e["id"] for e in resumed[1:]] == ids[1:]


async def test_small_job_finishes_while_a_large_one_runs(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with mover_world(settings, pool, companies=3000, my_list=2000, slow_ms=10) as w:
        big_target, small_target = await w.new_list("big"), await w.new_list("small")
        big = await w.move(source=MY_LIST, target=big_target, mode="copy", selection={"all": True})

        async def big_started() -> bool:
            return (await w.job(big["id"]))["status"] == "running"

        await wait_until(big_started, what="the large job running")
        small = await w.move(source=MY_LIST, target=small_target, mode="copy", selection=[1, 2, 3])
        small_done = await w.finished(small["id"])
        big_then = await w.job(big["id"])
        big_done = await w.finished(big["id"], within_s=60)

    assert small_done["status"] == "completed"
    assert small_done["added"] == 3
    assert big_then["status"] == "running", "the small job should not wait for the large one"
    assert big_done["added"] == 2000
