"""Companies and collections (lists) over HTTP.

GET  /collections                          with company counts
POST /collections                          {"name": ...} -> 201
GET  /collections/{id}
PATCH /collections/{id}                    {"name": ...} -> 200 (renamed)
GET  /collections/{id}/companies           ?q=&offset=&limit=  (company id order)
GET  /companies                            ?q=&offset=&limit=

`q` is matched literally (`%` and `_` are no wildcards) and holds no NUL (400). A
list's name is visible text without NUL, at most 200 characters, stored trimmed; a
blank one is 422, and one that names another existing list (case and surrounding
spaces aside) is 409 with that list as `existing`, on create and on rename alike.

A list is deleted as a job: DELETE /collections/{id} (gateway/jobs/removals.py), as its
companies are removed (POST /removals); both live with the jobs, above the catalog.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus

import asyncpg
import msgspec
from litestar import Router, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from gateway.catalog import sql
from gateway.frontdoor.fields import BOUNDS_AS_422, ListName, Search
from gateway.frontdoor.paging import Limit, Offset, Page
from gateway.frontdoor.problems import ProblemError

# Lists are renamed and deleted: the list holding a name may be gone (or renamed) by the
# time it is looked up; the insert or update is then tried again, a few times.
_TRIES = 3


class Collection(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    created_at: datetime
    companies: int


class NewCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: ListName


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


@post(
    "/collections", summary="Create a collection (409 if one of that name exists)",
    status_code=HTTPStatus.CREATED, exception_handlers=BOUNDS_AS_422,
)  # fmt: skip
async def create_collection(
    pool: NamedDependency[asyncpg.Pool], data: JSONBody[NewCollection]
) -> Collection:
    name = data.name.strip()
    for _ in range(_TRIES):
        created = await sql.create_collection(conn=pool, name=name)
        if created is not None:
            return _collection(created)
        await _name_taken(pool, name)
    raise ProblemError(HTTPStatus.CONFLICT, f"the name {name!r} is in use; try again")


@patch(
    "/collections/{collection_id:uuid}",
    summary="Rename a collection (409 if another one has that name)",
    exception_handlers=BOUNDS_AS_422,
)  # fmt: skip
async def rename_collection(
    pool: NamedDependency[asyncpg.Pool],
    collection_id: FromPath[uuid.UUID],
    data: JSONBody[NewCollection],
) -> Collection:
    name = data.name.strip()
    for _ in range(_TRIES):
        try:
            renamed = await sql.rename_collection(conn=pool, collection_id=collection_id, name=name)
        except asyncpg.UniqueViolationError:
            await _name_taken(pool, name)
            continue
        if renamed is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, f"collection {collection_id} does not exist")
        return _collection(renamed)
    raise ProblemError(HTTPStatus.CONFLICT, f"the name {name!r} is in use; try again")


async def _name_taken(pool: asyncpg.Pool, name: str) -> None:
    """409 with the list that holds `name`; returns if no list holds it (any more)."""
    existing = await sql.named(conn=pool, name=name)
    if existing is not None:
        raise ProblemError(
            HTTPStatus.CONFLICT, f"a list named {existing['name']!r} exists already",
            existing={"id": str(existing["id"]), "name": existing["name"]},
        )  # fmt: skip


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
    items = [Company(id=r["id"], name=r["name"], added_at=r["added_at"]) for r in rows]
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
        rename_collection,
        get_collection,
        list_members,
        list_companies,
    ],
    tags=["collections"],
)
