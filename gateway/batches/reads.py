"""Reading batches: `GET /batches`, `/batches/{id}`, `/batches/{id}/agg`.

A batch is shown as `views.one_batch` finds it (Redis says whether it runs,
PostgreSQL the rest); its minutes come from `minute_aggregates` (SQL in `sql.py`).

`/agg` is the last whole minute by the `clock` dependency (for now = 10:11:10,
[10:10:00, 10:11:00)); `?from=&to=` gives one row per minute in [floor(from), to),
empty minutes included (count 0), at most MAX_SERIES_MINUTES rows. Times without
an offset are UTC. `closed` says the minute is final (its MinuteClosed was
published, or, for an empty minute, its grace period is over). `sum` and `avg`
are doubles; the bounds on point values (|key| <= 1e15, gateway.frontdoor.fields)
keep every minute's sum representable, so they are null only for an empty minute (avg) or for
data written into the store past those bounds (`error` then says why the minute
could not close).
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

import asyncpg
import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from contracts.minutes import MINUTE, closes_at, floor_minute, last_whole_minute, minutes
from contracts.runtime.batch_registry import BatchRegistry
from contracts.runtime.settings import Settings
from gateway.batches import sql
from gateway.batches.deps import Clock
from gateway.batches.views import BatchPage, BatchView, batch_view, one_batch
from gateway.frontdoor.problems import ProblemError

__all__ = ["ROUTES"]

MAX_SERIES_MINUTES = 1440
MAX_PAGE = 100


class MinuteAgg(msgspec.Struct, kw_only=True):
    start: datetime
    end: datetime
    count: int
    sum: float | None
    avg: float | None
    min: float | None
    max: float | None
    closed: bool
    error: str | None = None  # why the minute could not be closed (set aside), if so


class AggSeries(msgspec.Struct, kw_only=True):
    batch_id: str
    start: datetime
    end: datetime
    minutes: list[MinuteAgg]


@get("/batches", summary="Batches, in id order (page with ?after=<last batch_id>)")
async def list_batches(
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
    after: FromQuery[str | None] = None,
) -> BatchPage:
    rows = await sql.batches(pool=pool, after=after, limit=limit)
    running = await batches.running()
    items = [batch_view(row, running) for row in rows]
    return BatchPage(items, items[-1].batch_id if len(items) == limit else None)


@get("/batches/{batch_id:str}", summary="One batch: status, runs, points so far")
async def get_batch(
    batch_id: FromPath[str],
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
) -> BatchView:
    return await one_batch(pool, batches, batch_id)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _minute(minute: datetime, row: asyncpg.Record | None, closed: bool) -> MinuteAgg:
    """A stored minute, or an empty one (`closed` by the clock)."""
    end = minute + MINUTE
    if row is None:
        return MinuteAgg(
            start=minute, end=end, count=0, sum=0.0, avg=None, min=None, max=None, closed=closed
        )
    count, total = row["count"], row["sum"]
    return MinuteAgg(
        start=minute, end=end, count=count, sum=total,
        avg=total / count if total is not None and count else None,
        min=row["min"], max=row["max"], closed=row["closed"], error=row["close_error"],
    )  # fmt: skip


def series(
    rows: list[asyncpg.Record], start: datetime, end: datetime, now: datetime, grace_s: float
) -> list[MinuteAgg]:
    """One MinuteAgg per minute in [floor(start), end), empty minutes included."""
    stored = {row["minute"]: row for row in rows}
    return [
        _minute(minute, stored.get(minute), now >= closes_at(minute, grace_s))
        for minute in minutes(start, end)
    ]


@get("/batches/{batch_id:str}/agg", summary="Aggregate of the last whole minute, or a series")
async def get_agg(
    batch_id: FromPath[str],
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
    clock: NamedDependency[Clock],
    start: Annotated[datetime | None, QueryParameter(name="from")] = None,
    end: Annotated[datetime | None, QueryParameter(name="to")] = None,
) -> MinuteAgg | AggSeries:
    await one_batch(pool, batches, batch_id)  # 404 for an unknown batch
    now = clock()
    if start is None and end is None:
        first, last = last_whole_minute(now)
        rows = await sql.minutes(pool=pool, batch_id=batch_id, start=first, end=last)
        return series(rows, first, last, now, settings.late_grace_s)[0]
    if start is None:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "`to` needs `from`")
    first, last = _window(start, end, now, settings.late_grace_s)
    rows = await sql.minutes(pool=pool, batch_id=batch_id, start=first, end=last)
    rows_out = series(rows, first, last, now, settings.late_grace_s)
    return AggSeries(batch_id=batch_id, start=first, end=last, minutes=rows_out)


def _window(
    start: datetime, end: datetime | None, now: datetime, grace_s: float
) -> tuple[datetime, datetime]:
    """[floor(from), to) in UTC, or 400: reversed, too long, or past what a date can hold
    (the last minute's close must be a date too: years 0001..9999 in UTC)."""
    try:
        first, last = (
            floor_minute(_utc(start)),
            _utc(end).astimezone(UTC) if end is not None else now,
        )
        closes_at(floor_minute(last), grace_s)
    except OverflowError:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, "`from` and `to` must lie within 0001..9999 in UTC"
        ) from None
    if last <= first or (last - first) / MINUTE > MAX_SERIES_MINUTES:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            f"`from` must be before `to`, at most {MAX_SERIES_MINUTES} minutes apart",
        )
    return first, last


ROUTES = [list_batches, get_batch, get_agg]
