"""The gateway's SQL for batches (reads only; the services write).

`points` of a batch = the points in its minute aggregates (on time) + its late
points (raw, flagged): the points stored, as of the aggregator's progress. A raw
`count(*)` over `points` would be exact a few milliseconds sooner and scan the
whole table.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

_LATEST_RUN_ID = """
SELECT run_id FROM batch_runs WHERE batch_id = $1
ORDER BY started_at DESC NULLS LAST LIMIT 1
"""

_BATCHES = """
SELECT r.batch_id, r.run_id, r.started_at, r.stopped_at, r.rate, r.distribution, r.stop_reason,
       f.first_started_at, f.runs,
       coalesce((SELECT sum(m.count) FROM minute_aggregates m
                 WHERE m.batch_id = r.batch_id), 0)::bigint AS aggregated,
       (SELECT count(*) FROM points p WHERE p.batch_id = r.batch_id AND p.late) AS late
FROM (SELECT DISTINCT ON (batch_id) * FROM batch_runs
      WHERE ($1::text IS NULL OR batch_id = $1) AND ($2::text IS NULL OR batch_id > $2)
      ORDER BY batch_id, started_at DESC NULLS LAST) AS r
JOIN LATERAL (SELECT min(started_at) AS first_started_at, count(*) AS runs
              FROM batch_runs WHERE batch_id = r.batch_id) AS f ON true
ORDER BY r.batch_id
LIMIT $3
"""

# The exact (numeric) sum as a double when one can hold it, else NULL: the gateway's
# bounds keep every sum far inside (aggregator/points_sql.py), but a read must not
# fail on data that bypassed them. 1.7976931348623157e308 is the largest double.
_MINUTES = """
SELECT minute, count, closed, min, max, close_error,
       CASE WHEN abs(sum) <= 1.7976931348623157e308 THEN sum::float8 END AS sum
FROM minute_aggregates
WHERE batch_id = $1 AND minute >= $2 AND minute < $3
ORDER BY minute
"""

_STATS = """
SELECT (SELECT count(DISTINCT batch_id) FROM batch_runs) AS batches,
       (SELECT coalesce(sum(count), 0) FROM minute_aggregates)::bigint AS aggregated,
       (SELECT count(*) FROM points WHERE late) AS late,
       (SELECT count(*) FROM minute_aggregates) AS minutes,
       (SELECT count(*) FROM minute_aggregates WHERE NOT closed) AS open_minutes
"""


async def latest_run_id(*, pool: asyncpg.Pool, batch_id: str) -> str | None:
    run_id = await pool.fetchval(_LATEST_RUN_ID, batch_id)
    return None if run_id is None else str(run_id)


async def batches(
    *, pool: asyncpg.Pool, batch_id: str | None = None, after: str | None = None, limit: int = 1
) -> list[asyncpg.Record]:
    """Each batch's latest run with its totals, in batch id order after `after`."""
    return list(await pool.fetch(_BATCHES, batch_id, after, limit))


async def minutes(
    *, pool: asyncpg.Pool, batch_id: str, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """The stored minutes of a batch in [start, end)."""
    return list(await pool.fetch(_MINUTES, batch_id, start, end))


async def stats(*, pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow(_STATS)
    assert row is not None
    return row
