"""SSE responses at the ASGI level: a client's events go from the feed's reader to
its socket as bytes, with one small buffer per client in between.

    return follow(feeds, {"jobs": streams.JOBS_EVENTS}, match=Only(job_id=...),
                  cursor={"jobs": "1700000000000-0"})   # GET /events
    return EventStream(pumping=events)                   # any async iterator of FeedEvents

An `EventStream` is a Litestar `ServerSentEvent` to the route (same headers, same
OpenAPI), but its body is written by an `Outbox`: a list of pending bytes and a
future to wake the response's own task. For `follow`, the outbox is registered in
each stream's feed directly (`_Tap`): the reader pushes the event's frame (encoded
once per event, shared by every client with the same event id) into the outbox,
the response's task wakes and writes everything pending in one `send`. No queue, no
generator chain, no Litestar streaming machinery (anyio task group, per-message
encode) per client and event. Where a feed rewrites its events (a job's follow, a
batch's sampled points), `pumping=` runs that iterator in a task into the outbox.

Per client: the backlog after its cursor first (live events wait in the outbox
meanwhile, and those the backlog covered are dropped), then live; more than the
feed's `buffer` events waiting (a slow client) ends it with `overflow`; a
disconnect (`http.disconnect`, watched by a small task) ends it at once; the
feeds' `close()` (SIGTERM) ends it with `closed`. Either way the outbox is detached
from its feeds, and `conveyor_sse_clients` decremented, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, cast

from litestar import Request
from litestar.response import ServerSentEvent
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from contracts.codec import entry_key
from contracts.streams import StreamSpec
from gateway.feeds.fanout import (
    HEARTBEAT,
    OVERFLOW,
    TERMINAL,
    FeedEvent,
    Feeds,
    Match,
    StreamFeed,
    reset_event,
)
from gateway.feeds.outbox import DONE, GONE, Outbox

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 1000
HEARTBEAT_BYTES = b": heartbeat\r\n\r\n"  # a comment line, then the blank line
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Releasable = Callable[[], None]


class _Tap:
    """A `_Follower` registered in one topic's feed (a `Sink` of gateway.feeds.fanout)."""

    __slots__ = ("follower", "released", "topic")

    def __init__(self, follower: _Follower, topic: str) -> None:
        self.follower, self.topic, self.released = follower, topic, False

    @property
    def ended(self) -> str | None:
        return self.follower.outbox.ended

    def push(self, events: list[FeedEvent]) -> int:
        return self.follower.push(self.topic, events)

    def end(self, why: str) -> None:
        self.follower.outbox.end(why)


class _Follower:
    """A client of one or more topics' feeds, with a cursor (`topic:entry-id,...`)."""

    __slots__ = ("cursor", "held", "outbox", "prefix")

    def __init__(self, outbox: Outbox, cursor: dict[str, str]) -> None:
        self.outbox = outbox
        self.cursor = cursor
        # one topic: every client's id for an event is the same, so is its frame
        self.prefix = f"{next(iter(cursor))}:" if len(cursor) == 1 else None
        self.held: list[tuple[str, FeedEvent]] | None = []  # live events during the backlog

    def push(self, topic: str, events: list[FeedEvent]) -> int:
        if events[0].event == HEARTBEAT:  # (a heartbeat comes alone)
            return 0 if self.held is not None else self.outbox.put(HEARTBEAT_BYTES)
        if self.held is not None:
            self.held += [(topic, event) for event in events]
            return len(self.held)
        if len(events) == 1:
            return self.outbox.put(self.frame(topic, events[0]))
        return self.outbox.put(b"".join([self.frame(topic, e) for e in events]), len(events))

    def frame(self, topic: str, event: FeedEvent) -> bytes:
        self.cursor[topic] = event.id
        if self.prefix is not None:
            return event.frame(self.prefix + event.id)
        return event.frame(",".join(f"{t}:{e}" for t, e in sorted(self.cursor.items())))

    def go_live(self) -> None:
        """After the backlog: the live events it did not cover, then live (no await
        between, so nothing comes in between)."""
        held, self.held = self.held or [], None
        for topic, event in held:
            if entry_key(event.id) > entry_key(self.cursor[topic]):
                self.outbox.put(self.frame(topic, event))


