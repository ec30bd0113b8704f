"""SQL for companies, collections and memberships; each function takes `conn=`.

A search `q` matches names that contain it, ignoring case, with `%`, `_` and `\\`
taken literally (gateway.frontdoor.fields.like_pattern, `ESCAPE '\\'`). A list's name is unique
as `lower(btrim(name))` (migration 0006).
"""

from __future__ import annotations

import uuid

import asyncpg

from contracts.runtime.db import DbConnection, Executor
from gateway.frontdoor.fields import like_pattern

COLLECTION = """SELECT c.id, c.name, c.created_at,
    (SELECT count(*) FROM memberships m WHERE m.collection_id = c.id) AS companies
    FROM collections c"""


async def collections(
    *, conn: Executor, offset: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"{COLLECTION} ORDER BY c.created_at, c.id OFFSET $1 LIMIT $2", offset, limit
    )
    total = await conn.fetchval("SELECT count(*) FROM collections")
    return rows, int(total)


async def collection(*, conn: Executor, collection_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{COLLECTION} WHERE c.id = $1", collection_id)


async def create_collection(*, conn: Executor, name: str) -> asyncpg.Record | None:
    """The new collection, or None if one of that name (as `named` finds it) exists."""
    return await conn.fetchrow(
        """INSERT INTO collections (id, name) VALUES ($1, $2)
           ON CONFLICT (lower(btrim(name))) DO NOTHING
           RETURNING id, name, created_at, 0::bigint AS companies""",
        uuid.uuid4(),
        name,
    )


async def rename_collection(
    *, conn: Executor, collection_id: uuid.UUID, name: str
) -> asyncpg.Record | None:
    """The collection renamed, or None if it does not exist. Raises
    asyncpg.UniqueViolationError if another list has that name (as `named` finds it)."""
    return await conn.fetchrow(
        """UPDATE collections c SET name = $2 WHERE c.id = $1
           RETURNING c.id, c.name, c.created_at,
               (SELECT count(*) FROM memberships m WHERE m.collection_id = c.id) AS companies""",
        collection_id, name,
    )  # fmt: skip


async def named(*, conn: Executor, name: str) -> asyncpg.Record | None:
    """The collection whose name is `name`, case and surrounding spaces aside."""
    return await conn.fetchrow(
        "SELECT id, name FROM collections WHERE lower(btrim(name)) = lower(btrim($1))", name
    )


def _pattern(q: str | None) -> str | None:
    return like_pattern(q.lower()) if q else None


async def members(
    *, conn: Executor, collection_id: uuid.UUID, q: str | None, offset: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    """A page of the collection's companies in company id order, and how many match.

    Without a search the page is cut from the memberships alone (their key is in
    company id order) before the 50 names are joined, so a page deep in a 50,000-company
    list reads the index up to it and 50 companies, not 50,000 joined rows; the total
    is an index count. With a search every member's name is read once, and the total
    comes with the page (a window count), not from a second scan.
    """
    pattern = _pattern(q)
    if pattern is None:
        rows = await conn.fetch(
            """SELECT c.id, c.name, p.added_at
               FROM (SELECT company_id, added_at FROM memberships WHERE collection_id = $1
                     ORDER BY company_id OFFSET $2 LIMIT $3) p
               JOIN companies c ON c.id = p.company_id
               ORDER BY p.company_id""",
            collection_id, offset, limit,
        )  # fmt: skip
        total = await conn.fetchval(
            "SELECT count(*) FROM memberships WHERE collection_id = $1", collection_id
        )
        return rows, int(total)
    where = "m.collection_id = $1 AND lower(c.name) LIKE $2 ESCAPE '\\'"
    rows = await conn.fetch(
        f"""SELECT c.id, c.name, m.added_at, count(*) OVER () AS matching
            FROM memberships m JOIN companies c ON c.id = m.company_id
            WHERE {where} ORDER BY m.company_id OFFSET $3 LIMIT $4""",
        collection_id, pattern, offset, limit,
    )  # fmt: skip
    if rows:
        return rows, int(rows[0]["matching"])
    total = await conn.fetchval(  # past the last page: the total alone
        f"SELECT count(*) FROM memberships m JOIN companies c ON c.id = m.company_id WHERE {where}",
        collection_id, pattern,
    )  # fmt: skip
    return rows, int(total)


async def companies(
    *, conn: Executor, q: str | None, offset: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    pattern = _pattern(q)
    where = "($1::text IS NULL OR lower(name) LIKE $1 ESCAPE '\\')"
    rows = await conn.fetch(
        f"SELECT id, name, created_at FROM companies WHERE {where} ORDER BY id OFFSET $2 LIMIT $3",
        pattern, offset, limit,
    )  # fmt: skip
    total = await conn.fetchval(f"SELECT count(*) FROM companies WHERE {where}", pattern)
    return rows, int(total)


# --- demo data and the slow-database switch (catalog/demo.py)  ----------------------------


async def analyze_catalog(*, conn: DbConnection) -> None:
    """Fresh statistics after a bulk load, so the planner knows a list's size."""
    await conn.execute("ANALYZE companies, collections, memberships")


async def add_companies(*, conn: DbConnection, count: int, names: list[str]) -> None:
    """Companies 1..count, named after `names` in turn (those already there stay)."""
    await conn.execute(
        """INSERT INTO companies (id, name)
           SELECT g, ($2::text[])[1 + g % cardinality($2::text[])] || ' ' || g
           FROM generate_series(1, $1) g ON CONFLICT (id) DO NOTHING""",
        count, names,
    )  # fmt: skip


async def add_collection(*, conn: DbConnection, collection_id: uuid.UUID, name: str) -> None:
    await conn.execute(
        "INSERT INTO collections (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        collection_id, name,
    )  # fmt: skip


async def add_members(
    *, conn: DbConnection, collection_id: uuid.UUID, first: int, last: int, companies: int
) -> None:
    """Companies first..last (those that exist, up to `companies`) into the collection."""
    await conn.execute(
        """INSERT INTO memberships (collection_id, company_id)
           SELECT $1, g FROM generate_series($2::bigint, $3::bigint) g
           WHERE g <= $4 ON CONFLICT DO NOTHING""",
        collection_id, first, last, companies,
    )  # fmt: skip


async def collection_sizes(*, conn: DbConnection) -> dict[str, int]:
    """Each collection's name and how many companies it holds."""
    rows = await conn.fetch(
        "SELECT c.name, count(m.*) AS n FROM collections c LEFT JOIN memberships m "
        "ON m.collection_id = c.id GROUP BY c.name ORDER BY c.name"
    )
    return {r["name"]: r["n"] for r in rows}


async def drop_throttle(*, conn: DbConnection) -> None:
    await conn.execute("DROP TRIGGER IF EXISTS memberships_throttle ON memberships")


async def pause_throttle(*, conn: DbConnection) -> bool:
    """Disable the throttle trigger, if there is one (undone at the end of the caller's
    transaction if it does not call `resume_throttle`); whether there was one."""
    exists = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM pg_trigger
                          WHERE tgname = 'memberships_throttle'
                            AND tgrelid = 'memberships'::regclass)"""
    )
    if exists:
        await conn.execute("ALTER TABLE memberships DISABLE TRIGGER memberships_throttle")
    return bool(exists)


async def resume_throttle(*, conn: DbConnection) -> None:
    await conn.execute("ALTER TABLE memberships ENABLE TRIGGER memberships_throttle")


async def add_throttle(*, conn: DbConnection, delay_ms: int) -> None:
    """A trigger that sleeps `delay_ms` per inserted membership (DDL takes no parameters;
    `delay_ms` is a number)."""
    await conn.execute(
        f"""CREATE OR REPLACE FUNCTION memberships_throttle() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({delay_ms / 1000.0}); RETURN NEW; END $$"""
    )
    await conn.execute(
        """CREATE TRIGGER memberships_throttle BEFORE INSERT ON memberships
           FOR EACH ROW EXECUTE FUNCTION memberships_throttle()"""
    )
