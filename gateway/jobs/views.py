"""What the jobs routes answer with: a job's row as JSON (`JobView`), with its links, and
the counts of `GET /jobs/stats` (`JobStats`); a job's timeline (`Timeline`) and the
attempts ended per minute (`MinuteStats`)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec

from contracts.jobs import STATUSES


class Links(msgspec.Struct):
    self: str
    events: str


class JobView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    not_before: datetime | None
    source: uuid.UUID | None
    target: uuid.UUID | None
    total: int | None
    done: int
    added: int
    already_present: int
    removed: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    links: Links


class JobStats(msgspec.Struct):
    by_status: dict[str, int]
    by_kind: dict[str, dict[str, int]]
    total: int


def stats_of(rows: list[asyncpg.Record]) -> JobStats:
    """The counts of `sql.stats` rows (kind, status, n): every status present, zero or not."""
    by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
    by_kind: dict[str, dict[str, int]] = {}
    for row in rows:
        by_status[row["status"]] += row["n"]
        by_kind.setdefault(row["kind"], {})[row["status"]] = row["n"]
    return JobStats(by_status=by_status, by_kind=by_kind, total=sum(by_status.values()))


def view(row: asyncpg.Record) -> JobView:
    fields = {k: v for k, v in dict(row).items() if k != "feed_from"}
    job_id = fields["id"]
    return JobView(**fields, links=Links(f"/jobs/{job_id}", f"/jobs/{job_id}/events"))


class TimelineItem(msgspec.Struct, kw_only=True):
    """One event of the job: its jobs.events entry id, tag, attempt (0: before the first),
    when it happened, the status it leaves the job in, its counts and error (JobFailed)."""

    entry_id: str
    type: str
    attempt: int
    at: datetime
    status: str
    counts: dict[str, int]
    error: str | None


class Timeline(msgspec.Struct, kw_only=True):
    """A page of a job's events in stream order; `next`: the `after` of the next page
    (None when this page is the last one)."""

    job_id: str
    items: list[TimelineItem]
    limit: int
    next: str | None


class MinuteOutcomes(msgspec.Struct, kw_only=True):
    minute: datetime
    completed: int
    failed: int
    cancelled: int


class MinuteStats(msgspec.Struct, kw_only=True):
    minutes: list[MinuteOutcomes]


def timeline_item(row: asyncpg.Record) -> TimelineItem:
    counts = msgspec.json.decode(row["counts"], type=dict[str, int])
    return TimelineItem(**{**dict(row), "counts": counts})


def minute_outcomes(row: asyncpg.Record) -> MinuteOutcomes:
    return MinuteOutcomes(**dict(row))
