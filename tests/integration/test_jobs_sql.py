"""The queued row of a job, when the aggregator's projection writes it at the same moment."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from gateway.jobs import sql as jobs_sql
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_insert_queued_returns_the_row_another_transaction_committed_meanwhile(
    pool: asyncpg.Pool,
) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as other:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            """INSERT INTO jobs (id, kind, status, priority, max_attempts, source, target)
               VALUES ('j-race', 'copy', 'queued', 3, 3, $1, $2)""",
            source,
            target,
        )
        # The gateway's insert waits for the uncommitted row; its snapshot predates it.
        insert = jobs_sql.insert_queued(
            conn=pool, job_id="j-race", kind="copy", priority=3, max_attempts=3,
            not_before=None, source=source, target=target, params={}, feed_from="1-0",
        )  # fmt: skip
        gateway = asyncio.create_task(insert)

        async def blocked() -> bool:
            waiting = await pool.fetchval(  # not `other`: in a transaction it sees one snapshot
                """SELECT count(*) FROM pg_stat_activity
                   WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO jobs%'"""
            )
            return bool(waiting)

        await wait_until(blocked, what="the gateway's insert waiting on the row")
        await tx.commit()
        row = await asyncio.wait_for(gateway, timeout=10)

    assert row["id"] == "j-race"
    assert row["status"] == "queued"
