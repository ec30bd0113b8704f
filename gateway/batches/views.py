"""What the batch routes answer with, and the lookup every batch route starts from.

`one_batch` is a batch as `GET /batches/{id}` shows it, or 404: whether it runs is
read from Redis (`batches.running`, the truth the producers are fenced by); the rest
from PostgreSQL (`batch_runs`, projected by the aggregator; SQL in `sql.py`). A batch
admitted a moment ago and not yet projected is shown from its start command in Redis.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus

import asyncpg
import msgspec

from contracts.runtime.batch_registry import FAILED_REASON, BatchRegistry
from gateway.batches import sql
from gateway.batches.ids import existing_batch_id
from gateway.frontdoor.problems import ProblemError

__all__ = ["BatchPage", "BatchView", "batch_view", "one_batch"]


class BatchView(msgspec.Struct, kw_only=True):
    batch_id: str
    status: str  # running | stopped | failed (its command could not be applied: `reason`)
    run_id: str
    started_at: datetime | None
    stopped_at: datetime | None = None
    first_started_at: datetime | None = None
    runs: int = 1
    rate: float | None = None
    distribution: str | None = None
    points: int = 0  # stored: aggregated on time + late
    late_points: int = 0
    reason: str | None = None  # why the latest run ended (stopped, or failed: why)


class BatchPage(msgspec.Struct):
    items: list[BatchView]
    next_after: str | None


def _status(row: asyncpg.Record, running: dict[str, str]) -> str:
    if running.get(row["batch_id"]) == row["run_id"]:
        return "running"
    return "failed" if (row["stop_reason"] or "").startswith(FAILED_REASON) else "stopped"


def batch_view(row: asyncpg.Record, running: dict[str, str]) -> BatchView:
    late = int(row["late"])
    return BatchView(
        batch_id=row["batch_id"],
        status=_status(row, running),
        run_id=row["run_id"],
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
        first_started_at=row["first_started_at"],
        runs=row["runs"],
        rate=row["rate"],
        distribution=row["distribution"],
        points=int(row["aggregated"]) + late,
        late_points=late,
        reason=row["stop_reason"],
    )


async def _admitted_view(batches: BatchRegistry, batch_id: str) -> BatchView | None:
    """A running batch that PostgreSQL does not show yet, from its start command."""
    start = await batches.start_of(batch_id)
    if start is None:
        return None
    return BatchView(
        batch_id=batch_id,
        status="running",
        run_id=start.id,
        started_at=start.at,
        first_started_at=start.at,
        rate=start.rate,
        distribution=start.distribution,
    )


async def one_batch(pool: asyncpg.Pool, batches: BatchRegistry, batch_id: str) -> BatchView:
    existing_batch_id(batch_id)
    rows = await sql.batches(pool=pool, batch_id=batch_id)
    running = await batches.running()
    view = batch_view(rows[0], running) if rows else None
    if (view is None or view.status != "running") and batch_id in running:
        view = await _admitted_view(batches, batch_id) or view
    if view is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"no batch {batch_id!r}")
    return view
