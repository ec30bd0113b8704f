"""Rendering feeds for clients: several subscriptions as one, cursors, SSE bytes.

- `merge` joins subscriptions (a feed over several streams) in arrival order;
- a cursor (`topic:entry-id,topic:entry-id`) is such a feed's event id, since events
  of two streams can arrive in either order and one entry id could not resume both;
- `sse` turns a subscription into the response: each event is encoded once and the
  bytes are shared by every client that gets it; heartbeats become SSE comments;
  `overflow` / `closed` end the stream with a `retry:` hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping

from litestar.response import ServerSentEvent, ServerSentEventMessage

from contracts.tasks import cancel_and_wait
from gateway.feeds import HEARTBEAT, RETRY_MS, TERMINAL, FeedEvent


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
        elif event.event in TERMINAL:
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
