"""A list's companies a page at a time, with and without a search: the rows and the
total equal what a plain reading of the tables says, on every page and past the last
(gateway/catalog/sql.py `members`, which the API's and the console's grids read)."""

from __future__ import annotations

import asyncpg
import pytest

from gateway.catalog import demo, sql

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("q", [None, "7", "Acme", "acme 1", "%", "_", "zzz"])
async def test_every_page_is_what_the_tables_say(pool: asyncpg.Pool, q: str | None) -> None:
    async with pool.acquire() as conn:
        await demo.seed(conn, companies=1_000, my_list=500, liked=10, ignore=50)
    list_id = await pool.fetchval("SELECT id FROM collections WHERE name = 'My List'")
    expected = [
        (r["id"], r["name"])
        for r in await pool.fetch(
            """SELECT c.id, c.name FROM memberships m JOIN companies c ON c.id = m.company_id
               WHERE m.collection_id = $1 ORDER BY c.id""",
            list_id,
        )
        if q is None or q.lower() in r["name"].lower()
    ]
    for offset in (0, 50, 450, 480, 500, 950):
        rows, total = await sql.members(conn=pool, collection_id=list_id, q=q, offset=offset,
                                        limit=50)  # fmt: skip
        assert total == len(expected), (q, offset)
        assert [(r["id"], r["name"]) for r in rows] == expected[offset : offset + 50], (q, offset)
        assert all(r["added_at"] is not None for r in rows)


async def test_seeding_a_slow_database_is_fast_and_leaves_it_slow(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await demo.slow_db(conn, on=True, delay_ms=1_000)  # 2,000 rows would take 33 min
        counts = await demo.seed(conn, companies=2_000, my_list=1_000, liked=10, ignore=50)
        assert counts["My List"] == 1_000
        enabled = await conn.fetchval(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'memberships_throttle'"
        )
        assert enabled == b"O"  # still there and on ("char" O: origin), the next insert sleeps
