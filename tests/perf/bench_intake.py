"""Small-command intake beside a bare endpoint: POST /moves with 10 ids, against our
gateway (the front door, the checks in PostgreSQL, command + JobQueued appended by one
script, the outbox row) and, in the same run, against a bare Litestar endpoint doing one
XADD (tests/perf/bare_intake.py).

Two measurements of each:

- saturation: CONCURRENCY requests in flight for INTAKE_S (a closed loop): requests/s,
  p50/p99, and the ratio of requests/s;
- half load: requests sent at half the gateway's saturating rate, on schedule whatever
  the answers (an open loop, OPEN_S after a second of warm-up): p50/p99, timed from when
  each request was due, so a slow answer also delays the requests queued behind it.
  The bare endpoint gets the same rate.

Beside them, the CPU each server process spent per request (from /proc: steadier than
requests/s on a shared machine) and the client's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from contracts.runtime.db import connect
from contracts.runtime.settings import Settings
from gateway.catalog import demo as seed
from tests.perf.stack import (
    AUTH,
    fresh_schema,
    percentile,
    services,
    wait_ready,
)
from tests.support.processes import free_port, kill, settings_env

CONCURRENCY = 32
INTAKE_S = 10.0
OPEN_S = 10.0
WARM_UP_S = 1.0
OPEN_CONNECTIONS = 128


async def run(base: Settings) -> dict[str, object]:
    async with fresh_schema(base) as settings:
        conn = await connect(settings)
        await seed.seed(conn, companies=1000, my_list=500, liked=10, ignore=50)
        await conn.close()
        with services(settings, {"gateway": 1}) as bench:
            await wait_ready(bench.gateway)
            gateway = bench.procs[0].pid
            ours = await _measured(gateway, lambda: _closed(bench.gateway, AUTH))
            half = ours["rps"] / 2
            ours_half = await _measured(gateway, lambda: _open(bench.gateway, AUTH, half))
        proc, url = await _start_bare(settings)
        try:
            bare = await _measured(proc.pid, lambda: _closed(url, {}))
            bare_half = await _measured(proc.pid, lambda: _open(url, {}, half))
        finally:
            kill(proc)
    return {
        "intake": {
            "conveyor_rps": ours["rps"], "conveyor_p50_ms": ours["p50_ms"],
            "conveyor_p99_ms": ours["p99_ms"],
            "bare_xadd_rps": bare["rps"], "bare_xadd_p50_ms": bare["p50_ms"],
            "bare_xadd_p99_ms": bare["p99_ms"],
            "ratio": round(ours["rps"] / bare["rps"], 2),
            "conveyor_cpu_ms_per_request": ours["server_cpu_ms"],
            "bare_xadd_cpu_ms_per_request": bare["server_cpu_ms"],
            "client_cpu_ms_per_request": ours["client_cpu_ms"],
            "concurrency": CONCURRENCY, "seconds": INTAKE_S,
        },
        "intake_half_load": {
            "rate_per_s": round(half, 1),
            "conveyor_p50_ms": ours_half["p50_ms"], "conveyor_p99_ms": ours_half["p99_ms"],
            "bare_xadd_p50_ms": bare_half["p50_ms"], "bare_xadd_p99_ms": bare_half["p99_ms"],
            "conveyor_requests": ours_half["requests"], "bare_xadd_requests": bare_half["requests"],
            "seconds": OPEN_S,
        },
    }  # fmt: skip


def _move_body() -> dict[str, Any]:
    return {"source": str(seed.MY_LIST), "target": str(seed.LIKED), "mode": "copy",
            "selection": list(range(100, 110))}  # fmt: skip


def _check(response: httpx.Response) -> None:
    if response.status_code != 202:
        raise RuntimeError(f"{response.status_code}: {response.text}")


def _latencies(took: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(took, 50) * 1000, 1),
        "p99_ms": round(percentile(took, 99) * 1000, 1),
    }


async def _closed(url: str, headers: dict[str, str]) -> dict[str, float]:
    """CONCURRENCY requests in flight, each sent as soon as the one before it answered."""
    took: list[float] = []
    body = _move_body()
    deadline = time.perf_counter() + INTAKE_S
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                _check(await c.post("/moves", json=body))
                took.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - began
    return {"rps": round(len(took) / elapsed, 1), "requests": len(took), **_latencies(took)}


async def _open(url: str, headers: dict[str, str], rate: float) -> dict[str, float]:
    """Requests sent at `rate` a second on schedule (not waiting for answers) for
    WARM_UP_S + OPEN_S; latency from when each was due, the warm-up's left out."""
    took: list[float] = []
    body = _move_body()
    limits = httpx.Limits(max_connections=OPEN_CONNECTIONS)
    count = int(rate * (WARM_UP_S + OPEN_S))
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:

        async def one(due: float, counted: bool) -> None:
            _check(await c.post("/moves", json=body))
            if counted:
                took.append(time.perf_counter() - due)

        sent = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            if (ahead := due - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            sent.append(asyncio.create_task(one(due, counted=i >= rate * WARM_UP_S)))
        await asyncio.gather(*sent)
    return {"requests": len(took), **_latencies(took)}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measured(pid: int, load: Callable[[], Awaitable[dict[str, float]]]) -> dict[str, float]:
    """`load`'s result, with the CPU ms per request of server `pid` and of this client."""
    server, client = _cpu_s(pid), time.process_time()
    result = await load()
    n = max(1, result["requests"])
    server_ms = (_cpu_s(pid) - server) * 1000 / n
    client_ms = (time.process_time() - client) * 1000 / n
    return result | {"server_cpu_ms": round(server_ms, 2), "client_cpu_ms": round(client_ms, 2)}


def _spawn_bare(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = settings_env(settings) | {"BARE_STREAM": f"{settings.stream_prefix}bare.intake"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.perf.bare_intake:app", "--port", str(port),
         "--log-level", "warning"], env=env,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


async def _start_bare(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    proc, url = _spawn_bare(settings)
    for _ in range(300):
        with contextlib.suppress(httpx.TransportError):
            async with httpx.AsyncClient() as c:
                await c.post(f"{url}/moves", json={})
                return proc, url
        await asyncio.sleep(0.1)
    kill(proc)
    raise RuntimeError(f"the bare endpoint did not answer at {url}")
