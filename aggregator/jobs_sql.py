"""The jobs projection's SQL; each function takes the connection as `conn=`.

Events are applied in any order (reclaim and redelivery reorder them), so every
statement compares instead of overwriting: an event of a newer attempt starts that
attempt; within an attempt the status only moves forward (contracts/jobs.py); counts
only grow; `feed_from` only moves to a later jobs.events entry; `started_at` is set by
the first running or completed event (a job cancelled or failed before it ran has none).

Every event applied is also kept in `job_events` (the job's timeline), keyed by its
jobs.events entry, with what the event itself says (its attempt, its status, its
counts): nothing in it depends on the order events were applied in.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import asyncpg
import msgspec

from contracts.jobs import STATUSES
from contracts.messages import Counts, JobQueued
from contracts.runtime.db import DbConnection

_STATUSES = list(STATUSES)
_FINAL_RANK = len(_STATUSES) - 2  # array_position is 1-based; the final three rank alike
_LATER = "string_to_array({a}, '-')::numeric[] > string_to_array({b}, '-')::numeric[]"


async def insert_queued(*, conn: DbConnection, event: JobQueued, entry_id: str | None) -> None:
    """The job's row, from its first event. The projection is the only writer of `jobs`
    (the gateway answers for a job it just accepted from its own outbox, accepted_moves,
    until this row exists). A JobQueued published again under its id (the gateway's
    outbox) is skipped by the delivery rules; a row that is there already is kept."""
    await conn.execute(
        """INSERT INTO jobs (id, kind, status, priority, max_attempts, not_before, source,
               target, params, created_at, feed_from)
           VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, coalesce($10, '0-0'))
           ON CONFLICT (id) DO NOTHING""",
        event.job_id, event.kind, event.priority, event.max_attempts, event.not_before,
        event.source, event.target, msgspec.json.encode(event.params).decode(), event.at,
        entry_id,
    )  # fmt: skip


_APPLY = f"""
WITH cur AS (
    SELECT id, attempts,
           least(array_position($11::text[], status), {_FINAL_RANK}) AS rank
    FROM jobs WHERE id = $1 FOR UPDATE),
ev AS (
    SELECT id, coalesce(nullif($2::int, 0), attempts) AS attempt,
           least(array_position($11::text[], $3::text), {_FINAL_RANK}) AS rank,
           attempts AS cur_attempt, rank AS cur_rank
    FROM cur),
step AS (
    SELECT *, attempt > cur_attempt OR (attempt = cur_attempt AND rank > cur_rank) AS moves
    FROM ev)
UPDATE jobs j SET
    status = CASE WHEN s.moves THEN $3 ELSE j.status END,
    attempts = greatest(j.attempts, s.attempt),
    error = CASE WHEN s.moves THEN $4 ELSE j.error END,
    started_at = CASE WHEN $3 IN ('running', 'completed') THEN coalesce(j.started_at, $12)
                      ELSE j.started_at END,
    finished_at = CASE WHEN NOT s.moves THEN j.finished_at
                       WHEN s.rank = {_FINAL_RANK} THEN $12 END,
    total = CASE WHEN $5 > 0 OR s.rank = {_FINAL_RANK} THEN greatest(j.total, $5) ELSE j.total END,
    done = greatest(j.done, $6), added = greatest(j.added, $7),
    already_present = greatest(j.already_present, $8), removed = greatest(j.removed, $9),
    feed_from = CASE WHEN $10::text IS NOT NULL AND {_LATER.format(a="$10", b="j.feed_from")}
                     THEN $10 ELSE j.feed_from END,
    updated_at = now()
FROM step s WHERE j.id = s.id
RETURNING j.kind, j.status, s.moves, s.attempt"""


async def apply_event(
    *,
    conn: DbConnection,
    job_id: str,
    attempt: int,
    status: str,
    counts: Counts,
    at: datetime,
    error: str | None = None,
    entry_id: str | None = None,
) -> asyncpg.Record | None:
    """Apply one job event that says the job is `status` in `attempt` (0: its current one);
    the row's kind, status, whether the status moved and the event's attempt (0 read as
    the row's current one), or None if there is no row yet."""
    c = counts
    return await conn.fetchrow(
        _APPLY, job_id, attempt, status, error, c.total, c.done, c.added, c.already_present,
        c.removed, entry_id, _STATUSES, at,
    )  # fmt: skip


async def applied_entry(*, conn: DbConnection, group: str, message_id: str) -> str | None:
    """The stream entry id this group is applying `message_id` from (recorded by the
    delivery rules in this same transaction, contracts/delivery/idempotency.py)."""
    entry: str | None = await conn.fetchval(
        "SELECT entry_id FROM applied_messages WHERE consumer_group = $1 AND message_id = $2",
        group, message_id,
    )  # fmt: skip
    return entry


async def applied_entries(
    *, conn: DbConnection, group: str, message_ids: list[str]
) -> dict[str, str]:
    """`applied_entry` for many messages at once: message id -> entry id."""
    rows = await conn.fetch(
        """SELECT message_id, entry_id FROM applied_messages
           WHERE consumer_group = $1 AND message_id = ANY($2::text[])""",
        group, message_ids,
    )  # fmt: skip
    return {r["message_id"]: r["entry_id"] for r in rows}


class TimelineEvent(NamedTuple):
    """One applied event as the job's timeline (`job_events`) keeps it."""

    job_id: str
    entry_id: str
    type_: str
    attempt: int
    at: datetime
    status: str
    counts: Counts | None
    error: str | None = None


_RECORD_EVENT = """
INSERT INTO job_events (job_id, entry_ms, entry_seq, type, attempt, at, status, counts, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (job_id, entry_ms, entry_seq) DO NOTHING"""


async def record_events(*, conn: DbConnection, events: list[TimelineEvent]) -> None:
    """Keep applied events in their jobs' timelines (`job_events`), all in one pipelined
    statement; an entry kept already is left as it is."""
    await conn.executemany(_RECORD_EVENT, [_timeline_args(e) for e in events])


def _timeline_args(e: TimelineEvent) -> tuple[object, ...]:
    ms, seq = e.entry_id.split("-")
    counts = msgspec.json.encode(e.counts).decode() if e.counts is not None else "{}"
    return (e.job_id, int(ms), int(seq), e.type_, e.attempt, e.at, e.status, counts, e.error)


async def count_by_kind_and_status(*, conn: DbConnection) -> list[asyncpg.Record]:
    """(kind, status, jobs): how many jobs of each kind are in each status."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT kind, status, count(*) AS jobs FROM jobs GROUP BY kind, status"
    )
    return rows
