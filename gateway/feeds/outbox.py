"""One SSE response's outbox: what the feed gives it, written to its client.

    outbox = Outbox(buffer=1000)
    outbox.put(frame)        # from the feed's reader (or a pump): write now, or queue
    await outbox.drain(send) # the response's task, until the outbox ends

**Written at once.** While the response's task waits and nothing is queued, `put`
writes the bytes itself: it calls the ASGI `send` and steps the coroutine by hand.
The server's `send` (and the middlewares' wrappers around it) return without
waiting while the socket takes the bytes, so the reader writes an event to each of
its clients in one pass, with no task woken, no future and no coroutine chain
resumed per client (those were most of the cost per client per event, and the
garbage they left behind the rest, besides the `write` itself).

**Else queued.** When `send` must wait (the client's socket buffer is full: a slow
client), its coroutine is handed to the response's task (`_Continue`), which
finishes it and writes what was queued meanwhile in one `send`. More than `buffer`
queued frames: the feed ends the outbox with `overflow` (gateway/feeds/fanout.py).

**Ends.** `overflow` / `closed` replace what is queued with their one final event
(with a `retry:` hint); `done` writes what is queued, then the response ends;
`gone` (the client left) writes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from litestar.types import Send

from gateway.feeds.fanout import RETRY_MS, TERMINAL, FeedEvent

log = logging.getLogger(__name__)

GONE = "gone"  # the client left: nothing more is written
DONE = "done"  # the feed ended normally (`until`): what is queued is written, then the end


class Outbox:
    """One response's queued bytes, and how they reach its client (module docstring)."""

    __slots__ = ("buffer", "ended", "now", "pending", "queued", "stuck", "waiter")

    def __init__(self, buffer: int) -> None:
        self.buffer = buffer
        self.pending: list[bytes] = []
        self.queued = 0  # events in `pending`
        self.waiter: asyncio.Future[None] | None = None
        self.ended: str | None = None
        self.now: Send | None = None  # set while `put` may write at once
        self.stuck: Awaitable[Any] | None = None  # a write at once that had to wait

    def put(self, raw: bytes, events: int = 1) -> int:
        """Write `raw` (that many events) now if nothing waits before it, else queue it;
        how many events are queued. Nothing is taken once the outbox has ended."""
        if self.ended is not None:
            return 0
        if self.now is not None:
            self._write_now(self.now, raw)
            return 0
        self.pending.append(raw)
        self.queued += events
        self._wake()
        return self.queued

    def end(self, why: str) -> None:
        if self.ended is not None and why != GONE:
            return
        self.ended = why
        self.now = None
        if why in TERMINAL:
            self.pending = [FeedEvent("", why, b"{}").frame(retry_ms=RETRY_MS)]
            self.queued = 1
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _write_now(self, send: Send, raw: bytes) -> None:
        coro = send({"type": "http.response.body", "body": raw, "more_body": True})
        if not isinstance(coro, CoroutineType):  # a server whose `send` is no coroutine
            self.now, self.stuck = None, coro
            self._wake()
            return
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return  # written (the usual case)
        except Exception:
            log.exception("SSE write failed; dropping the client")
            self.end(GONE)
            return
        self.now = None  # the rest waits behind this write
        self.stuck = _Continue(coro, waiting_on)
        self._wake()

    async def drain(self, send: Send) -> bool:
        """Write what comes until the outbox ends; False if the client is gone."""
        while True:
            if self.ended == GONE:
                return False
            if self.stuck is not None:
                await self.stuck
                self.stuck = None
            elif self.pending:
                pending, self.pending, self.queued = self.pending, [], 0
                body = pending[0] if len(pending) == 1 else b"".join(pending)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            elif self.ended is not None:
                return True
            else:
                self.now = send  # nothing before the next `put`: it may write at once
                self.waiter = asyncio.get_running_loop().create_future()
                try:
                    await self.waiter
                finally:
                    self.now = self.waiter = None


class _Continue:
    """Await a coroutine that was started by hand and is waiting on `first`."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # a cancel: the coroutine gets it
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                value = coro.send(sent)
            except StopIteration:
                return
