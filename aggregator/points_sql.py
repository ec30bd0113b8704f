"""The aggregator's SQL for batches: per-minute aggregates and the runs projection.

Functions take the connection as a keyword argument; the delivery rules' transaction
(which also records the message as applied) is the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from contracts.runtime.db import DbConnection

# Partial aggregates of the points of one message or of a whole read (any batches:
# batch_ids[i], ts[i], keys[i]), merged into the stored ones. Rows are inserted in
# (batch_id, minute) order, so concurrent reads lock the minutes they share in the
# same order (no deadlocks). Updating a closed minute reopens it, to be announced again;
# updating a minute set aside (close_error) gives it another try with its new aggregate.
#
# `sum` is numeric (exact); the gateway bounds every value to |key| <= 1e15
# (gateway.frontdoor.fields.MAX_ABS_VALUE), so with `count` a bigint (< 9.3e18) a minute's sum
# stays below 1e34 in magnitude: far inside double precision, whatever the count.
_ADD_POINTS = """
INSERT INTO minute_aggregates AS a (batch_id, minute, count, sum, min, max)
SELECT p.batch_id, date_trunc('minute', p.ts, 'UTC'), count(*), sum(p.key::numeric),
       min(p.key), max(p.key)
FROM unnest($1::text[], $2::timestamptz[], $3::float8[]) AS p(batch_id, ts, key)
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (batch_id, minute) DO UPDATE SET
    count = a.count + excluded.count,
    sum = a.sum + excluded.sum,
    min = least(a.min, excluded.min),
    max = greatest(a.max, excluded.max),
    closed = false,
    close_error = NULL,
    updated_at = now()
"""

# Minutes set aside (close_error) are not due: they wait for new points.
_CLOSE_DUE = """
UPDATE minute_aggregates AS a SET closed = true
FROM (SELECT batch_id, minute FROM minute_aggregates
      WHERE NOT closed AND close_error IS NULL AND minute <= $1
      ORDER BY minute LIMIT $2
      FOR UPDATE SKIP LOCKED) AS due
WHERE a.batch_id = due.batch_id AND a.minute = due.minute
RETURNING a.batch_id, a.minute, a.count, a.sum::float8 AS sum, a.min, a.max
"""

_DUE = """
SELECT batch_id, minute FROM minute_aggregates
WHERE NOT closed AND close_error IS NULL AND minute <= $1
ORDER BY minute LIMIT $2
"""

_CLOSE_ONE = """
UPDATE minute_aggregates AS a SET closed = true
FROM (SELECT batch_id, minute FROM minute_aggregates
      WHERE batch_id = $1 AND minute = $2 AND NOT closed AND close_error IS NULL
      FOR UPDATE SKIP LOCKED) AS due
WHERE a.batch_id = due.batch_id AND a.minute = due.minute
RETURNING a.batch_id, a.minute, a.count, a.sum::float8 AS sum, a.min, a.max
"""

_SET_ASIDE = """
UPDATE minute_aggregates SET close_error = $3
WHERE batch_id = $1 AND minute = $2 AND NOT closed
"""

_RUN_STARTED = """
INSERT INTO batch_runs (run_id, batch_id, started_at, rate, distribution)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (run_id) DO UPDATE SET
    started_at = excluded.started_at, rate = excluded.rate, distribution = excluded.distribution
"""

_RUN_STOPPED = """
INSERT INTO batch_runs (run_id, batch_id, stopped_at, stop_reason)
VALUES ($1, $2, $3, $4)
ON CONFLICT (run_id) DO UPDATE SET
    stopped_at = excluded.stopped_at, stop_reason = excluded.stop_reason
"""


async def add_points(
    *, conn: DbConnection, batch_id: str, ts: Sequence[datetime], keys: Sequence[float]
) -> None:
    await conn.execute(_ADD_POINTS, [batch_id] * len(ts), ts, keys)


async def add_points_many(
    *,
    conn: DbConnection,
    batch_ids: Sequence[str],
    ts: Sequence[datetime],
    keys: Sequence[float],
) -> None:
    """Merge points of any batches (batch_ids[i], ts[i], keys[i]) in one statement."""
    await conn.execute(_ADD_POINTS, batch_ids, ts, keys)


async def close_due(*, conn: DbConnection, until: datetime, limit: int) -> list[asyncpg.Record]:
    """Mark open minutes starting at or before `until` closed; return them."""
    return list(await conn.fetch(_CLOSE_DUE, until, limit))


async def due(*, conn: DbConnection, until: datetime, limit: int) -> list[asyncpg.Record]:
    """(batch_id, minute) of open minutes due by `until`, oldest first (nothing locked)."""
    return list(await conn.fetch(_DUE, until, limit))


async def close_one(*, conn: DbConnection, batch_id: str, minute: datetime) -> list[asyncpg.Record]:
    """Mark one minute closed (unless closed, set aside or locked); return it."""
    return list(await conn.fetch(_CLOSE_ONE, batch_id, minute))


async def set_aside(*, conn: DbConnection, batch_id: str, minute: datetime, error: str) -> None:
    """Record why a minute could not close; it is not due again until new points arrive."""
    await conn.execute(_SET_ASIDE, batch_id, minute, error)


async def run_started(
    *,
    conn: DbConnection,
    run_id: str,
    batch_id: str,
    started_at: datetime,
    rate: float,
    distribution: str,
) -> None:
    await conn.execute(_RUN_STARTED, run_id, batch_id, started_at, rate, distribution)


async def run_stopped(
    *, conn: DbConnection, run_id: str, batch_id: str, stopped_at: datetime, reason: str
) -> None:
    await conn.execute(_RUN_STOPPED, run_id, batch_id, stopped_at, reason)
