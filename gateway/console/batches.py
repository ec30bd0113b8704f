"""The console's Batches section: the overview (/console/batches) and a batch's page.

The overview: how many batches run of the limit, points and minutes stored, the
running batches, every batch (in id order, `?after=` pages, as `GET /batches`) and a
start form. Its live part (`_running`: the figures and the running batches) is a
fragment that static/batches.js fetches again when batches.events says a batch
started, stopped or closed a minute.

A batch's page: its status and options, the last whole minute's aggregate and the
minutes stored (newest first); static/batches.js adds its live points (a chart of the
last minutes), closed minutes and start/stop from `GET /batches/{id}/events`.

Everything is read as the JSON routes read it (gateway.batches.views / sql); starts
and stops go to the JSON API from the page's script, so a refusal (429 past the
limit, naming the running batches) is the API's own problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any

import asyncpg
from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from contracts.minutes import MINUTE, closes_at, last_whole_minute
from contracts.runtime.batch_registry import BatchRegistry
from contracts.runtime.settings import Settings
from gateway.batches import sql
from gateway.batches.deps import Clock, batches_of, clock_of
from gateway.batches.ids import BATCH_ID, is_batch_id
from gateway.batches.views import BatchView, batch_view, one_batch
from gateway.console.render import fragment, page
from gateway.frontdoor.fields import NO_NUL
from gateway.frontdoor.problems import ProblemError

PAGE = 20
HISTORY = 60  # minutes shown on a batch's page
HISTORY_SPAN = timedelta(days=1)  # how far back its minutes are looked for
DISTRIBUTIONS = ["uniform_int", "uniform", "normal"]  # what POST /batches accepts
DEPENDENCIES = {
    "batches": Provide(batches_of, sync_to_thread=False),
    "clock": Provide(clock_of, sync_to_thread=False),
}
After = Annotated[str | None, QueryParameter(max_length=64, pattern=NO_NUL)]


@dataclass(frozen=True)
class Minute:
    """A minute of a batch as the page shows it (an empty minute: count 0)."""

    start: datetime
    count: int = 0
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    closed: bool = False
    error: str | None = None

    @property
    def avg(self) -> float | None:
        return self.sum / self.count if self.sum is not None and self.count else None


def _minute(row: asyncpg.Record) -> Minute:
    return Minute(
        start=row["minute"], count=row["count"], sum=row["sum"], min=row["min"],
        max=row["max"], closed=row["closed"], error=row["close_error"],
    )  # fmt: skip


async def _running(pool: asyncpg.Pool, batches: BatchRegistry) -> list[BatchView]:
    """The running batches (at most the limit), as `GET /batches/{id}` shows each."""
    running = [await one_batch(pool, batches, b) for b in sorted(await batches.running())]
    return [view for view in running if view.status == "running"]


async def _figures(
    pool: asyncpg.Pool, batches: BatchRegistry, settings: Settings
) -> dict[str, int]:
    """The figures of `GET /stats` about batches."""
    row = await sql.stats(pool=pool)
    return {
        "running": await batches.count(),
        "limit": settings.max_batches,
        "batches": row["batches"],
        "points": int(row["aggregated"]) + int(row["late"]),
        "minutes": row["minutes"],
    }


async def _page_of_batches(
    pool: asyncpg.Pool, batches: BatchRegistry, after: str | None
) -> dict[str, Any]:
    rows = await sql.batches(pool=pool, after=after, limit=PAGE)
    running = await batches.running()
    items = [batch_view(row, running) for row in rows]
    next_after = items[-1].batch_id if len(items) == PAGE else None
    return {"items": items, "after": after, "next_after": next_after}


async def _live_part(
    pool: asyncpg.Pool, batches: BatchRegistry, settings: Settings
) -> dict[str, Any]:
    return {
        "figures": await _figures(pool, batches, settings),
        "running": await _running(pool, batches),
    }


@get("/batches", name="console-batches", dependencies=DEPENDENCIES)
async def batches_page(
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
    after: After = None,
) -> Template:
    return page(
        request, "batches/index.html", "batches",
        distributions=DISTRIBUTIONS, batch_id_pattern=BATCH_ID[1:-1],
        all=await _page_of_batches(pool, batches, after),
        **await _live_part(pool, batches, settings),
    )  # fmt: skip


@get("/batches/_running", name="console-batches-running", dependencies=DEPENDENCIES)
async def running_fragment(
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
) -> Template:
    """The overview's live part: figures and running batches."""
    return fragment("batches/_running.html", **await _live_part(pool, batches, settings))


@get("/batches/_all", name="console-batches-all", dependencies=DEPENDENCIES)
async def all_fragment(
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    after: After = None,
) -> Template:
    """A page of every batch (the overview's table)."""
    return fragment("batches/_all.html", all=await _page_of_batches(pool, batches, after))


@get("/batches/{batch_id:str}", name="console-batch", dependencies=DEPENDENCIES)
async def batch_page(
    request: Request[Any, Any, Any],
    batch_id: FromPath[str],
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
    clock: NamedDependency[Clock],
) -> Template:
    try:
        view = await one_batch(pool, batches, batch_id)
    except ProblemError as problem:
        if problem.status_code != HTTPStatus.NOT_FOUND:
            raise
        missing = page(request, "batches/missing.html", "batches",
                       batch_id=batch_id if is_batch_id(batch_id) else None)  # fmt: skip
        missing.status_code = HTTPStatus.NOT_FOUND
        return missing
    now = clock()
    rows = await sql.minutes(
        pool=pool, batch_id=batch_id, start=now - HISTORY_SPAN, end=now + MINUTE
    )
    stored = [_minute(row) for row in reversed(rows)][:HISTORY]
    first, _end = last_whole_minute(now)
    empty = Minute(start=first, closed=now >= closes_at(first, settings.late_grace_s))
    last = next((m for m in stored if m.start == first), empty)
    return page(
        request, "batches/batch.html", "batches", batch=view, last=last, minutes=stored,
        one_minute=MINUTE, grace_s=settings.late_grace_s,
    )  # fmt: skip


ROUTES = [batches_page, running_fragment, all_fragment, batch_page]
