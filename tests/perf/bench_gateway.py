"""The gateway's edge: SSE fan-out, and small-command intake beside a bare endpoint.

1. Fan-out (no reference): one gateway process; CLIENTS SSE clients on
   `/events?topics=jobs` (raw sockets, so the client side stays light); job events
   XADDed at RATE a second for SECONDS. Reported: clients held to the end,
   delivery latency from XADD (the event's `at`) to the client (p50/p99/max), and
   the gateway's resident memory per client (RSS with clients minus before, / N).
2. Intake: POST /moves with 10 ids, CONCURRENCY requests in flight for INTAKE_S,
   against our gateway (validation in PostgreSQL, command + JobQueued appended by
   one script, job row written) and, in the same run, against a bare Litestar
   endpoint doing one XADD (tests/perf/bare_intake.py): requests/s, p99, ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import Counts, JobProgressed, new_id
from contracts.runtime.db import connect
from contracts.runtime.settings import Settings
from gateway.catalog import demo as seed
from tests.perf.stack import (
    AUTH,
    BENCH_KEY,
    fresh_schema,
    percentile,
    services,
    wait_ready,
)
from tests.support.processes import free_port, kill, settings_env

CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", "5000"))
SAMPLE = 10  # one client in SAMPLE times its deliveries
RATE = 2.0
SECONDS = 15.0
CONCURRENCY = 32
INTAKE_S = 10.0


async def run(base: Settings) -> dict[str, object]:
    async with fresh_schema(base) as settings:
        conn = await connect(settings)
        await seed.seed(conn, companies=1000, my_list=500, liked=10, ignore=50)
        await conn.close()
        with services(settings, {"gateway": 1}) as bench:
            await wait_ready(bench.gateway)
            ours = await _intake(bench.gateway, AUTH)
            fan_out = await _fan_out(settings, bench.gateway, bench.procs[0].pid)
        reference = await _bare_intake(settings)
    return {
        "sse_fan_out": fan_out,
        "intake": {
            "conveyor_rps": ours["rps"], "conveyor_p99_ms": ours["p99_ms"],
            "bare_xadd_rps": reference["rps"], "bare_xadd_p99_ms": reference["p99_ms"],
            "ratio": round(ours["rps"] / reference["rps"], 2),
            "concurrency": CONCURRENCY, "seconds": INTAKE_S,
        },
    }  # fmt: skip


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _client(
    port: int, ready: asyncio.Event, latencies: list[float] | None, got: list[int]
) -> None:
    """One SSE client; it times deliveries if given `latencies` (a sample of clients do,
    so that the client side does not steal the gateway's CPU on a 2-core machine)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    writer.write(
        b"GET /events?topics=jobs HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
        + f"Authorization: Bearer {BENCH_KEY}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"refused: {head[:60]!r}")
    ready.set()
    n, buffer = 0, b""
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        while chunk := await reader.read(65536):  # whole chunks: a light client
            buffer += chunk
            *events, buffer = buffer.split(b"\r\n\r\n")
            for event in events:
                if b"event: JobProgressed" not in event:
                    continue
                n += 1
                if latencies is not None:
                    data = event[event.index(b"data: ") + 6 :].split(b"\r\n", 1)[0]
                    at = json.loads(data)["at"]
                    sent = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
                    latencies.append(time.time() - sent)
    got.append(n)
    writer.close()


async def _fan_out(settings: Settings, url: str, pid: int) -> dict[str, object]:
    port = int(url.rsplit(":", 1)[1])
    before = _rss_kib(pid)
    latencies: list[float] = []
    got: list[int] = []
    tasks = []
    for start in range(0, CLIENTS, 250):
        ready = [asyncio.Event() for _ in range(start, min(CLIENTS, start + 250))]
        tasks += [
            asyncio.create_task(_client(port, r, latencies if i % SAMPLE == 0 else None, got))
            for i, r in enumerate(ready)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), timeout=60)
    await asyncio.sleep(1)
    held = _rss_kib(pid)
    redis = aioredis.from_url(settings.redis_url)
    name = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
    events = int(RATE * SECONDS)
    for i in range(events):
        event = JobProgressed(id=new_id(), job_id="fan-out", counts=Counts(done=i, total=events))
        await codec.publish(redis, name, event)
        await asyncio.sleep(1 / RATE)
    await asyncio.sleep(2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await redis.aclose()
    return {
        "clients": CLIENTS,
        "clients_with_every_event": sum(1 for n in got if n == events),
        "events": events,
        "deliveries": sum(got),
        "timed_deliveries": len(latencies),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "gateway_rss_before_mib": round(before / 1024, 1),
        "gateway_rss_with_clients_mib": round(held / 1024, 1),
        "memory_per_client_kib": round((held - before) / CLIENTS, 1),
    }


async def _load(url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, float]:
    took: list[float] = []
    deadline = time.perf_counter() + INTAKE_S
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await c.post("/moves", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code}: {response.text}")
                took.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - began
    return {"rps": round(len(took) / elapsed, 1), "p99_ms": round(percentile(took, 99) * 1000, 1)}


def _move_body() -> dict[str, Any]:
    return {"source": str(seed.MY_LIST), "target": str(seed.LIKED), "mode": "copy",
            "selection": list(range(100, 110))}  # fmt: skip


async def _intake(url: str, headers: dict[str, str]) -> dict[str, float]:
    return await _load(url, headers, _move_body())


def _start_bare(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = settings_env(settings) | {"BARE_STREAM": f"{settings.stream_prefix}bare.intake"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.perf.bare_intake:app", "--port", str(port),
         "--log-level", "warning"], env=env,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


async def _bare_intake(settings: Settings) -> dict[str, float]:
    proc, url = _start_bare(settings)
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                async with httpx.AsyncClient() as c:
                    await c.post(f"{url}/moves", json={})
                    break
            await asyncio.sleep(0.1)
        return await _load(url, {}, _move_body())
    finally:
        kill(proc)
