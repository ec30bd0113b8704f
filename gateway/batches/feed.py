"""`GET /batches/{batch_id}/events`: a batch live over SSE (on gateway.feeds.fanout).

Two streams are followed and merged: `points` (PointsRecorded: the live points)
and `batches.events` (BatchStarted, BatchStopped, MinuteClosed). Events:

- `snapshot` first (no id): the batch as `GET /batches/{id}` shows it;
- `PointsRecorded`: `{batch_id, received_at, count, late, points: [{key, ts}]}`;
  `points` is a sample when the batch runs faster than `?points_per_s=` (default
  DEFAULT_POINTS_PER_S, 0 for none; a token bucket per connection), `count` is
  how many on-time points the message carried;
- `MinuteClosed`: a minute's final aggregate (count, sum, min, max and avg);
- `BatchStarted`, `BatchStopped`; `reset`, `overflow`, `closed` as gateway.feeds.fanout says.

An event's id is a cursor, as on `GET /events` (gateway/feeds/sse.py):
`batches:<batches.events entry id>,points:<points entry id>`, where the client is
in each stream. `Last-Event-ID` (or `?after=<cursor>`, for a browser's EventSource,
which cannot set the header on a new connection) resumes both exactly; without it
the feed starts at both streams' current ends (read before subscribing, so nothing
that arrives meanwhile is lost).
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent

from contracts import streams
from contracts.messages import MinuteClosed, PointsRecorded
from contracts.runtime.batch_registry import BatchRegistry
from gateway.batches.views import one_batch
from gateway.feeds.fanout import FeedEvent, Feeds
from gateway.feeds.sse import Render, decode_cursor, merge, prepend, sse, with_cursor
from gateway.frontdoor.fields import NO_NUL
from gateway.frontdoor.problems import ProblemError

__all__ = ["batch_events"]

TOPICS = {"batches": streams.BATCHES_EVENTS, "points": streams.POINTS}
DEFAULT_POINTS_PER_S = 20.0
MAX_POINTS_PER_S = 1000.0
_decode_points = msgspec.json.Decoder(PointsRecorded)
_decode_minute = msgspec.json.Decoder(MinuteClosed)


class Sampler:
    """At most `rate` points a second (bursts up to one second's worth), evenly picked."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = time.monotonic()

    def take(self, n: int) -> list[int]:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        k = min(n, int(self.tokens))
        self.tokens -= k
        return [i * n // k for i in range(k)] if k else []


def _points_event(data: bytes, sampler: Sampler) -> bytes | None:
    message = _decode_points.decode(data)
    chosen = [message.points[i] for i in sampler.take(len(message.points))]
    if not chosen:
        return None
    return msgspec.json.encode(
        {
            "batch_id": message.batch_id,
            "received_at": message.received_at,
            "count": len(message.points),
            "late": message.late,
            "points": chosen,
        }
    )


def _minute_event(data: bytes) -> bytes:
    closed = _decode_minute.decode(data)
    return msgspec.json.encode(msgspec.structs.asdict(closed) | {"avg": closed.avg})


def _renderer(rate: float) -> Render:
    """What the client gets of each event: points sampled to `rate`, minutes with avg."""
    sampler = Sampler(rate)

    def render(_topic: str, event: FeedEvent) -> bytes | None:
        if event.event == "PointsRecorded":
            return _points_event(event.data, sampler)
        if event.event == "MinuteClosed":
            return _minute_event(event.data)
        return event.data

    return render


def _resume_from(given: str | None) -> dict[str, str] | None:
    """The positions of a `Last-Event-ID` or `after`; None without one; 400 if not ours."""
    if not given:
        return None
    cursor = decode_cursor(given, list(TOPICS))
    if cursor is None:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            f"Last-Event-ID (or after) {given[:100]!r} is not an event id of this feed "
            "(batches:<entry id>,points:<entry id>)",
        )
    return cursor


@get(
    "/batches/{batch_id:str}/events",
    summary="Follow a batch: live points, minutes (SSE); resumable with Last-Event-ID or after",
)
async def batch_events(
    batch_id: FromPath[str],
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    batches: NamedDependency[BatchRegistry],
    feeds: NamedDependency[Feeds],
    points_per_s: Annotated[
        float, QueryParameter(ge=0, le=MAX_POINTS_PER_S)
    ] = DEFAULT_POINTS_PER_S,
    after: Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)] = None,
) -> ServerSentEvent:
    view = await one_batch(pool, batches, batch_id)  # 404 for an unknown batch
    cursor = _resume_from(request.headers.get("last-event-id") or after)
    if cursor is None:
        cursor = {topic: await feeds.get(spec).end() for topic, spec in TOPICS.items()}

    def mine(message: Any) -> bool:
        return getattr(message, "batch_id", None) == batch_id

    subscriptions = await feeds.subscribe_all(TOPICS, match=mine, after=cursor)
    snapshot = FeedEvent("", "snapshot", msgspec.json.encode(view))
    events = with_cursor(merge(subscriptions), cursor, _renderer(points_per_s))
    return sse(prepend(snapshot, events), releasing=subscriptions.values())
