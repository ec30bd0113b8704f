"""Rendering feeds for clients: several subscriptions as one, cursors, SSE bytes.

- `merge` joins subscriptions (a feed over several streams) in arrival order;
- a cursor (`topic:entry-id,topic:entry-id`) is such a feed's event id, since events
  of two streams can arrive in either order and one entry id could not resume both;
  `with_cursor` gives each merged event the cursor of everything sent so far (every
  feed over several streams uses it: /events, /batches/{id}/events);
- `prepend` puts a first event (a `snapshot`) before a subscription's events;
- `sse` turns a subscription into the response (gateway/feeds/stream.py, pumped
  into the response's outbox): each event is encoded once (`FeedEvent.frame`);
  `overflow` / `closed` end the stream with a `retry:` hint; `until=` ends it after
  a given event (a job's last). `GET /events` does not go through here: it uses
  `stream.follow`, which has no iterator per client at all.

Heartbeats are SSE comments and nothing else: the bytes `: heartbeat\r\n\r\n`. A
comment is not an event, so an `EventSource` or an SSE client library never sees
it. (Litestar 2.25's `ServerSentEventMessage(comment=...)` also writes an empty
`data:` line, which makes a real, empty `message` event; so it is not used.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

from contracts.codec import is_entry_id
from contracts.runtime.tasks import cancel_and_wait
from gateway.feeds.fanout import HEARTBEAT, TERMINAL, FeedEvent
from gateway.feeds.stream import HEARTBEAT_BYTES, EventStream

__all__ = ["HEARTBEAT_BYTES", "decode_cursor", "encode_cursor", "merge", "prepend", "sse",
           "with_cursor"]  # fmt: skip


Until = Callable[[FeedEvent], bool]


async def _aclose(events: object) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


class Releasable(Protocol):
    def release(self) -> None: ...


def sse(
    events: AsyncIterator[FeedEvent],
    *,
    until: Until | None = None,
    releasing: Iterable[Releasable] = (),
) -> EventStream:
    """The SSE response for a feed subscription (heartbeats come from the feed).

    With `until`, the stream ends (and the subscription is closed) right after the
    first event for which `until(event)` is true, e.g. a job's terminal event.
    `releasing`: the subscriptions under `events`, released when the response ends
    even if `events` never got to iterate them (a client that leaves right after a
    snapshot: closing a generator that never started runs none of its cleanup).
    """
    return EventStream(pumping=events, until=until, releasing=[s.release for s in releasing])


async def merge(
    feeds: Mapping[str, AsyncIterator[FeedEvent]],
) -> AsyncIterator[tuple[str, FeedEvent]]:
    """Several subscriptions as one, in arrival order, each event tagged with its feed's
    name; ends after the first `overflow` or `closed` (which it yields), or when one ends."""
    if len(feeds) == 1:  # nothing to merge: no task, no queue hop
        ((only, feed),) = feeds.items()
        try:
            async for single in feed:
                yield only, single
                if single.event in TERMINAL:
                    return
        finally:
            await _aclose(feed)
        return
    queue: asyncio.Queue[tuple[str, FeedEvent | None]] = asyncio.Queue(maxsize=1)

    async def pump(name: str, feed: AsyncIterator[FeedEvent]) -> None:
        try:  # each pump closes its own feed, whatever ends it
            async for event in feed:
                await queue.put((name, event))
            await queue.put((name, None))
        finally:
            await _aclose(feed)

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
        await _stop(pumps)


_stopping: set[asyncio.Future[Any]] = set()


async def _stop(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel every task now, then wait for them in a shielded task.

    A client's disconnect cancels the response inside an anyio cancel scope, where
    every `await` of this cleanup is cancelled again: awaiting the tasks one by one
    there stopped at the first and left the others (and their subscriptions,
    counted in `conveyor_sse_clients`) running for ever. So no task is left
    uncancelled before the first `await`, and the waiting runs on by itself.
    """
    for task in tasks:
        task.cancel()
    waiting = asyncio.ensure_future(asyncio.gather(*(cancel_and_wait(t) for t in tasks)))
    _stopping.add(waiting)
    waiting.add_done_callback(_stopping.discard)
    await asyncio.shield(waiting)


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
    if not all(is_entry_id(found[topic]) for topic in topics):
        return None
    return {topic: found[topic] for topic in topics}


Render = Callable[[str, FeedEvent], bytes | None]


async def with_cursor(
    merged: AsyncIterator[tuple[str, FeedEvent]],
    cursor: dict[str, str],
    render: Render | None = None,
) -> AsyncIterator[FeedEvent]:
    """Merged events (`merge`), each with the cursor of every feed's position so far as
    its id; `cursor` starts where the client resumes and moves with each event.

    `render(topic, event)` may rewrite an event's data (None: send nothing, the cursor
    moves on all the same). Heartbeats and `overflow` / `closed` pass as they are.
    """
    async for topic, event in merged:
        if event.event in TERMINAL or event.event == HEARTBEAT:
            yield event
            if event.event in TERMINAL:
                return
            continue
        if event.id:
            cursor[topic] = event.id
        data = event.data if render is None else render(topic, event)
        if data is not None:
            yield FeedEvent(encode_cursor(cursor), event.event, data)


async def prepend(
    first: FeedEvent, rest: AsyncIterator[FeedEvent] | None = None
) -> AsyncIterator[FeedEvent]:
    """`first`, then the events of `rest` (if any), which is closed however this ends."""
    try:
        yield first
        if rest is not None:
            async for event in rest:
                yield event
    finally:
        if rest is not None:
            await _aclose(rest)
