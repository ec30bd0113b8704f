"""`conveyor follow` / `move --follow` against a feed that sends what real servers send:
comments, empty events (the old heartbeats), events it does not know, non-JSON data,
`closed` with a reconnect, and a stream that goes on after the job's last event."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar, Request, get
from litestar.params import FromPath
from litestar.response import Stream
from rich.console import Console

from gateway.jobs.follow import follow
from tests.support.http import uvicorn_serve

pytestmark = pytest.mark.integration

NOISE = (
    b": heartbeat\r\n\r\n"
    b": heartbeat\r\ndata: \r\n\r\n"  # what the gateway sent before: an empty event
    b"data: \r\n\r\n"
    b"event: mystery\r\ndata: not json at all\r\n\r\n"
    b'event: mystery\r\ndata: {"counts": "not a mapping"}\r\n\r\n'
    b"event: JobProgressed\r\ndata: [1, 2]\r\n\r\n"
    b"event: reset\r\ndata: {}\r\n\r\n"
)
SNAPSHOT = b'event: snapshot\r\ndata: {"status":"running","total":10,"done":2}\r\n\r\n'
PROGRESS = b'id: 5-0\r\nevent: JobProgressed\r\ndata: {"counts":{"total":10,"done":7}}\r\n\r\n'
COMPLETED = b'id: 6-0\r\nevent: JobCompleted\r\ndata: {"counts":{"total":10,"done":10}}\r\n\r\n'
FAILED = b'id: 7-0\r\nevent: JobFailed\r\ndata: {"error":"boom"}\r\n\r\n'
CLOSED = b"event: closed\r\ndata: {}\r\nretry: 10\r\n\r\n"


def fake_gateway(script: list[list[bytes]], seen: list[str | None]) -> Litestar:
    """Connection n (from 1) gets the chunks `script[n - 1]` (the last script for any
    later one); a chunk `...` keeps the stream open with heartbeats for ever.
    `seen` records each connection's Last-Event-ID."""

    @get("/jobs/{job_id:str}/events")
    async def events(request: Request, job_id: FromPath[str]) -> Stream:  # type: ignore[type-arg]
        seen.append(request.headers.get("last-event-id"))
        chunks = script[min(len(seen), len(script)) - 1]

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                if chunk == b"...":
                    while True:  # a stream that goes on after the job's end
                        yield b": heartbeat\r\n\r\n"
                        await asyncio.sleep(0.05)
                yield chunk

        return Stream(body(), media_type="text/event-stream")

    return Litestar([events])


async def run_follow(script: list[list[bytes]]) -> tuple[int, str, list[str | None]]:
    seen: list[str | None] = []
    screen = io.StringIO()
    async with (
        uvicorn_serve(fake_gateway(script, seen)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        code = await asyncio.wait_for(follow(client, "job-1", Console(file=screen)), 20)
    return code, screen.getvalue(), seen


async def test_noise_is_ignored_and_following_stops_at_the_terminal_event() -> None:
    code, screen, seen = await run_follow([[SNAPSHOT, NOISE, PROGRESS, NOISE, COMPLETED, b"..."]])
    assert code == 0
    assert "job job-1 completed" in screen
    assert "10/10" in screen
    assert seen == [None]  # one connection: it did not wait for the stream to end


async def test_closed_resumes_from_the_last_event_and_a_failure_is_reported() -> None:
    code, screen, seen = await run_follow(
        [[SNAPSHOT, PROGRESS, NOISE, CLOSED], [NOISE, FAILED, b"..."]]
    )
    assert code == 1
    assert "error: boom" in screen
    assert "job job-1 failed" in screen
    assert seen == [None, "5-0"]


async def test_a_snapshot_of_a_finished_job_ends_at_once() -> None:
    done = b'event: snapshot\r\ndata: {"status":"cancelled","total":3,"done":1}\r\n\r\n'
    code, screen, seen = await run_follow([[NOISE, done, b"..."]])
    assert (code, seen) == (1, [None])
    assert "job job-1 cancelled" in screen
