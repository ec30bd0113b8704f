"""`GET /events`: everything, or a part of it, live over SSE (on gateway.feeds.fanout).

    GET /events?topics=jobs,batches&job_id=...&batch_id=...

Topics: `jobs` (jobs.events: JobQueued … JobCompleted) and `batches`
(batches.events: BatchStarted, BatchStopped, MinuteClosed). `job_id` / `batch_id`
keep only that job's or batch's events. Each event's id is a cursor with every
topic's stream position, `jobs:<entry id>,batches:<entry id>`: events of two
streams can arrive in either order, so one entry id could not resume both
exactly. `Last-Event-ID` (or `?after=<cursor>`) resumes every topic exactly;
without it the feed starts at each stream's current end.

A `job_id` or `batch_id` that names nothing is 404 problem+json, as
`/jobs/{id}/events` and `/batches/{id}/events` answer (the jobs table, the batch
runs and the running set tell); a parameter that cannot be used (NUL, an unknown
topic, a cursor that is not one) is 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any

import asyncpg
from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent

from contracts import streams
from contracts.runtime.batch_registry import BatchRegistry
from gateway.batches.deps import batches_of
from gateway.batches.views import one_batch
from gateway.feeds.fanout import Feeds
from gateway.feeds.sse import decode_cursor
from gateway.feeds.stream import follow
from gateway.frontdoor.fields import NO_NUL
from gateway.frontdoor.problems import ProblemError
from gateway.jobs import sql as jobs_sql

TOPICS = {"jobs": streams.JOBS_EVENTS, "batches": streams.BATCHES_EVENTS}
Id = Annotated[str | None, QueryParameter(max_length=64, pattern=NO_NUL)]


def _topics(text: str) -> list[str]:
    chosen = sorted({t.strip() for t in text.split(",") if t.strip()})
    unknown = [t for t in chosen if t not in TOPICS]
    if unknown or not chosen:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            f"unknown topics {unknown}; choose from {sorted(TOPICS)}" if unknown else "no topics",
        )
    return chosen


@get(
    "/events",
    summary="Follow jobs and batches (SSE); resumable with Last-Event-ID",
    dependencies={"batches": Provide(batches_of, sync_to_thread=False)},
)
async def all_events(
    request: Request[Any, Any, Any],
    feeds: NamedDependency[Feeds],
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    topics: Annotated[str, QueryParameter(max_length=100, pattern=NO_NUL)] = "jobs,batches",
    job_id: Id = None,
    batch_id: Id = None,
    after: Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)] = None,
) -> ServerSentEvent:
    chosen = _topics(topics)
    await _existing(pool, batches, job_id, batch_id)
    given = _last_event_id(request) or after
    cursor = decode_cursor(given, chosen)
    if given and cursor is None:
        raise ProblemError(HTTPStatus.BAD_REQUEST, f"cannot resume from {given!r}: not a cursor "
                           f"of topics {chosen} (topic:entry-id,...)")  # fmt: skip
    if cursor is None:
        cursor = {t: await feeds.get(TOPICS[t]).end() for t in chosen}
    specs = {t: TOPICS[t] for t in chosen}
    return await follow(feeds, specs, match=Only(job_id, batch_id), cursor=cursor)


@dataclass(frozen=True)
class Only:
    """The events of one job and/or one batch (None: any). Equal filters are one group
    in the feed, so it is called once per event for all the clients that use it."""

    job_id: str | None = None
    batch_id: str | None = None

    def __call__(self, message: object) -> bool:
        return (self.job_id is None or getattr(message, "job_id", None) == self.job_id) and (
            self.batch_id is None or getattr(message, "batch_id", None) == self.batch_id
        )


def _last_event_id(request: Request[Any, Any, Any]) -> str | None:
    """The header, read from the raw scope: `request.headers` would build (and keep, for
    as long as the stream is open) a parsed copy of every header."""
    for name, value in request.scope["headers"]:
        if name == b"last-event-id":
            return bytes(value).decode("latin-1")
    return None


async def _existing(
    pool: asyncpg.Pool, batches: BatchRegistry, job_id: str | None, batch_id: str | None
) -> None:
    """404 unless the job and the batch named (if any) exist."""
    if job_id is not None and await jobs_sql.job(conn=pool, job_id=job_id) is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"job {job_id} does not exist")
    if batch_id is not None:
        await one_batch(pool, batches, batch_id)  # 404 for an unknown batch
