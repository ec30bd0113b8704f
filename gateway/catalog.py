"""Companies and collections (lists) over HTTP.

GET  /collections                          with company counts
POST /collections                          {"name": ...} -> 201
GET  /collections/{id}
GET  /collections/{id}/companies           ?q=&offset=&limit=  (company id order)
GET  /companies                            ?q=&offset=&limit=
"""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

import asyncpg
import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway import catalog_sql as sql
from gateway.paging import Limit, Offset, Page
from gateway.problems import ProblemError

Search = Annotated[str | None, QueryParameter(max_length=100, description="name contains")]


class Collection(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    created_at: datetime
    companies: int


class NewCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Company(msgspec.Struct, kw_only=True):
    id: int
    name: str
    created_at: datetime | None = None
    added_at: datetime | None = None


def _collection(row: asyncpg.Record) -> Collection:
    return Collection(**dict(row))


async def find_collection(pool: asyncpg.Pool, collection_id: uuid.UUID) -> Collection:
    row = await sql.collection(conn=pool, collection_id=collection_id)
    if row is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"collection {collection_id} does not exist")
    return _collection(row)


@get("/collections", summary="Collections, with how many companies each has")
async def list_collections(
    pool: NamedDependency[asyncpg.Pool], offset: Offset = 0, limit: Limit = 50
) -> Page[Collection]:
    rows, total = await sql.collections(conn=pool, offset=offset, limit=limit)
    return Page(items=[_collection(r) for r in rows], total=total, offset=offset, limit=limit)


@post("/collections", summary="Create a collection", status_code=HTTPStatus.CREATED)
async def create_collection(
    pool: NamedDependency[asyncpg.Pool], data: JSONBody[NewCollection]
) -> Collection:
    return _collection(await sql.create_collection(conn=pool, name=data.name))


@get("/collections/{collection_id:uuid}", summary="One collection")
async def get_collection(
    pool: NamedDependency[asyncpg.Pool], collection_id: FromPath[uuid.UUID]
) -> Collection:
    return await find_collection(pool, collection_id)


@get("/collections/{collection_id:uuid}/companies", summary="A collection's companies")
async def list_members(
    pool: NamedDependency[asyncpg.Pool],
    collection_id: FromPath[uuid.UUID],
    q: Search = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> Page[Company]:
    await find_collection(pool, collection_id)
    rows, total = await sql.members(
        conn=pool, collection_id=collection_id, q=q, offset=offset, limit=limit
    )
    items = [Company(**dict(r)) for r in rows]
    return Page(items=items, total=total, offset=offset, limit=limit)


@get("/companies", summary="Companies")
async def list_companies(
    pool: NamedDependency[asyncpg.Pool], q: Search = None, offset: Offset = 0, limit: Limit = 50
) -> Page[Company]:
    rows, total = await sql.companies(conn=pool, q=q, offset=offset, limit=limit)
    return Page(items=[Company(**dict(r)) for r in rows], total=total, offset=offset, limit=limit)


router = Router(
    path="/",
    route_handlers=[
        list_collections,
        create_collection,
        get_collection,
        list_members,
        list_companies,
    ],
    tags=["collections"],
)
