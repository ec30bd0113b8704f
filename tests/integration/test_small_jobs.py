"""Small jobs take the short path (mover/short.py): applied in their command's own
transaction, with every rule of the chunked path (counts, redelivery, cancel, start time)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import CancelJob, JobQueued, MoveCompanies, Selection, new_id
from contracts.runtime.settings import Settings
from tests.support.mover_stack import MY_LIST, MoverWorld, mover_world
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[MoverWorld]:
    async with mover_world(settings, pool) as w:
        yield w


def _name(settings: Settings, spec: streams.StreamSpec) -> str:
    return spec.prefixed(settings.stream_prefix).name


async def chunks_sent(redis: aioredis.Redis, settings: Settings) -> int:
    """Chunks ever released on either lane."""
    lanes = (streams.MOVER_CHUNKS, streams.MOVER_EXPRESS)
    return sum([int(await redis.xlen(_name(settings, spec))) for spec in lanes])


async def job_events(redis: aioredis.Redis, settings: Settings, job_id: str) -> list[Any]:
    decoder = streams.JOBS_EVENTS.decoder()
    entries = await redis.xrange(_name(settings, streams.JOBS_EVENTS))
    events = [decoder.decode(fields[codec.DATA_FIELD]) for _, fields in entries]
    return [e for e in events if e.job_id == job_id]


async def commands_done(redis: aioredis.Redis, settings: Settings) -> bool:
    """Every entry of mover.commands read and acknowledged by the mover."""
    name = _name(settings, streams.MOVER_COMMANDS)
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(name)}
    group: dict[str, Any] = groups.get(streams.MOVER) or {}
    return bool(group) and group["pending"] == 0 and group.get("lag") == 0


async def test_small_copy_and_move_complete_with_exact_counts_and_no_chunk(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await world.new_list()
    await world.pool.execute(  # 3 of the 10 are there already
        "INSERT INTO memberships (collection_id, company_id) SELECT $1, generate_series(1, 3)",
        uuid.UUID(target),
    )
    copied = await world.finished(
        (await world.move(source=MY_LIST, target=target, mode="copy",
                          selection=list(range(1, 11))))["id"]
    )  # fmt: skip
    other = await world.new_list("Other")
    moved = await world.finished(
        (await world.move(source=target, target=other, mode="move", selection=[1, 2, 9]))["id"]
    )

    assert (copied["status"], copied["total"], copied["done"]) == ("completed", 10, 10)
    assert (copied["added"], copied["already_present"], copied["removed"]) == (7, 3, 0)
    assert copied["attempts"] == 1
    assert copied["started_at"] <= copied["finished_at"]
    assert (moved["status"], moved["added"], moved["removed"]) == ("completed", 3, 3)
    assert await world.members(target) == set(range(3, 11)) - {9}
    assert await world.members(other) == {1, 2, 9}
    assert await chunks_sent(redis, settings) == 0, "one page: applied by its command"
    types = [type(e).__name__ for e in await job_events(redis, settings, copied["id"])]
    assert types == ["JobQueued", "JobStarted", "JobCompleted"]


async def test_a_job_of_two_pages_still_goes_as_chunks(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await world.new_list()
    ids = list(range(1, settings.mover_page_size + 2))  # one row past a page
    job = await world.finished(
        (await world.move(source=MY_LIST, target=target, mode="copy", selection=ids))["id"]
    )

    assert (job["status"], job["added"]) == ("completed", len(ids))
    assert await chunks_sent(redis, settings) >= 2


async def test_redelivered_command_applies_nothing_twice_and_says_the_same_again(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await world.new_list()
    job = await world.finished(
        (await world.move(source=MY_LIST, target=target, mode="copy", selection=[5, 6, 7]))["id"]
    )
    before = await job_events(redis, settings, job["id"])
    row = await world.pool.fetchrow("SELECT * FROM move_jobs WHERE job_id = $1", job["id"])
    # The command again, under its id (as the gateway's outbox sends it, or a reclaim).
    commands = _name(settings, streams.MOVER_COMMANDS)
    entries: list[Any] = await redis.xrange(commands)
    [(_, fields)] = [e for e in entries if job["id"].encode() in e[1][codec.DATA_FIELD]]
    await redis.xadd(commands, fields)
    await wait_until(lambda: commands_done(redis, settings), timeout=20, what="command handled")

    async def said_again() -> list[Any]:
        events = await job_events(redis, settings, job["id"])
        return events if len(events) == 2 * len(before) - 1 else []

    after = await wait_until(said_again, timeout=20, what="the job's events said again")
    assert await world.members(target) == {5, 6, 7}
    assert await world.pool.fetchrow("SELECT * FROM move_jobs WHERE job_id = $1", job["id"]) == row
    ids = Counter(e.id for e in after if type(e).__name__ != "JobQueued")
    assert sorted(ids.values()) == [2, 2], "JobStarted and JobCompleted, each twice, same id"
    again = await world.job(job["id"])
    assert (again["status"], again["added"], again["done"]) == ("completed", 3, 3)


async def test_scheduled_small_job_waits_for_its_time_and_cancel_before_it_runs(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    target = await world.new_list()
    soon = datetime.now(UTC) + timedelta(seconds=3)
    later = datetime.now(UTC) + timedelta(hours=1)
    waits = await world.move(source=MY_LIST, target=target, mode="copy", selection=[1, 2],
                             not_before=soon.isoformat())  # fmt: skip
    cancelled = await world.move(source=MY_LIST, target=target, mode="copy", selection=[3, 4],
                                 not_before=later.isoformat())  # fmt: skip

    async def scheduled() -> bool:
        return bool((await world.job(cancelled["id"]))["status"] == "scheduled")

    await wait_until(scheduled, timeout=20, what="the later job scheduled")
    assert (await world.job(waits["id"]))["status"] == "scheduled"
    assert await world.members(target) == set(), "a scheduled job is not run at once"
    r = await world.client.post(f"/jobs/{cancelled['id']}/cancel")
    assert r.status_code == 202, r.text
    ran = await world.finished(waits["id"], within_s=30)
    gone = await world.finished(cancelled["id"], within_s=30)

    assert (ran["status"], ran["added"]) == ("completed", 2)
    assert datetime.fromisoformat(ran["started_at"]) >= soon
    assert (gone["status"], gone["added"], gone["started_at"]) == ("cancelled", 0, None)
    assert await world.members(target) == {1, 2}
    assert await chunks_sent(redis, settings) == 0


async def test_cancel_racing_its_scheduled_move_always_cancels(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    """CancelJob and the MoveCompanies of a job scheduled for later, side by side in one
    read (commands are handled several at once): the job ends cancelled whichever
    statement comes first, and never runs."""
    target = await world.new_list()
    commands = _name(settings, streams.MOVER_COMMANDS)
    events = _name(settings, streams.JOBS_EVENTS)
    later = datetime.now(UTC) + timedelta(hours=1)
    jobs = [new_id() for _ in range(24)]
    for i, job_id in enumerate(jobs):
        move = MoveCompanies(
            id=new_id(), job_id=job_id, source=MY_LIST, target=target, mode="copy",
            selection=Selection(ids=[100 + i]), not_before=later,
        )  # fmt: skip
        queued = JobQueued(
            id=new_id(), job_id=job_id, kind="copy", source=MY_LIST, target=target,
            not_before=later,
        )  # fmt: skip
        await codec.publish(redis, events, queued)
        cancel = CancelJob(id=new_id(), job_id=job_id)
        first, second = (cancel, move) if i % 2 else (move, cancel)
        async with redis.pipeline(transaction=True) as pipe:
            for message in (first, second):
                pipe.xadd(commands, codec.entry_fields(message))  # type: ignore[arg-type]
            await pipe.execute()
    finished = [await world.finished(job_id) for job_id in jobs]
    await wait_until(lambda: commands_done(redis, settings), timeout=20, what="commands handled")

    assert {j["status"] for j in finished} == {"cancelled"}
    rows = await world.pool.fetch(
        "SELECT status FROM move_jobs WHERE job_id = ANY ($1::text[])", jobs
    )
    assert [r["status"] for r in rows] == ["cancelled"] * len(jobs)
    assert await world.members(target) == set()


async def test_small_job_that_postgres_refuses_fails_by_its_attempts_and_retries(
    world: MoverWorld, redis: aioredis.Redis, settings: Settings
) -> None:
    """The short try rolls back to its savepoint and counts as attempt 1; the job goes on
    as a chunk (attempt 2), fails with the error, and a retry (on the short path again)
    completes it."""
    target = await world.new_list()
    await world.refuse_250(target)
    job = await world.move(source=MY_LIST, target=target, mode="copy",
                           selection=[249, 250, 251], max_attempts=2)  # fmt: skip
    failed = await world.finished(job["id"])
    chunks = await chunks_sent(redis, settings)
    once = await world.move(source=MY_LIST, target=target, mode="copy", selection=[250],
                            max_attempts=1)  # fmt: skip
    failed_once = await world.finished(once["id"])
    await world.pool.execute("DROP TRIGGER refuse_250 ON memberships")
    r = await world.client.post(f"/jobs/{job['id']}/retry")
    assert r.status_code == 202, r.text

    async def second_attempt_done() -> dict[str, Any] | None:
        again = await world.job(job["id"])
        return again if again["attempts"] == 2 and again["status"] == "completed" else None

    done = await wait_until(second_attempt_done, timeout=30, what="the retry completed")
    assert failed["status"] == "failed"
    assert "company 250 refused on purpose" in failed["error"]
    assert (failed["added"], failed["done"]) == (0, 0), "nothing of the refused attempt stays"
    assert chunks == 1, "the short try was attempt 1, the chunk attempt 2 (max_attempts 2)"
    assert (failed_once["status"], failed_once["attempts"]) == ("failed", 1)
    assert "company 250 refused on purpose" in failed_once["error"]
    assert (done["added"], done["done"], done["total"]) == (3, 3, 3)
    assert await world.members(target) == {249, 250, 251}
    assert await chunks_sent(redis, settings) == chunks, "the retry went the short path"