# The server's own `send`, put in the scope by `gateway.__main__` (`with_raw_send`): the
# body of a stream is written through it, past the middlewares' wrappers (metrics,
# Litestar's exception handler: they look at the start and the end of a response, which
# still go through them); ~10% of the CPU per client per event. Without it (tests
# serving the app directly), everything goes through `send`.
RAW_SEND = "conveyor.raw_send"

_HEAD = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


class EventStream(ServerSentEvent):
    """An SSE response whose body an `Outbox` writes (see the module docstring).

    `start(outbox, send)` runs first (a backlog); `pumping` is a feed's events, pumped
    into the outbox until `until(event)`; `releasing` runs once when the response ends.
    A `ServerSentEvent` to Litestar (OpenAPI, the route's return type), but none of its
    streaming machinery is built: `to_asgi_response` gives the `_Responding` below.
    """

    def __init__(
        self,
        *,
        outbox: Outbox | None = None,
        start: Callable[[Outbox, Send], Awaitable[None]] | None = None,
        pumping: AsyncIterator[FeedEvent] | None = None,
        until: Callable[[FeedEvent], bool] | None = None,
        releasing: Iterable[Releasable] = (),
    ) -> None:
        self.responding = _Responding(
            outbox or Outbox(DEFAULT_BUFFER), start, pumping, until, tuple(releasing)
        )

    def to_asgi_response(
        self, app: Any, request: Request[Any, Any, Any], **kwargs: Any
    ) -> ASGIResponse:
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                 for k, v in (kwargs.get("headers") or {}).items()]  # fmt: skip
        extra += [c.to_encoded_header() for c in kwargs.get("cookies") or ()]
        if extra:
            self.responding.head = [*_HEAD, *extra]
        return self.responding


class _Responding(ASGIResponse):
    """The ASGI side of one `EventStream`: headers, then the outbox until it ends.
    (An `ASGIResponse` by type only: it sets none of its attributes.)"""

    __slots__ = ("head", "outbox", "pumping", "releasing", "start", "until")

    def __init__(  # no super().__init__: its headers object is not needed per client
        self,
        outbox: Outbox,
        start: Callable[[Outbox, Send], Awaitable[None]] | None,
        pumping: AsyncIterator[FeedEvent] | None,
        until: Callable[[FeedEvent], bool] | None,
        releasing: tuple[Releasable, ...],
    ) -> None:
        self.outbox, self.start, self.pumping, self.until = outbox, start, pumping, until
        self.releasing = releasing
        self.head = _HEAD

    def release(self) -> None:
        """Let the feeds go (synchronous: it runs even inside a cancelled scope)."""
        for release in self.releasing:
            release()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outbox = self.outbox
        watching = pump = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.head})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            watching = _Disconnect(receive, outbox)
            body = cast(Send, scope.get(RAW_SEND, send))  # (see RAW_SEND)
            if self.start is not None:
                await self.start(outbox, body)
            if self.pumping is not None:
                pump = asyncio.ensure_future(_pump(self.pumping, outbox, self.until))
            if await outbox.drain(body):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            outbox.end(GONE)
            self.release()
            if watching is not None:
                watching.stop()
            if pump is not None:
                pump.cancel()


