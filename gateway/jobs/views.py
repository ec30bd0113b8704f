"""What the jobs routes answer with: a job's row as JSON (`JobView`), with its links, and
the counts of `GET /jobs/stats` (`JobStats`)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec


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


def view(row: asyncpg.Record) -> JobView:
    fields = {k: v for k, v in dict(row).items() if k != "feed_from"}
    job_id = fields["id"]
    return JobView(**fields, links=Links(f"/jobs/{job_id}", f"/jobs/{job_id}/events"))
