"""For benchmarks: a fresh schema and stream prefix, and the services as processes."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from contracts.runtime import migrations
from contracts.runtime.settings import Settings
from tests.support.processes import free_port, kill, start_module

BENCH_KEY = "bench-secret-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}
PORTS = {"gateway": "GATEWAY_PORT", "mover": "MOVER_PORT", "aggregator": "AGGREGATOR_PORT",
         "ingest": "INGEST_PORT"}  # fmt: skip


@dataclass
class Bench:
    settings: Settings
    gateway: str
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def fresh_schema(base: Settings) -> AsyncIterator[Settings]:
    """A migrated schema and a stream prefix of their own; dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(base.database_url)
    await conn.execute(f'CREATE SCHEMA "{name}"')
    await conn.execute(f'SET search_path TO "{name}"')
    await migrations.apply(conn)
    settings = msgspec.structs.replace(
        base, db_schema=name, stream_prefix=f"{name}.", api_keys=f"bench:{BENCH_KEY}:read+write",
        rate_limit_per_s=1e6, rate_limit_burst=10**6, sse_connections_per_key=100_000,
    )  # fmt: skip
    try:
        yield settings
    finally:
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        await conn.close()
        redis = aioredis.from_url(base.redis_url)
        keys = [k async for k in redis.scan_iter(match=f"{name}.*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@contextlib.contextmanager
def services(settings: Settings, counts: dict[str, int], **env: str) -> Iterator[Bench]:
    """Start `counts[name]` processes of each service; the gateway's URL in `Bench`."""
    logs = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    bench = Bench(settings, "", logs)
    try:
        for name, n in counts.items():
            for i in range(n):
                port = free_port()
                extra = {PORTS[name]: str(port), **env}
                proc = start_module(name, settings, logs / f"{name}-{i}.log", **extra)
                bench.procs.append(proc)
                if name == "gateway":
                    bench.gateway = f"http://127.0.0.1:{port}"
        yield bench
    finally:
        for proc in bench.procs:
            kill(proc, wait_s=15)


async def wait_ready(url: str, timeout_s: float = 30) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout_s * 10)):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
