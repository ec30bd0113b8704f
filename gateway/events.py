"""`GET /events`: everything, or a part of it, live over SSE (on gateway.feeds).

    GET /events?topics=jobs,batches&job_id=...&batch_id=...

Topics: `jobs` (jobs.events: JobQueued … JobCompleted) and `batches`
(batches.events: BatchStarted, BatchStopped, MinuteClosed). `job_id` / `batch_id`
keep only that job's or batch's events. Each event's id is a cursor with every
topic's stream position, `jobs:<entry id>,batches:<entry id>`: events of two
streams can arrive in either order, so one entry id could not resume both
exactly. `Last-Event-ID` (or `?after=<cursor>`) resumes every topic exactly;
without it the feed starts at each stream's current end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent

from contracts import streams
from gateway.feeds import HEARTBEAT, TERMINAL, FeedEvent, Feeds
from gateway.problems import ProblemError
from gateway.sse import decode_cursor, encode_cursor, merge, sse

TOPICS = {"jobs": streams.JOBS_EVENTS, "batches": streams.BATCHES_EVENTS}
Id = Annotated[str | None, QueryParameter(max_length=64)]


def _topics(text: str) -> list[str]:
    chosen = sorted({t.strip() for t in text.split(",") if t.strip()})
    unknown = [t for t in chosen if t not in TOPICS]
    if unknown or not chosen:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            f"unknown topics {unknown}; choose from {sorted(TOPICS)}" if unknown else "no topics",
        )
    return chosen


@get("/events", summary="Follow jobs and batches (SSE); resumable with Last-Event-ID")
async def all_events(
    request: Request[Any, Any, Any],
    feeds: NamedDependency[Feeds],
    topics: Annotated[str, QueryParameter(max_length=100)] = "jobs,batches",
    job_id: Id = None,
    batch_id: Id = None,
    after: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> ServerSentEvent:
    chosen = _topics(topics)
    given = request.headers.get("last-event-id") or after
    cursor = decode_cursor(given, chosen)
    if given and cursor is None:
        raise ProblemError(HTTPStatus.BAD_REQUEST, f"cannot resume from {given!r}: not a cursor "
                           f"of topics {chosen} (topic:entry-id,...)")  # fmt: skip
    if cursor is None:
        cursor = {t: await feeds.get(TOPICS[t]).end() for t in chosen}

    def wanted(message: object) -> bool:
        return (job_id is None or getattr(message, "job_id", None) == job_id) and (
            batch_id is None or getattr(message, "batch_id", None) == batch_id
        )

    subscriptions = {
        t: await feeds.get(TOPICS[t]).subscribe(match=wanted, after=cursor[t]) for t in chosen
    }
    return sse(_with_cursor(merge(subscriptions), cursor))


async def _with_cursor(
    events: AsyncIterator[tuple[str, FeedEvent]], cursor: dict[str, str]
) -> AsyncIterator[FeedEvent]:
    async for topic, event in events:
        if event.event in TERMINAL or event.event == HEARTBEAT:
            yield event
            if event.event in TERMINAL:
                return
            continue
        if event.id:
            cursor[topic] = event.id
        yield FeedEvent(encode_cursor(cursor), event.event, event.data)
