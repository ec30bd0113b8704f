"""Live feeds: one XREAD reader per stream per gateway process, fanned out to SSE clients.

    feed = feeds_of(app.state).get(streams.JOBS_EVENTS)
    events = feed.subscribe(match=lambda m: m.job_id == job_id, after=last_event_id)
    return sse(events)

- **One reader.** `StreamFeed` reads its stream with `XREAD BLOCK` from one task,
  started with the first subscriber; adding clients adds no Redis reads.
- **No gaps, no duplicates.** A subscriber is registered (its live queue
  buffering) *before* it reads the backlog after `after` with `XRANGE`; live
  events at or before the last backlog id are then skipped. Each SSE event's `id`
  is the stream entry id, so `Last-Event-ID` resumes exactly.
- **Reset.** If `after` is older than the stream's first entry, what came
  between may have been trimmed: the first event is `reset` (refetch state),
  then the feed continues live.
- **Bounded memory.** Each subscriber's queue holds `buffer` events; a client
  that falls behind is cut off with an `overflow` event carrying a `retry:`
  hint, and resumes with `Last-Event-ID` from the backlog.
- **Heartbeats** (SSE comments), broadcast by the reader every `heartbeat_s`,
  keep idle connections open through proxies. **Shutdown** ends every subscriber
  at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from litestar.response import ServerSentEvent, ServerSentEventMessage
from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio import Redis

from contracts.codec import DATA_FIELD
from contracts.streams import StreamSpec
from contracts.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Match = Callable[[Any], bool]
BLOCK_MS = 1000
PAGE = 500
RETRY_MS = 1000


@dataclass(frozen=True)
class FeedEvent:
    id: str
    event: str
    data: bytes


HEARTBEAT = "heartbeat"
HEARTBEAT_S = 15.0
_RESET = "reset"
_OVERFLOW = "overflow"
_CLOSED = "closed"


Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def _xrange(redis: Redis, name: str, *, start: str = "-", count: int) -> Entries:
    return cast(Entries, await redis.xrange(name, min=start, count=count))


async def _xrevrange(redis: Redis, name: str, *, count: int) -> Entries:
    return cast(Entries, await redis.xrevrange(name, count=count))


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class _Subscriber:
    match: Match
    queue: asyncio.Queue[FeedEvent]
    ended: str | None = None


@dataclass(eq=False)
class StreamFeed:
    """The fan-out of one stream in this process."""

    redis: Redis
    spec: StreamSpec
    buffer: int = 1000
    clients: Gauge | None = None
    heartbeat_s: float = HEARTBEAT_S
    _subscribers: set[_Subscriber] = field(default_factory=set)
    _reader: asyncio.Task[None] | None = None
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stopping: bool = False
    _decoder: msgspec.json.Decoder[Any] = field(init=False)

    def __post_init__(self) -> None:
        self._decoder = self.spec.decoder()

    async def subscribe(
        self, *, match: Match, after: str | None = None
    ) -> AsyncGenerator[FeedEvent, None]:
        """Events matching `match`: the backlog after `after` (if given), then live ones.

        The subscriber is registered (and counted) when this returns; iterate the
        generator to the end or `aclose()` it to unregister.
        """
        sub = _Subscriber(match, asyncio.Queue(self.buffer))
        await self._ensure_reader()
        self._subscribers.add(sub)
        if self.clients is not None:
            self.clients.labels(self.spec.name).inc()
        return self._events(sub, after)

    async def _events(self, sub: _Subscriber, after: str | None) -> AsyncGenerator[FeedEvent, None]:
        match = sub.match
        try:
            last = None
            if after is not None:
                if await self._trimmed_since(after):
                    yield FeedEvent(after, _RESET, b'{"reason":"events were trimmed; refetch"}')
                else:
                    async for event in self._backlog(after, match):
                        last = event.id
                        yield event
            while True:
                event = await sub.queue.get()
                if event.event in (_OVERFLOW, _CLOSED):
                    yield event
                    return
                if event.event == HEARTBEAT or last is None or _id(event.id) > _id(last):
                    yield event
        finally:
            self._subscribers.discard(sub)
            if self.clients is not None:
                self.clients.labels(self.spec.name).dec()

    async def end(self) -> str:
        """The id of the stream's newest entry ("0-0" if empty): a place to start live."""
        return await self._tail()

    async def close(self) -> None:
        self._stopping = True
        for sub in list(self._subscribers):
            self._end(sub, _CLOSED)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _ensure_reader(self) -> None:
        """Start the reader at the stream's current end, before any subscriber reads its
        backlog: every entry after that point reaches the subscribers live."""
        async with self._starting:
            if self._reader is None or self._reader.done():
                start = await self._tail()
                self._reader = asyncio.create_task(self._read(start), name=f"feed:{self.spec.name}")

    async def _read(self, last: str) -> None:
        beat_at = time.monotonic() + self.heartbeat_s
        while not self._stopping:
            if time.monotonic() >= beat_at:
                beat_at = time.monotonic() + self.heartbeat_s
                self._broadcast(FeedEvent("", HEARTBEAT, b""))
            try:
                found = cast(
                    list[tuple[bytes, Entries]],
                    await self.redis.xread({self.spec.name: last}, count=PAGE, block=BLOCK_MS),
                )
            except Exception as exc:  # Redis away: keep trying, clients keep their place
                if self._stopping:  # redis-py may turn our cancel into a ConnectionError
                    return
                log.warning("feed %s: read failed (%s); retrying", self.spec.name, exc)
                await asyncio.sleep(1)
                continue
            for _stream, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    self._dispatch(last, fields)

    def _dispatch(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        decoded = self._decode(entry_id, fields)
        if decoded is None:
            return
        message, event = decoded
        for sub in list(self._subscribers):
            if sub.ended or not sub.match(message):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._end(sub, _OVERFLOW)

    def _broadcast(self, event: FeedEvent) -> None:
        for sub in list(self._subscribers):
            if not sub.ended:
                with contextlib.suppress(asyncio.QueueFull):  # a full queue is busy anyway
                    sub.queue.put_nowait(event)

    def _decode(self, entry_id: str, fields: dict[bytes, bytes]) -> tuple[Any, FeedEvent] | None:
        data = fields.get(DATA_FIELD, b"")
        try:
            message = self._decoder.decode(data)
        except msgspec.MsgspecError:
            return None
        return message, FeedEvent(entry_id, type(message).__name__, data)

    def _end(self, sub: _Subscriber, why: str) -> None:
        """Replace whatever is queued with one final event (room is made for it)."""
        sub.ended = why
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(FeedEvent("", why, b"{}"))

    async def _tail(self) -> str:
        newest = await _xrevrange(self.redis, self.spec.name, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def _trimmed_since(self, after: str) -> bool:
        oldest = await _xrange(self.redis, self.spec.name, count=1)
        if not oldest:
            return False
        return _id(after) < _id(oldest[0][0].decode()) and _id(after) != (0, 0)

    async def _backlog(self, after: str, match: Match) -> AsyncIterator[FeedEvent]:
        start = f"({after}"
        while True:
            page = await _xrange(self.redis, self.spec.name, start=start, count=PAGE)
            for entry_id, fields in page:
                decoded = self._decode(entry_id.decode(), fields)
                if decoded is not None and match(decoded[0]):
                    yield decoded[1]
            if len(page) < PAGE:
                return
            start = f"({page[-1][0].decode()}"


class Feeds:
    """This process's feeds, one per stream, created on first use."""

    def __init__(self, redis: Redis, prefix: str, registry: CollectorRegistry | None = None):
        self.redis = redis
        self.prefix = prefix
        self._feeds: dict[str, StreamFeed] = {}
        self.clients = Gauge(
            "conveyor_sse_clients", "Open SSE subscriptions.", ["stream"], registry=registry
        )

    def get(self, spec: StreamSpec) -> StreamFeed:
        named = spec.prefixed(self.prefix)
        if named.name not in self._feeds:
            self._feeds[named.name] = StreamFeed(self.redis, named, clients=self.clients)
        return self._feeds[named.name]

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.close()


class _Encoded(ServerSentEventMessage):
    """A message encoded already (Litestar sends what `encode` returns)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def encode(self) -> bytes:
        return self.raw


@functools.lru_cache(maxsize=4096)
def _encoded(event_id: str, event: str, data: bytes) -> _Encoded:
    """One event's bytes, made once and shared by every client that gets the same event."""
    message = ServerSentEventMessage(id=event_id or None, event=event, data=data.decode())
    return _Encoded(message.encode())


_HEARTBEAT_MESSAGE = _Encoded(ServerSentEventMessage(comment="heartbeat").encode())


async def _messages(events: AsyncIterator[FeedEvent]) -> AsyncIterator[ServerSentEventMessage]:
    async for event in events:
        if event.event == HEARTBEAT:
            yield _HEARTBEAT_MESSAGE
        elif event.event in (_OVERFLOW, _CLOSED):
            yield ServerSentEventMessage(event=event.event, data="{}", retry=RETRY_MS)
            return
        else:
            yield _encoded(event.id, event.event, event.data)


def sse(events: AsyncIterator[FeedEvent]) -> ServerSentEvent:
    """The SSE response for a feed subscription (heartbeats come from the feed)."""
    return ServerSentEvent(
        _messages(events),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


TERMINAL = (_OVERFLOW, _CLOSED)


async def merge(
    feeds: Mapping[str, AsyncIterator[FeedEvent]],
) -> AsyncIterator[tuple[str, FeedEvent]]:
    """Several subscriptions as one, in arrival order, each event tagged with its feed's
    name; ends after the first `overflow` or `closed` (which it yields), or when one ends."""
    if len(feeds) == 1:  # nothing to merge: no task, no queue hop
        ((only, feed),) = feeds.items()
        async for single in feed:
            yield only, single
            if single.event in TERMINAL:
                return
        return
    queue: asyncio.Queue[tuple[str, FeedEvent | None]] = asyncio.Queue(maxsize=1)

    async def pump(name: str, feed: AsyncIterator[FeedEvent]) -> None:
        async for event in feed:
            await queue.put((name, event))
        await queue.put((name, None))

    pumps = [asyncio.create_task(pump(name, feed)) for name, feed in feeds.items()]
    try:
        while True:
            name, event = await queue.get()
            if event is None:
                return
            yield name, event
            if event.event in TERMINAL:
                return
    finally:
        for task in pumps:
            await cancel_and_wait(task)
        for feed in feeds.values():
            with contextlib.suppress(Exception):
                await feed.aclose()  # type: ignore[attr-defined]


def encode_cursor(positions: dict[str, str]) -> str:
    """One SSE id for several streams: `topic:entry-id,topic:entry-id`."""
    return ",".join(f"{topic}:{entry}" for topic, entry in sorted(positions.items()))


def decode_cursor(text: str | None, topics: list[str]) -> dict[str, str] | None:
    """The positions in a cursor for every one of `topics`, or None if it has not them all."""
    if not text:
        return None
    found = dict(part.split(":", 1) for part in text.split(",") if ":" in part)
    if not all(topic in found for topic in topics):
        return None
    if not all(_valid_id(found[topic]) for topic in topics):
        return None
    return {topic: found[topic] for topic in topics}


def _valid_id(entry_id: str) -> bool:
    ms, _, seq = entry_id.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit())
