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
- **Filtered once per event.** Subscribers are grouped by their `match`: a match
  that compares equal (such as `Only(job_id=...)` in routes.py) is called once per
  event for its whole group, then the events go to every member, all that one
  `XREAD` brought in one push (a reader that fell behind catches up in one write
  per client, not one per event).
- **Sinks.** The reader hands events to sinks (`push`, `end`): a `Subscription`'s
  queue (an async iterator, for feeds that rewrite events), or an SSE response that
  writes the event's shared bytes itself (gateway/feeds/stream.py), with no task,
  queue or generator per client between the reader and the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

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


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class FeedEvent:
    """One event of a feed. `frame()` is its SSE bytes, made once and shared by every
    client that sends it with the same id."""

    id: str
    event: str
    data: bytes
    _tail: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _frame: tuple[str, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def frame(self, event_id: str | None = None, *, retry_ms: int | None = None) -> bytes:
        """`id: <event_id or own id>` (none if empty), `event:`, `data:` lines, `retry:`."""
        event_id = self.id if event_id is None else event_id
        cached = self._frame
        if cached is not None and cached[0] == event_id and retry_ms is None:
            return cached[1]
        tail = self._tail
        if tail is None:
            lines = [b"event: " + _one_line(self.event)]
            lines += [b"data: " + line for line in _LINE_BREAK.split(self.data)]
            tail = b"\r\n".join(lines) + b"\r\n"
            object.__setattr__(self, "_tail", tail)
        raw = (b"id: " + _one_line(event_id) + b"\r\n" if event_id else b"") + tail
        if retry_ms is not None:
            return raw + b"retry: %d\r\n\r\n" % retry_ms
        raw += b"\r\n"
        object.__setattr__(self, "_frame", (event_id, raw))
        return raw


def _one_line(text: str) -> bytes:
    return _LINE_BREAK.sub(b"", text.encode())


HEARTBEAT = "heartbeat"
HEARTBEAT_S = 15.0
_RESET = "reset"
OVERFLOW = "overflow"
CLOSED = "closed"
TERMINAL = (OVERFLOW, CLOSED)  # the last event a subscription yields
_HEARTBEAT_EVENT = FeedEvent("", HEARTBEAT, b"")


Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def _xrange(redis: Redis, name: str, *, start: str = "-", count: int) -> Entries:
    return cast(Entries, await redis.xrange(name, min=start, count=count))


async def _xrevrange(redis: Redis, name: str, *, count: int) -> Entries:
    return cast(Entries, await redis.xrevrange(name, count=count))


class Sink(Protocol):
    """What the reader hands events to (a subscription's queue, an SSE response)."""

    released: bool  # set once the feed has let it go (see `StreamFeed.detach`)

    @property
    def ended(self) -> str | None:
        """Set once the sink takes nothing more."""
        ...

    def push(self, events: list[FeedEvent]) -> int:
        """Take events (one or more, in stream order: what one XREAD brought); return how
        many wait to be sent (> buffer: overflow)."""
        ...

    def end(self, why: str) -> None:
        """No more events: `overflow` or `closed` comes last."""
        ...


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[FeedEvent]
    ended: str | None = None
    released: bool = False

    def push(self, events: list[FeedEvent]) -> int:
        try:
            for event in events:
                self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return self.queue.maxsize + 1
        return self.queue.qsize()

    def end(self, why: str) -> None:
        """Replace whatever is queued with one final event (room is made for it)."""
        self.ended = why
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(FeedEvent("", why, b"{}"))


class Subscription:
    """One client's events (an async iterator) from `StreamFeed.subscribe`.

    It is unregistered, and `conveyor_sse_clients` decremented, exactly once: when
    its events end (`overflow`, `closed`), when it is cancelled while waiting, when it
    is `aclose()`d (started or not), or, as a last resort, when it is dropped unclosed.
    """

    def __init__(self, feed: StreamFeed, sub: _Subscriber, match: Match, after: str | None):
        self._feed = feed
        self._sub = sub
        self._events = feed._events(sub, match, after)

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
        self._feed.detach(self._sub)

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
    _subscribers: set[Sink] = field(default_factory=set)
    _groups: dict[Match, set[Sink]] = field(default_factory=dict)
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
        sub = _Subscriber(asyncio.Queue(self.buffer))
        await self.attach(sub, match)
        return Subscription(self, sub, match, after)

    async def attach(self, sink: Sink, match: Match) -> None:
        """Register `sink` for the live events matching `match` (counted in
        `conveyor_sse_clients`) until `detach`; the reader runs from now on."""
        await self._ensure_reader()
        self._subscribers.add(sink)
        self._groups.setdefault(match, set()).add(sink)
        if self.clients is not None:
            self.clients.labels(self.spec.name).inc()

    def detach(self, sink: Sink) -> None:
        """Unregister `sink` and uncount it; only the first call does anything
        (synchronous: it runs even inside a cancelled scope)."""
        if sink.released:
            return
        sink.released = True
        self._subscribers.discard(sink)
        for match, group in list(self._groups.items()):
            if sink in group:
                group.discard(sink)
                if not group:
                    del self._groups[match]
        if self.clients is not None:
            self.clients.labels(self.spec.name).dec()

    async def _events(
        self, sub: _Subscriber, match: Match, after: str | None
    ) -> AsyncGenerator[FeedEvent, None]:
        try:
            last = None
            if after is not None:
                if await self.trimmed_since(after):
                    yield reset_event(after)
                else:
                    async for page in self.backlog(after, match):
                        for event in page:
                            last = event.id
                            yield event
            while True:
                event = await sub.queue.get()
                if event.event in (OVERFLOW, CLOSED):
                    yield event
                    return
                if (
                    event.event == HEARTBEAT
                    or last is None
                    or entry_key(event.id) > entry_key(last)
                ):
                    yield event
        finally:  # synchronous on purpose: it runs even inside a cancelled scope
            self.detach(sub)

    async def end(self) -> str:
        """The id of the stream's newest entry ("0-0" if empty): a place to start live."""
        return await self._tail()

    async def close(self) -> None:
        self._stopping = True
        for sink in list(self._subscribers):
            sink.end(CLOSED)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _ensure_reader(self) -> None:
        """Start the reader at the stream's current end, before any subscriber reads its
        backlog: every entry after that point reaches the subscribers live."""
        if self._reader is not None and not self._reader.done():
            return
        async with self._starting:
            if self._reader is None or self._reader.done():
                start = await self._tail()
                self._reader = asyncio.create_task(self._read(start), name=f"feed:{self.spec.name}")

    async def _read(self, last: str) -> None:
        beat_at = time.monotonic() + self.heartbeat_s
        while not self._stopping:
            if time.monotonic() >= beat_at:
                beat_at = time.monotonic() + self.heartbeat_s
                self._broadcast(_HEARTBEAT_EVENT)
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
                if entries:
                    last = entries[-1][0].decode()
                    self._dispatch([self._decode(i.decode(), fields) for i, fields in entries])

    def _dispatch(self, decoded: list[tuple[Any, FeedEvent] | None]) -> None:
        """What one XREAD brought: each entry decoded once, one `match` call per group and
        entry, then one push per sink of the group (so one write per client, however
        many entries a reader that fell behind gets at once)."""
        buffer = self.buffer
        for match, group in list(self._groups.items()):
            events = [d[1] for d in decoded if d is not None and match(d[0])]
            if not events:
                continue
            for sink in list(group):
                if sink.ended is None and sink.push(events) > buffer:
                    sink.end(OVERFLOW)

    def _broadcast(self, event: FeedEvent) -> None:
        for sink in list(self._subscribers):
            if sink.ended is None:
                sink.push([event])  # a full sink is busy anyway: not ended for a heartbeat

    def _decode(self, entry_id: str, fields: dict[bytes, bytes]) -> tuple[Any, FeedEvent] | None:
        data = fields.get(DATA_FIELD, b"")
        try:
            message = self._decoder.decode(data)
        except msgspec.MsgspecError:
            return None
        return message, FeedEvent(entry_id, type(message).__name__, data)

    async def _tail(self) -> str:
        newest = await _xrevrange(self.redis, self.spec.name, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def trimmed_since(self, after: str) -> bool:
        """Whether entries after `after` may have been trimmed (then send `reset_event`)."""
        oldest = await _xrange(self.redis, self.spec.name, count=1)
        if not oldest:
            return False
        return entry_key(after) < entry_key(oldest[0][0].decode()) and entry_key(after) != (0, 0)

    async def backlog(self, after: str, match: Match) -> AsyncIterator[list[FeedEvent]]:
        """The events after `after` matching `match`, a page (of up to PAGE entries read)
        at a time, until the stream's end."""
        start = f"({after}"
        while True:
            page = await _xrange(self.redis, self.spec.name, start=start, count=PAGE)
            events = []
            for entry_id, fields in page:
                decoded = self._decode(entry_id.decode(), fields)
                if decoded is not None and match(decoded[0]):
                    events.append(decoded[1])
            if events:
                yield events
            if len(page) < PAGE:
                return
            start = f"({page[-1][0].decode()}"


def reset_event(after: str) -> FeedEvent:
    """The first event when `after` is older than the stream's first entry."""
    return FeedEvent(after, _RESET, b'{"reason":"events were trimmed; refetch"}')


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
