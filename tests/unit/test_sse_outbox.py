"""The SSE response's pieces without a server: frames, the follower's cursor, the outbox
(written at once, queued behind a write that must wait, overflow and the final events)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.feeds.fanout import FeedEvent
from gateway.feeds.outbox import GONE, Outbox
from gateway.feeds.stream import HEARTBEAT_BYTES, _Follower

Sent = list[dict[str, Any]]


def event(entry: str, n: int) -> FeedEvent:
    return FeedEvent(entry, "JobProgressed", b'{"n":%d}' % n)


def test_a_frame_is_encoded_once_per_id_and_shared() -> None:
    e = event("5-0", 1)
    first, again = e.frame("jobs:5-0"), e.frame("jobs:5-0")
    assert first == b'id: jobs:5-0\r\nevent: JobProgressed\r\ndata: {"n":1}\r\n\r\n'
    assert again is first  # the same bytes object for every client
    assert e.frame("") == b'event: JobProgressed\r\ndata: {"n":1}\r\n\r\n'
    assert FeedEvent("", "x", b"a\nb").frame() == b"event: x\r\ndata: a\r\ndata: b\r\n\r\n"


def test_a_follower_holds_live_events_during_its_backlog_and_drops_what_it_covered() -> None:
    outbox = Outbox(buffer=10)
    follower = _Follower(outbox, {"jobs": "1-0"})
    follower.push("jobs", [event("2-0", 2), event("3-0", 3)])  # live, while the backlog runs
    assert outbox.pending == []
    follower.frame("jobs", event("2-0", 2))  # the backlog sent 2-0
    follower.go_live()
    assert outbox.pending == [event("3-0", 3).frame("jobs:3-0")]
    follower.push("jobs", [FeedEvent("", "heartbeat", b"")])
    assert outbox.pending[-1] == HEARTBEAT_BYTES


def test_several_events_of_one_read_are_one_write_each_with_its_cursor() -> None:
    outbox = Outbox(buffer=10)
    follower = _Follower(outbox, {"batches": "0-0", "jobs": "0-0"})
    follower.go_live()
    queued = follower.push("jobs", [event("7-0", 1), event("8-0", 2)])
    assert queued == 2
    assert outbox.pending == [
        event("7-0", 1).frame("batches:0-0,jobs:7-0")
        + event("8-0", 2).frame("batches:0-0,jobs:8-0")
    ]


async def test_written_at_once_while_idle_queued_behind_a_write_that_waits() -> None:
    sent: Sent = []
    gate = asyncio.Event()
    gate.set()

    async def send(message: dict[str, Any]) -> None:
        await gate.wait()  # a full socket: the server's send waits
        sent.append(message)

    outbox = Outbox(buffer=10)
    drain = asyncio.create_task(outbox.drain(send))
    await asyncio.sleep(0)  # the response's task waits: `put` may write at once
    assert outbox.put(b"one") == 0
    assert [m["body"] for m in sent] == [b"one"]  # no task ran in between
    gate.clear()
    assert outbox.put(b"two") == 0  # started at once, then waits: handed to the task
    assert outbox.put(b"three") == 1  # queued behind it
    assert outbox.put(b"four") == 2
    gate.set()
    await asyncio.sleep(0.01)
    assert [m["body"] for m in sent] == [b"one", b"two", b"threefour"]
    outbox.end(GONE)
    assert await drain is False


async def test_overflow_and_closed_replace_what_is_queued_with_one_final_event() -> None:
    sent: Sent = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    outbox = Outbox(buffer=10)
    outbox.put(b"never sent")
    outbox.end("closed")
    outbox.put(b"after the end")  # the feed pushes no more, but a put changes nothing
    assert await outbox.drain(send) is True
    assert [m["body"] for m in sent] == [b"event: closed\r\ndata: {}\r\nretry: 1000\r\n\r\n"]


@pytest.mark.parametrize("why", ["overflow", "closed"])
def test_a_client_gone_writes_nothing_more(why: str) -> None:
    outbox = Outbox(buffer=10)
    outbox.end(GONE)
    outbox.end(why)  # too late: nothing replaces `gone`
    assert outbox.ended == GONE
