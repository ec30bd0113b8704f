"""`GATEWAY_WORKERS=2 python -m gateway`: two worker processes on one port (SO_REUSEPORT),
each with its own feed readers; SIGTERM ends every open stream with `closed`, and a
worker whose supervisor was killed stops by itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import httpx_sse
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import Counts, JobProgressed, new_id
from contracts.runtime.settings import Settings
from tests.support.keys import WRITE
from tests.support.processes import free_port, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

STREAMS = 8


@pytest.fixture
def gateway(settings: Settings, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    log = tmp_path / "gateway.log"
    proc = start_module("gateway", settings, log, GATEWAY_PORT=str(port), GATEWAY_WORKERS="2")
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        pids = workers(proc.pid)
        kill(proc)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def workers(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@contextlib.asynccontextmanager
async def streams_open(url: str) -> AsyncIterator[list[list[str]]]:
    """STREAMS open streams (each a list of the events it got so far), until each ends."""
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=WRITE) as http:

        async def ready() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await http.get("/healthz")).status_code == 200  # (no PostgreSQL here)
            return False

        await wait_until(ready, timeout=60, what="the gateway up")
        opened = asyncio.Queue[None]()

        async def follow(seen: list[str]) -> None:
            async with httpx_sse.aconnect_sse(http, "GET", "/events?topics=jobs") as source:
                assert source.response.status_code == 200
                opened.put_nowait(None)
                async for sse in source.aiter_sse():
                    if sse.event:
                        seen.append(sse.event)

        seen: list[list[str]] = [[] for _ in range(STREAMS)]
        tasks = [asyncio.create_task(follow(events)) for events in seen]
        try:
            for _ in range(STREAMS):
                await asyncio.wait_for(opened.get(), timeout=30)
            yield seen
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        finally:
            for task in tasks:
                task.cancel()


async def test_every_worker_streams_and_sigterm_ends_every_stream_with_closed(
    gateway: tuple[subprocess.Popen[bytes], str], redis: aioredis.Redis, settings: Settings
) -> None:
    proc, url = gateway
    async with streams_open(url) as seen:
        pids = workers(proc.pid)
        assert len(pids) == 2
        name = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
        event = JobProgressed(id=new_id(), job_id="j", counts=Counts(done=1, total=2))
        await codec.publish(redis, name, event)

        async def delivered() -> bool:
            return all(events == ["JobProgressed"] for events in seen)

        await wait_until(delivered, timeout=30, what="the event on every stream")
        proc.send_signal(signal.SIGTERM)
    assert seen == [["JobProgressed", "closed"]] * STREAMS
    assert proc.wait(timeout=20) == 0
    assert not any(alive(pid) for pid in pids)


async def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    gateway: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = gateway
    async with streams_open(url) as seen:
        pids = workers(proc.pid)
        assert len(pids) == 2
        proc.kill()
    assert seen == [["closed"]] * STREAMS

    async def gone() -> bool:
        return not any(alive(pid) for pid in pids)

    await wait_until(gone, timeout=15, what="the orphaned workers gone")