class _Disconnect:
    """Ends the outbox when `receive()` says `http.disconnect`.

    Without a task of its own where the server's `receive()` is a coroutine (uvicorn; a
    task per client is memory per client): it is stepped by hand, each time what it
    waits on is done. Other servers' awaitables (granian's) are awaited in a task.
    """

    __slots__ = ("coro", "outbox", "receive", "task", "waiting")

    def __init__(self, receive: Receive, outbox: Outbox) -> None:
        self.receive, self.outbox = receive, outbox
        self.waiting: asyncio.Future[Any] | None = None
        self.task: asyncio.Task[None] | None = None
        first = receive()
        if isinstance(first, Coroutine):
            self.coro: Coroutine[Any, Any, Any] | None = first
            self._step(None)
        else:
            self.coro = None
            self.task = asyncio.ensure_future(self._watch(first))

    def _step(self, _done: object) -> None:
        self.waiting = None
        while self.coro is not None:
            try:
                waiting_on = self.coro.send(None)
            except StopIteration as stop:
                if stop.value.get("type") == "http.disconnect":
                    self.outbox.end(GONE)
                    return
                self.coro = cast(Coroutine[Any, Any, Any], self.receive())  # a body: read on
                continue
            except Exception:
                self.outbox.end(GONE)
                return
            if isinstance(waiting_on, asyncio.Future):
                self.waiting = waiting_on
                waiting_on.add_done_callback(self._step)
            else:  # a bare yield: step again soon
                asyncio.get_running_loop().call_soon(self._step, None)
            return

    async def _watch(self, first: Awaitable[Any]) -> None:
        with contextlib.suppress(Exception):
            message = await first
            while message["type"] != "http.disconnect":
                message = await self.receive()
        self.outbox.end(GONE)

    def stop(self) -> None:
        if self.waiting is not None:
            self.waiting.remove_done_callback(self._step)
            self.waiting = None
        if self.coro is not None:
            self.coro.close()
            self.coro = None
        if self.task is not None:
            self.task.cancel()


async def _pump(
    events: AsyncIterator[FeedEvent], outbox: Outbox, until: Callable[[FeedEvent], bool] | None
) -> None:
    """A feed's events into the outbox (as `pumping=`); the outbox ends with it."""
    try:
        async for event in events:
            if outbox.ended is not None:
                return
            if event.event == HEARTBEAT:
                outbox.put(HEARTBEAT_BYTES)
            elif event.event in TERMINAL:
                outbox.end(event.event)
                return
            else:
                if outbox.put(event.frame()) > outbox.buffer:  # a slow client
                    outbox.end(OVERFLOW)
                    return
                if until is not None and until(event):
                    break
    except Exception:  # a broken feed ends its response, it does not hang it
        log.exception("SSE feed failed; ending the response")
    finally:
        outbox.end(DONE)  # keeps a `gone`; else ends what stopped without a word
        close = getattr(events, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


async def follow(
    feeds: Feeds, specs: Mapping[str, StreamSpec], *, match: Match, cursor: dict[str, str]
) -> EventStream:
    """`GET /events`: the topics' events matching `match` after `cursor` (every topic's
    position), then live, each event's id the cursor of everything sent so far."""
    topics = {topic: feeds.get(spec) for topic, spec in specs.items()}
    outbox = Outbox(min(feed.buffer for feed in topics.values()))
    follower = _Follower(outbox, dict(cursor))
    attached: list[Releasable] = []
    try:
        for topic, feed in topics.items():  # registered (live events held) before the backlog
            tap = _Tap(follower, topic)
            await feed.attach(tap, match)
            attached.append(functools.partial(feed.detach, tap))
    except BaseException:
        for release in attached:
            release()
        raise
    start = functools.partial(_backlogs, topics, follower, match)
    return EventStream(outbox=outbox, start=start, releasing=attached)


async def _backlogs(
    topics: Mapping[str, StreamFeed], follower: _Follower, match: Match, outbox: Outbox, send: Send
) -> None:
    """Each topic's backlog after the cursor, a page per `send`; then live."""
    for topic, feed in topics.items():
        after = follower.cursor[topic]
        if await feed.trimmed_since(after):
            await _write(send, [follower.frame(topic, reset_event(after))])
            continue
        async for page in feed.backlog(after, match):
            if outbox.ended is not None:
                return
            await _write(send, [follower.frame(topic, event) for event in page])
    follower.go_live()


async def _write(send: Send, frames: list[bytes]) -> None:
    await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
