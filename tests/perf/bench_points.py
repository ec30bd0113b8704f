"""Points pushed over HTTP to per-minute aggregates, beside a bare redis-py consumer.

The real gateway, ingest and aggregator run as processes on a fresh schema and
stream prefix; BATCHES push-only batches (rate 0) take the points.

1. Sustained: TOTAL points in requests of PER_REQUEST, CONCURRENCY requests in
   flight, round robin over the batches; points/s from the first request until
   the aggregates hold every point (polled in PostgreSQL). Again with small
   requests (SMALL_REQUEST points, SMALL_TOTAL), where HTTP requests/s bound it.
2. Latency at RATE points/s for PACED_S: a request of PACED_REQUEST points every
   PACED_REQUEST/RATE s. A poller reads the aggregated total every POLL_S; point
   k is visible when the total first reaches k+1 (cumulative curves), so its
   latency is that poll's time minus the time its request was sent (HTTP
   included). p50/p99/max over the points.
3. Behind the gateway: SMALL_TOTAL points as RecordPoints of SMALL_REQUEST appended
   straight to `ingest.points` (no HTTP; appending is timed, it takes a few ms), until
   the aggregates hold them: what ingest and the aggregator do with small messages,
   apart from the gateway's cost per request.
4. Reference, same run: the same number of points as stream entries, one per point
   (`{"key": ..}` JSON, as a bare points stream would hold them), read by a
   redis-py XREADGROUP COUNT 100 + XACK loop (filling it is not timed). The
   pipeline wins on points/s because it moves PER_REQUEST points per entry and
   per transaction; the ratio says what that buys, not that Conveyor reads
   Redis faster than redis-py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import Point, RecordPoints, new_id, utcnow
from contracts.runtime.settings import Settings
from tests.perf.stack import AUTH, fresh_schema, percentile, services, wait_ready

BATCHES = 10
TOTAL = 600_000
PER_REQUEST = 2_000
SMALL_TOTAL = 100_000
SMALL_REQUEST = 100
CONCURRENCY = 6
RATE = 10_000
PACED_S = 20.0
PACED_REQUEST = 250
POLL_S = 0.01
READ_COUNT = 100


async def run(base: Settings) -> dict[str, object]:
    base = msgspec.structs.replace(base, max_batches=BATCHES, max_points_per_request=PER_REQUEST)
    async with fresh_schema(base) as settings:
        counts = {"gateway": 1, "ingest": 1, "aggregator": 1}
        with services(settings, counts) as bench:
            await wait_ready(bench.gateway)
            pool = await asyncpg.create_pool(
                settings.database_url, server_settings={"search_path": settings.db_schema}
            )
            limits = httpx.Limits(max_connections=CONCURRENCY * 2)
            try:
                async with httpx.AsyncClient(
                    base_url=bench.gateway, timeout=60, limits=limits, headers=AUTH
                ) as client:
                    for b in range(BATCHES):
                        started = await client.put(f"/batches/bench{b}", json={"rate": 0})
                        assert started.status_code == 201, started.text
                    sustained = await _sustained(client, pool, TOTAL, PER_REQUEST)
                    small = await _sustained(client, pool, SMALL_TOTAL, SMALL_REQUEST)
                    latency = await _paced(client, pool, await _total(pool))
                    behind = await _behind_gateway(settings, pool, SMALL_TOTAL, SMALL_REQUEST)
            finally:
                await pool.close()
        reference = await _reference(settings, TOTAL)
    return {
        "sustained": sustained,
        "sustained_small_requests": small,
        "latency_at_rate": latency,
        "small_messages_behind_gateway": behind,
        "reference_points_per_s": reference,
        "ratio": round(float(sustained["points_per_s"]) / reference, 2),  # type: ignore[arg-type]
        "ratio_small_requests": round(float(small["points_per_s"]) / reference, 2),  # type: ignore[arg-type]
        "ratio_small_behind_gateway": round(float(behind["points_per_s"]) / reference, 2),  # type: ignore[arg-type]
    }


def _body(n: int) -> bytes:
    return msgspec.json.encode([{"key": (i * 7) % 101} for i in range(n)])


async def _total(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(sum(count), 0) FROM minute_aggregates"))


async def _post(client: httpx.AsyncClient, batch: int, body: bytes) -> None:
    response = await client.post(
        f"/batches/bench{batch}/points", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


async def _sustained(
    client: httpx.AsyncClient, pool: asyncpg.Pool, total: int, per_request: int
) -> dict[str, object]:
    body = _body(per_request)
    requests = total // per_request
    base = await _total(pool)
    batches = itertools.cycle(range(BATCHES))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait(next(batches))

    async def sender() -> None:
        while not queue.empty():
            await _post(client, queue.get_nowait(), body)

    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    sent_s = time.perf_counter() - began
    while True:  # polling PostgreSQL: nothing to wait on
        if await _total(pool) - base >= total:
            break
        await asyncio.sleep(POLL_S)
    elapsed = time.perf_counter() - began
    return {
        "points": total,
        "requests": requests,
        "points_per_request": per_request,
        "seconds": round(elapsed, 2),
        "accepted_by_gateway_points_per_s": round(total / sent_s),
        "points_per_s": round(total / elapsed),
    }


async def _paced(client: httpx.AsyncClient, pool: asyncpg.Pool, base: int) -> dict[str, object]:
    body = _body(PACED_REQUEST)
    interval = PACED_REQUEST / RATE
    count = int(PACED_S / interval)
    sent_at: list[float] = []
    seen: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set() or seen[-1][1] < count * PACED_REQUEST:
            seen.append((time.perf_counter(), await _total(pool) - base))
            await asyncio.sleep(POLL_S)

    poller = asyncio.create_task(poll())
    began = time.perf_counter()
    posts = []
    for n in range(count):
        await asyncio.sleep(max(0.0, began + n * interval - time.perf_counter()))
        sent_at.append(time.perf_counter())
        posts.append(asyncio.create_task(_post(client, n % BATCHES, body)))
    await asyncio.gather(*posts)
    done.set()
    await poller
    latencies = _latencies(sent_at, seen)
    return {
        "rate_points_per_s": RATE,
        "achieved_send_points_per_s": round(count * PACED_REQUEST / (sent_at[-1] - began)),
        "seconds": PACED_S,
        "points_per_request": PACED_REQUEST,
        "p50_s": round(percentile(latencies, 50), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies), 3),
        "poll_s": POLL_S,
    }


async def _behind_gateway(
    settings: Settings, pool: asyncpg.Pool, total: int, per_message: int
) -> dict[str, object]:
    redis = aioredis.from_url(settings.redis_url)
    stream = streams.INGEST_POINTS.prefixed(settings.stream_prefix).name
    count = total // per_message
    base = await _total(pool)
    began = time.perf_counter()
    try:
        for start in range(0, count, 100):
            now = utcnow()
            async with redis.pipeline(transaction=False) as pipe:
                for n in range(start, min(count, start + 100)):
                    points = [Point(key=float((i * 7) % 101), ts=now) for i in range(per_message)]
                    message = RecordPoints(
                        id=new_id(), batch_id=f"bench{n % BATCHES}", points=points, received_at=now
                    )
                    pipe.xadd(stream, codec.entry_fields(message))  # type: ignore[arg-type]
                await pipe.execute()
    finally:
        await redis.aclose()
    while True:  # polling PostgreSQL: nothing to wait on
        if await _total(pool) - base >= total:
            break
        await asyncio.sleep(POLL_S)
    elapsed = time.perf_counter() - began
    return {
        "points": total,
        "messages": count,
        "points_per_message": per_message,
        "seconds": round(elapsed, 2),
        "points_per_s": round(total / elapsed),
    }


def _latencies(sent_at: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """Per request (weight: its points, all alike): when the total first covered it."""
    out: list[float] = []
    i = 0
    for n, sent in enumerate(sent_at):
        needed = (n + 1) * PACED_REQUEST
        while seen[i][1] < needed:
            i += 1
        out.append(seen[i][0] - sent)
    return out


async def _reference(settings: Settings, points: int) -> float:
    """Points/s of a bare XREADGROUP + XACK loop over `points` entries of one point each."""
    redis = aioredis.from_url(settings.redis_url)
    stream, group = f"{settings.stream_prefix}reference", "reference"
    try:
        entry = {b"__data__": b'{"key": 42}'}
        entries = points
        for start in range(0, entries, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(min(1000, entries - start)):
                    pipe.xadd(stream, entry)  # type: ignore[arg-type]
                await pipe.execute()
        await redis.xgroup_create(stream, group, id="0")
        began, read = time.perf_counter(), 0
        while read < entries:
            response: Any = await redis.xreadgroup(group, "c", {stream: ">"}, count=READ_COUNT)
            ids = [entry_id for entry_id, _ in response[0][1]]
            await redis.xack(stream, group, *ids)
            read += len(ids)
        return round(points / (time.perf_counter() - began))
    finally:
        await redis.delete(stream)
        await redis.aclose()
