"""Live feeds: one XREAD reader per stream per gateway process, fanned out to SSE clients.

    feed = feeds_of(app.state).get(streams.JOBS_EVENTS)
    events = await feed.subscribe(match=lambda m: m.job_id == job_id, after=last_event_id)
    return sse(events)  # gateway/feeds/sse.py: how events are rendered for the client

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
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio import Redis

from contracts.codec import DATA_FIELD, entry_key
from contracts.streams import StreamSpec

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
TERMINAL = (_OVERFLOW, _CLOSED)  # the last event a subscription yields


Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def _xrange(redis: Redis, name: str, *, start: str = "-", count: int) -> Entries:
    return cast(Entries, await redis.xrange(name, min=start, count=count))


async def _xrevrange(redis: Redis, name: str, *, count: int) -> Entries:
    return cast(Entries, await redis.xrevrange(name, count=count))


@dataclass(eq=False)
class _Subscriber:
    match: Match
    queue: asyncio.Queue[FeedEvent]
    ended: str | None = None
    released: bool = False


class Subscription:
    """One client's events (an async iterator) from `StreamFeed.subscribe`.

    It is unregistered, and `conveyor_sse_clients` decremented, exactly once: when
    its events end (`overflow`, `closed`), when it is cancelled while waiting, when it
    is `aclose()`d (started or not), or, as a last resort, when it is dropped unclosed.
    """

    def __init__(self, feed: StreamFeed, sub: _Subscriber, after: str | None) -> None:
        self._feed = feed
        self._sub = sub
        self._events = feed._events(sub, after)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FeedEvent:
        return await anext(self._events)

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            self.release()

    def release(self) -> None:
        """Unregister now (synchronous: it runs even inside a cancelled scope)."""
        self._feed._release(self._sub)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


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

    async def subscribe(self, *, match: Match, after: str | None = None) -> Subscription:
        """Events matching `match`: the backlog after `after` (if given), then live ones.

        The subscriber is registered (and counted) when this returns; iterate it to
        the end or `aclose()` it to unregister (see `Subscription`).
        """
        sub = _Subscriber(match, asyncio.Queue(self.buffer))
        await self._ensure_reader()
        self._subscribers.add(sub)
        if self.clients is not None:
            self.clients.labels(self.spec.name).inc()
        return Subscription(self, sub, after)

    def _release(self, sub: _Subscriber) -> None:
        """Unregister `sub` and uncount it; only the first call does anything."""
        if sub.released:
            return
        sub.released = True
        self._subscribers.discard(sub)
        if self.clients is not None:
            self.clients.labels(self.spec.name).dec()

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
                if (
                    event.event == HEARTBEAT
                    or last is None
                    or entry_key(event.id) > entry_key(last)
                ):
                    yield event
        finally:  # synchronous on purpose: it runs even inside a cancelled scope
            self._release(sub)

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
        return entry_key(after) < entry_key(oldest[0][0].decode()) and entry_key(after) != (0, 0)

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

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        registry: CollectorRegistry | None = None,
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ):
        self.redis = redis
        self.prefix = prefix
        self.heartbeat_s = heartbeat_s
        self._feeds: dict[str, StreamFeed] = {}
        self.clients = Gauge(
            "conveyor_sse_clients", "Open SSE subscriptions.", ["stream"], registry=registry
        )

    def get(self, spec: StreamSpec) -> StreamFeed:
        named = spec.prefixed(self.prefix)
        if named.name not in self._feeds:
            self._feeds[named.name] = StreamFeed(
                self.redis, named, clients=self.clients, heartbeat_s=self.heartbeat_s
            )
        return self._feeds[named.name]

    async def subscribe_all(
        self, specs: Mapping[str, StreamSpec], *, match: Match, after: Mapping[str, str]
    ) -> dict[str, Subscription]:
        """One subscription per named stream, each after its position in `after`; none
        is left open if one of them cannot be made."""
        made: dict[str, Subscription] = {}
        try:
            for name, spec in specs.items():
                made[name] = await self.get(spec).subscribe(match=match, after=after[name])
        except BaseException:
            for subscription in made.values():
                await subscription.aclose()
            raise
        return made

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.close()
