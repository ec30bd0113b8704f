"""The console's Lists section (/console/lists): the lists with their counts, and a
list's companies in a grid (server-side paging and search) to select, copy, move or
remove.

GET /console/lists?list=<id>&q=<search>&page=<n>   the page (no `list`: the first one)
GET /console/lists/grid?list=<id>&q=&page=         the grid alone, for htmx; its
                                                   `HX-Push-Url` is the page's URL

The grid reads through gateway.catalog.sql as GET /collections/{id}/companies does (a
page in company id order, LIMIT/OFFSET on the memberships' key) and counts once: the
list's own count is the unfiltered total, or, with a search, the list's row. The
writes (create, rename, delete, copy, move, remove) go from static/lists.js to the
JSON API; the selection lives there too (sessionStorage per list).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import asyncpg
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from gateway.catalog import sql
from gateway.console.render import fragment, page
from gateway.frontdoor.fields import Search
from gateway.frontdoor.keys import WRITE, ApiKey

PAGE_SIZE = 50
COLUMN_SIZE = 200  # lists shown in the column (the rest: a hint that says so)

ListParam = Annotated[str | None, QueryParameter(name="list", max_length=100)]
PageParam = Annotated[int, QueryParameter(name="page", ge=1, le=1_000_000)]


@dataclass
class Grid:
    """One page of a list's companies, and what the page around it needs."""

    list_id: uuid.UUID
    count: int  # companies in the list
    q: str
    page: int
    rows: list[asyncpg.Record]
    total: int  # companies that match `q`

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * PAGE_SIZE + len(self.rows)

    def url(self, page_no: int | None = None, *, base: str = "/console/lists") -> str:
        return page_url(self.list_id, self.q, page_no or self.page, base=base)


def page_url(list_id: uuid.UUID, q: str, page_no: int, *, base: str = "/console/lists") -> str:
    params: dict[str, str] = {"list": str(list_id)}
    if q:
        params["q"] = q
    if page_no > 1:
        params["page"] = str(page_no)
    return f"{base}?{urlencode(params)}"


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _grid(
    pool: asyncpg.Pool, list_id: uuid.UUID, q: str, page_no: int, count: int | None
) -> Grid | None:
    """The page of the list's companies; None if the list does not exist. `count`: the
    list's count when the caller has it already."""
    rows, total = await sql.members(
        conn=pool, collection_id=list_id, q=q or None, offset=(page_no - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )  # fmt: skip
    if count is None:
        if not q and total:
            count = total
        else:
            row = await sql.collection(conn=pool, collection_id=list_id)
            if row is None:
                return None
            count = int(row["companies"])
    return Grid(list_id=list_id, count=count, q=q, page=page_no, rows=list(rows), total=total)


@get("/lists", name="console-lists")
async def lists_page(
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    list_: ListParam = None,
    q: Search = None,
    page_no: PageParam = 1,
) -> Template:
    rows, lists_total = await sql.collections(conn=pool, offset=0, limit=COLUMN_SIZE)
    lists = [dict(r) for r in rows]
    wanted = _uuid(list_)
    selected: dict[str, Any] | None = None
    if wanted is None and not list_:
        selected = lists[0] if lists else None
    elif wanted is not None:
        selected = next((c for c in lists if c["id"] == wanted), None)
        if selected is None:
            found = await sql.collection(conn=pool, collection_id=wanted)
            selected = dict(found) if found is not None else None
    grid = None
    if selected is not None:
        grid = await _grid(pool, selected["id"], q or "", page_no, int(selected["companies"]))
    return page(
        request, "lists/index.html", "lists",
        lists=lists, lists_total=lists_total, selected=selected, grid=grid,
        missing=list_ if selected is None and list_ else None, page_size=PAGE_SIZE,
    )  # fmt: skip


@get("/lists/grid", name="console-lists-grid")
async def lists_grid(
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    list_: ListParam = None,
    q: Search = None,
    page_no: PageParam = 1,
) -> Response[Any]:
    """The grid of a list's page of companies; the URL bar shows the page's URL."""
    list_id = _uuid(list_)
    grid = None if list_id is None else await _grid(pool, list_id, q or "", page_no, None)
    template = fragment(
        "lists/grid.html", grid=grid, can_write=page_can_write(request), page_size=PAGE_SIZE,
        missing=list_,
    )  # fmt: skip
    if grid is not None:
        template.headers["HX-Push-Url"] = grid.url()
    return template


def page_can_write(request: Request[Any, Any, Any]) -> bool:
    who: ApiKey = request.user
    return who.allows(WRITE)


ROUTES = [lists_page, lists_grid]
