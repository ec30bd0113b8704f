"""A move accepted while the aggregator's projection writes its row at the same moment:
the gateway writes its own outbox only, so nothing waits on the projection's row."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from contracts import codec
from contracts.messages import MoveCompanies, Selection
from gateway.jobs import sql as jobs_sql

pytestmark = pytest.mark.integration


async def test_accept_answers_while_the_projection_writes_the_row_meanwhile(
    pool: asyncpg.Pool,
) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    command = MoveCompanies(
        id="j-race", job_id="j-race", source=str(source), target=str(target), mode="copy",
        selection=Selection(ids=[1]),
    )  # fmt: skip
    async with pool.acquire() as other:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            """INSERT INTO jobs (id, kind, status, priority, max_attempts, source, target)
               VALUES ('j-race', 'copy', 'queued', 3, 3, $1, $2)""",
            source,
            target,
        )
        # The projection's row is not committed; the gateway does not wait for it.
        accept = jobs_sql.accept(
            conn=pool, job_id="j-race", command=codec.encode(command).decode(),
            queued_entry="1-0", accepted_at=command.at,
        )  # fmt: skip
        row = await asyncio.wait_for(accept, timeout=10)
        await tx.commit()
    projected = await jobs_sql.job(conn=pool, job_id="j-race")

    assert row["id"] == "j-race"
    assert row["status"] == "queued"
    assert (row["source"], row["target"], row["feed_from"]) == (source, target, "1-0")
    assert projected is not None
    assert projected["feed_from"] == "0-0", "the projection's row, once it is there"
