"""`GET /stats`: overall figures, each read from its own domain's SQL.

Batches and points from gateway/batches/sql.py (`stats`), whether batches run
from Redis (the BatchRegistry), jobs by status from gateway/jobs/sql.py (`stats`,
by kind and status, summed here over kinds). A read of several domains, so it
lives beside them rather than inside one.
"""

from __future__ import annotations

import asyncpg
import msgspec
from litestar import get
from litestar.di import NamedDependency, Provide

from contracts.jobs import STATUSES
from contracts.runtime.batch_registry import BatchRegistry
from contracts.runtime.settings import Settings
from gateway.batches import sql as batches_sql
from gateway.batches.deps import batches_of
from gateway.jobs import sql as jobs_sql

__all__ = ["get_stats"]


class Stats(msgspec.Struct, kw_only=True):
    batches_running: int
    batches_limit: int
    batches: int
    points_stored: int
    points_aggregated: int
    points_late: int
    minutes: int
    minutes_open: int
    jobs: dict[str, int]


@get(
    "/stats",
    summary="Overall figures: batches running, points stored, jobs by status",
    tags=["stats"],
    dependencies={"batches": Provide(batches_of, sync_to_thread=False)},
)
async def get_stats(
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
) -> Stats:
    row = await batches_sql.stats(pool=pool)
    aggregated, late = int(row["aggregated"]), int(row["late"])
    return Stats(
        batches_running=await batches.count(),
        batches_limit=settings.max_batches,
        batches=row["batches"],
        points_stored=aggregated + late,
        points_aggregated=aggregated,
        points_late=late,
        minutes=row["minutes"],
        minutes_open=row["open_minutes"],
        jobs=await _jobs_by_status(pool),
    )


async def _jobs_by_status(pool: asyncpg.Pool) -> dict[str, int]:
    """Jobs (the aggregator's projection) by status, every status present."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for row in await jobs_sql.stats(conn=pool):
        counts[row["status"]] += int(row["n"])
    return counts
