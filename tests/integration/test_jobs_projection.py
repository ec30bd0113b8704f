"""The jobs projection applies a job's events in any order and ends at the same row, and
keeps each event once in the job's timeline, in stream order (real PostgreSQL; events go
through the delivery rules' apply_once, as in the service)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from aggregator.jobs import JobsProjection
from contracts import streams
from contracts.delivery.idempotency import apply_once
from contracts.messages import (
    Counts,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobScheduled,
    JobStarted,
    Message,
    new_id,
)
from contracts.runtime.db import connect
from contracts.runtime.service import Service
from contracts.runtime.settings import Settings
from gateway.jobs import sql as jobs_sql

pytestmark = pytest.mark.integration


def projection() -> JobsProjection:
    service = SimpleNamespace(metrics=SimpleNamespace(registry=CollectorRegistry()))
    return JobsProjection(cast(Service, service))


class _Conn:
    """One connection as the `pool` apply_once wants (acquire() gives it back)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def acquire(self) -> Any:
        conn = self.conn

        class _Held:
            async def __aenter__(self) -> asyncpg.Connection:
                return conn

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Held()


async def new_job(conn: asyncpg.Connection) -> str:
    job_id = new_id()
    await conn.execute(
        """INSERT INTO jobs (id, kind, status, priority, max_attempts, feed_from)
           VALUES ($1, 'copy', 'queued', 3, 3, '1-0')""",
        job_id,
    )
    return job_id


async def apply_one(conn: asyncpg.Connection, entry_id: str, event: Message) -> bool:
    async def effect(c: Any) -> None:
        await projection().apply(event, c)

    return await apply_once(
        cast(asyncpg.Pool, _Conn(conn)), group=streams.AGGREGATOR, message_id=event.id,
        stream="jobs.events", entry_id=entry_id, effect=effect,
    )  # fmt: skip


async def apply_all(
    conn: asyncpg.Connection, events: list[tuple[str, Message]], order: list[int]
) -> asyncpg.Record:
    for i in order:
        await apply_one(conn, *events[i])
    row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", events[0][1].job_id)  # type: ignore[attr-defined]
    assert row is not None
    return row


def one_attempt(job: str) -> list[tuple[str, Message]]:
    c1 = Counts(total=100, done=40, added=40)
    c2 = Counts(total=100, done=80, added=70, already_present=10)
    c3 = Counts(total=100, done=100, added=90, already_present=10)
    return [
        ("10-0", JobStarted(id=new_id(), job_id=job, attempt=1, counts=Counts(total=100))),
        ("11-0", JobProgressed(id=new_id(), job_id=job, attempt=1, counts=c1)),
        ("12-0", JobProgressed(id=new_id(), job_id=job, attempt=1, counts=c2)),
        ("13-0", JobCompleted(id=new_id(), job_id=job, attempt=1, counts=c3)),
    ]


def failed_then_retried(job: str) -> list[tuple[str, Message]]:
    c1, c2 = Counts(total=100, done=50, added=50), Counts(total=100, done=100, added=100)
    return [
        ("10-0", JobScheduled(id=new_id(), job_id=job, attempt=1, counts=Counts(total=100))),
        ("11-0", JobStarted(id=new_id(), job_id=job, attempt=1, counts=Counts(total=100))),
        ("12-0", JobProgressed(id=new_id(), job_id=job, attempt=1, counts=c1)),
        ("13-0", JobFailed(id=new_id(), job_id=job, attempt=1, error="boom", counts=c1)),
        ("20-0", JobStarted(id=new_id(), job_id=job, attempt=2, counts=c1)),
        ("21-0", JobProgressed(id=new_id(), job_id=job, attempt=2, counts=c2)),
        ("22-0", JobCompleted(id=new_id(), job_id=job, attempt=2, counts=c2)),
    ]


async def timeline(conn: asyncpg.Connection, job_id: str) -> list[tuple[object, ...]]:
    rows = await jobs_sql.timeline(conn=conn, job_id=job_id, after=(0, 0), limit=1000)
    return [(*tuple(r)[:5], msgspec.json.decode(r["counts"]), r["error"]) for r in rows]


def expected_timeline(events: list[tuple[str, Message]]) -> list[tuple[object, ...]]:
    """What the timeline should hold for a story: every event, in stream order."""
    status = {"JobScheduled": "scheduled", "JobStarted": "running", "JobProgressed": "running",
              "JobCompleted": "completed", "JobFailed": "failed"}  # fmt: skip
    out = []
    for entry_id, e in events:
        kind = type(e).__name__
        counts = msgspec.structs.asdict(e.counts)  # type: ignore[attr-defined]
        out.append((entry_id, kind, e.attempt, e.at, status[kind], counts,  # type: ignore[attr-defined]
                    getattr(e, "error", None)))  # fmt: skip
    return out


