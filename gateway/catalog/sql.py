"""SQL for companies, collections and memberships; each function takes `conn=`.

A search `q` matches names that contain it, ignoring case, with `%`, `_` and `\\`
taken literally (gateway.frontdoor.fields.like_pattern, `ESCAPE '\\'`). A list's name is unique
as `lower(btrim(name))` (migration 0006).
"""

from __future__ import annotations

import uuid

import asyncpg

from contracts.runtime.db import Executor
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


async def named(*, conn: Executor, name: str) -> asyncpg.Record | None:
    """The collection whose name is `name`, case and surrounding spaces aside."""
    return await conn.fetchrow(
        "SELECT id, name FROM collections WHERE lower(btrim(name)) = lower(btrim($1))", name
    )


def _pattern(q: str | None) -> str | None:
    return like_pattern(q.lower()) if q else None


async def missing_for_move(
    *, conn: Executor, collections: list[uuid.UUID], companies: list[int]
) -> tuple[list[uuid.UUID], list[int]]:
    """In one round trip: which of `collections` and of `companies` do not exist."""
    row = await conn.fetchrow(
        """SELECT
             ARRAY(SELECT x FROM unnest($1::uuid[]) x
                   WHERE NOT EXISTS (SELECT 1 FROM collections c WHERE c.id = x)) AS lists,
             ARRAY(SELECT w FROM unnest($2::bigint[]) w
                   WHERE NOT EXISTS (SELECT 1 FROM companies c WHERE c.id = w) ORDER BY w)
               AS companies""",
        collections, companies,
    )  # fmt: skip
    assert row is not None
    return list(row["lists"]), list(row["companies"])


async def members(
    *, conn: Executor, collection_id: uuid.UUID, q: str | None, offset: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    """A page of the collection's companies in company id order, and how many match."""
    where = "m.collection_id = $1 AND ($2::text IS NULL OR lower(c.name) LIKE $2 ESCAPE '\\')"
    pattern = _pattern(q)
    rows = await conn.fetch(
        f"""SELECT c.id, c.name, m.added_at FROM memberships m
            JOIN companies c ON c.id = m.company_id
            WHERE {where} ORDER BY m.company_id OFFSET $3 LIMIT $4""",
        collection_id, pattern, offset, limit,
    )  # fmt: skip
    if pattern is None:
        total = await conn.fetchval(
            "SELECT count(*) FROM memberships m WHERE m.collection_id = $1", collection_id
        )
    else:
        total = await conn.fetchval(
            f"""SELECT count(*) FROM memberships m JOIN companies c ON c.id = m.company_id
                WHERE {where}""",
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
