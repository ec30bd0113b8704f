"""`GET /batches/{batch_id}/events`: a batch live over SSE (on gateway.feeds).

Two streams are followed and merged: `points` (PointsRecorded: the live points)
and `batches.events` (BatchStarted, BatchStopped, MinuteClosed). Events:

- `snapshot` first (no id): the batch as `GET /batches/{id}` shows it;
- `PointsRecorded`: `{batch_id, received_at, count, late, points: [{key, ts}]}`;
  `points` is a sample when the batch runs faster than `?points_per_s=` (default
  DEFAULT_POINTS_PER_S, 0 for none; a token bucket per connection), `count` is
  how many on-time points the message carried;
- `MinuteClosed`: a minute's final aggregate (count, sum, min, max and avg);
- `BatchStarted`, `BatchStopped`; `reset`, `overflow`, `closed` as gateway.feeds says.

An event's id is `<points entry id>,<batch events entry id>`: where the client
is in each stream. `Last-Event-ID` resumes both exactly; without it the feed
starts at both streams' current ends (read before subscribing, so nothing that
arrives meanwhile is lost).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent
from redis.asyncio import Redis

from contracts import streams
from contracts.messages import MinuteClosed, PointsRecorded
from contracts.runtime.batch_registry import BatchRegistry
from gateway.batches_reads import one_batch
from gateway.feeds import HEARTBEAT, TERMINAL, FeedEvent, Feeds
from gateway.problems import ProblemError
from gateway.sse import is_entry_id, merge, sse

__all__ = ["batch_events"]

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


async def _merged(
    points: AsyncIterator[FeedEvent], events: AsyncIterator[FeedEvent], at: list[str], rate: float
) -> AsyncIterator[FeedEvent]:
    """Both feeds as one (gateway.sse.merge), each event carrying both positions; ends
    when either ends. Heartbeats pass through and move no position."""
    sampler = Sampler(rate)
    side = {"points": 0, "events": 1}
    async for name, event in merge({"points": points, "events": events}):
        if event.event in TERMINAL or event.event == HEARTBEAT:
            yield event
            continue
        at[side[name]] = event.id
        data: bytes | None = event.data
        if event.event == "PointsRecorded":
            data = _points_event(event.data, sampler)
        elif event.event == "MinuteClosed":
            data = _minute_event(event.data)
        if data is not None:
            yield FeedEvent(",".join(at), event.event, data)


async def _prepend(first: FeedEvent, rest: AsyncIterator[FeedEvent]) -> AsyncIterator[FeedEvent]:
    yield first
    async for event in rest:
        yield event


async def _ends(redis: Redis, names: list[str]) -> list[str]:
    ends = []
    for name in names:
        newest: Any = await redis.xrevrange(name, count=1)
        ends.append(newest[0][0].decode() if newest else "0-0")
    return ends


def _resume_from(header: str | None) -> list[str] | None:
    """The two positions of a `Last-Event-ID`; None without one; 400 if it is not ours."""
    if not header:
        return None
    parts = header.split(",")
    if len(parts) != 2 or not all(is_entry_id(p) for p in parts):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            f"Last-Event-ID {header[:100]!r} is not an event id of this feed "
            "(<points entry id>,<batch events entry id>)",
        )
    return parts


@get("/batches/{batch_id:str}/events", summary="Follow a batch: live points, minutes (SSE)")
async def batch_events(
    batch_id: FromPath[str],
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    redis: NamedDependency[Redis],
    batches: NamedDependency[BatchRegistry],
    feeds: NamedDependency[Feeds],
    points_per_s: Annotated[
        float, QueryParameter(ge=0, le=MAX_POINTS_PER_S)
    ] = DEFAULT_POINTS_PER_S,
) -> ServerSentEvent:
    view = await one_batch(pool, batches, batch_id)  # 404 for an unknown batch
    specs = [streams.POINTS, streams.BATCHES_EVENTS]
    names = [feeds.get(spec).spec.name for spec in specs]
    at = _resume_from(request.headers.get("last-event-id")) or await _ends(redis, names)

    def mine(message: Any) -> bool:
        return getattr(message, "batch_id", None) == batch_id

    points = await feeds.get(streams.POINTS).subscribe(match=mine, after=at[0])
    events = await feeds.get(streams.BATCHES_EVENTS).subscribe(match=mine, after=at[1])
    snapshot = FeedEvent("", "snapshot", msgspec.json.encode(view))
    return sse(_prepend(snapshot, _merged(points, events, at, points_per_s)))