def final(row: asyncpg.Record) -> dict[str, object]:
    keys = ("status", "attempts", "error", "total", "done", "added", "already_present", "feed_from")
    out = {k: row[k] for k in keys}
    out["finished"] = row["finished_at"] is not None
    return out


async def test_started_applied_after_completed_leaves_it_completed(settings: Settings) -> None:
    """Issue 8 item 4: a reclaimed JobStarted applied last set `running` and zeroed counts."""
    conn = await connect(settings)
    try:
        job = await new_job(conn)
        row = await apply_all(conn, one_attempt(job), [1, 2, 3, 0])
    finally:
        await conn.close()
    assert final(row) == {
        "status": "completed", "attempts": 1, "error": None, "total": 100, "done": 100,
        "added": 90, "already_present": 10, "feed_from": "13-0", "finished": True,
    }  # fmt: skip


async def test_an_old_attempts_end_applied_late_does_not_end_the_retry(settings: Settings) -> None:
    conn = await connect(settings)
    try:
        job = await new_job(conn)
        events = failed_then_retried(job)
        row = await apply_all(conn, events, [0, 1, 2, 4, 3])  # JobFailed(1) after JobStarted(2)
    finally:
        await conn.close()
    assert (row["status"], row["attempts"], row["error"], row["done"]) == ("running", 2, None, 50)
    assert row["finished_at"] is None


async def test_scheduled_until_started(settings: Settings) -> None:
    conn = await connect(settings)
    try:
        job = await new_job(conn)
        events = failed_then_retried(job)
        scheduled = await apply_all(conn, events, [0])
        started = await apply_all(conn, events, [1, 0])
    finally:
        await conn.close()
    assert scheduled["status"] == "scheduled"
    assert started["status"] == "running"


@pytest.mark.parametrize("story", [one_attempt, failed_then_retried])
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_order_ends_at_the_same_row(
    settings: Settings, story: Any, data: st.DataObject
) -> None:
    async def run(order: list[int]) -> tuple[dict[str, object], list[tuple[object, ...]]]:
        conn = await connect(settings)
        try:
            job = await new_job(conn)
            events = story(job)
            row = final(await apply_all(conn, events, order))
            kept = await timeline(conn, job)
            assert kept == expected_timeline(events), "every event once, in stream order"
            return row, [k[:3] for k in kept]
        finally:
            await conn.close()

    size = len(story("x"))
    order = data.draw(st.permutations(range(size)), label="order")
    # Redelivery: some events applied twice (the second time changes nothing).
    again = data.draw(st.lists(st.sampled_from(range(size)), max_size=3), label="again")
    in_order, in_order_timeline = asyncio.run(run(list(range(size))))
    shuffled, shuffled_timeline = asyncio.run(run([*order, *again]))
    assert shuffled == in_order
    assert shuffled_timeline == in_order_timeline
    assert in_order["status"] == "completed"
    assert in_order["feed_from"] == story("x")[-1][0]


async def test_an_event_before_its_job_is_kept_once_it_applies(settings: Settings) -> None:
    """JobStarted before JobQueued: refused (nothing kept, not marked applied), then
    redelivered after it; a JobQueued delivered twice is kept once."""
    conn = await connect(settings)
    try:
        job = new_id()
        queued = JobQueued(id=new_id(), job_id=job, kind="copy")
        started = JobStarted(id=new_id(), job_id=job, attempt=1, counts=Counts(total=7))
        with pytest.raises(LookupError):
            await apply_one(conn, "5-1", started)
        assert await timeline(conn, job) == []
        assert await apply_one(conn, "5-0", queued)
        assert not await apply_one(conn, "5-0", queued)
        assert await apply_one(conn, "5-1", started)
        kept = await timeline(conn, job)
    finally:
        await conn.close()
    assert [k[:5] for k in kept] == [
        ("5-0", "JobQueued", 0, queued.at, "queued"),
        ("5-1", "JobStarted", 1, started.at, "running"),
    ]
    assert kept[1][5] == {"total": 7, "done": 0, "added": 0, "already_present": 0, "removed": 0}


def test_stories_are_what_the_mover_publishes() -> None:
    """The events above decode as jobs.events messages (no field the contract lacks)."""
    decoder = streams.JOBS_EVENTS.decoder()
    for _, event in failed_then_retried(str(uuid.uuid4())):
        assert decoder.decode(msgspec.json.encode(event)) == event
