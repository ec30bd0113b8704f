"""SSE fan-out (no reference): SSE clients on `/events?topics=jobs`, job events XADDed at
RATE a second for SECONDS, in two scenarios:

- `one_process`: one gateway process, BENCH_SSE_CLIENTS clients (default 5,000);
- `machine`: GATEWAY_WORKERS = the number of cores (one port, SO_REUSEPORT; each worker
  its own feed readers), BENCH_SSE_MACHINE_CLIENTS clients (default 20,000).

The clients are separate processes (tests/perf/sse_clients.py: raw sockets and one
epoll, at most CLIENTS_PER_PROCESS each, under the hard limit on open files), so the
client side costs little CPU and none of it in this process. Reported: clients held
and how many got every event; delivery latency from the event's creation (its `at`,
just before XADD) to its arrival at a client (p50/p99/max, one client in SAMPLE
timed); the gateways' CPU time per delivery (user + system, during the events: the
cost per client per event, less noisy than latency on a shared machine); their
resident memory per client (RSS with clients minus before, / clients); the clients'
CPU. BENCH_SSE_SCENARIOS=one_process (or machine) runs one of them.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import Counts, JobProgressed, new_id
from contracts.runtime.settings import Settings
from tests.perf.stack import BENCH_KEY, fresh_schema, percentile, services, wait_ready
from tests.support.processes import ROOT

CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", "5000"))
MACHINE_CLIENTS = int(os.environ.get("BENCH_SSE_MACHINE_CLIENTS", "20000"))
SCENARIOS = os.environ.get("BENCH_SSE_SCENARIOS", "one_process,machine").split(",")
CLIENTS_PER_PROCESS = 10_000
SAMPLE = 10  # one client in SAMPLE times its deliveries
RATE = 2.0
SECONDS = 15.0
TICK = os.sysconf("SC_CLK_TCK")


async def run(base: Settings) -> dict[str, object]:
    _raise_open_files()
    results: dict[str, object] = {}
    workers = os.cpu_count() or 1
    for scenario, n, clients in (
        ("one_process", 1, CLIENTS),
        ("machine", workers, MACHINE_CLIENTS),
    ):
        if scenario not in SCENARIOS:
            continue
        async with fresh_schema(base) as settings:
            with services(settings, {"gateway": 1}, GATEWAY_WORKERS=str(n)) as bench:
                await wait_ready(bench.gateway)
                pids = await _gateway_pids(bench.procs[0].pid, n)
                result = await _fan_out(settings, bench.gateway, pids, clients)
        results[f"sse_fan_out_{scenario}"] = {"gateway_processes": n, **result}
    return results


def _raise_open_files() -> None:
    """The gateways inherit this process's limit: raise the soft one to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _gateway_pids(pid: int, workers: int) -> list[int]:
    """The processes that serve: the one started, or its `workers` children."""
    if workers == 1:
        return [pid]
    children: list[int] = []
    for _ in range(100):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()  # noqa: ASYNC240
        children = [int(c) for c in text.split()]
        if len(children) == workers:
            return children
        await asyncio.sleep(0.1)
    raise RuntimeError(f"gateway {pid}: {len(children)} workers, not {workers}")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


async def _start_clients(port: int, n: int) -> list[asyncio.subprocess.Process]:
    """Client processes for `n` clients, each connected (its `ready` line read)."""
    procs = []
    per = math.ceil(n / math.ceil(n / CLIENTS_PER_PROCESS))
    for start in range(0, n, per):
        args = [str(port), str(min(per, n - start)), str(SAMPLE), BENCH_KEY]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.perf.sse_clients",
                *args,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                limit=2**26,  # the result line holds every timed delivery
                stdout=subprocess.PIPE,
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=600)
        if not line.startswith(b"ready") or not line.endswith(b"refused 0\n"):
            raise RuntimeError(f"SSE clients: {line!r}")
    return procs


async def _stop_clients(procs: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    results = []
    for proc in procs:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
        results.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=60)))
        await proc.wait()
    return results


async def _fan_out(settings: Settings, url: str, pids: list[int], n: int) -> dict[str, object]:
    port = int(url.rsplit(":", 1)[1])
    before = sum(_rss_kib(pid) for pid in pids)
    clients = await _start_clients(port, n)
    await asyncio.sleep(1)
    held = sum(_rss_kib(pid) for pid in pids)
    redis = aioredis.from_url(settings.redis_url)
    name = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
    events = int(RATE * SECONDS)
    cpu_at = sum(_cpu_s(pid) for pid in pids)
    for i in range(events):
        event = JobProgressed(id=new_id(), job_id="fan-out", counts=Counts(done=i, total=events))
        await codec.publish(redis, name, event)
        await asyncio.sleep(1 / RATE)
    await asyncio.sleep(2)
    cpu = sum(_cpu_s(pid) for pid in pids) - cpu_at
    await redis.aclose()
    got = await _stop_clients(clients)
    latencies = [x for r in got for x in r["latencies"]]
    per_client: dict[int, int] = {}
    for r in got:
        for count, k in r["events_per_client"].items():
            per_client[int(count)] = per_client.get(int(count), 0) + k
    deliveries = sum(count * k for count, k in per_client.items())
    return {
        "clients": n,
        "client_processes": len(clients),
        "clients_with_every_event": per_client.get(events, 0),
        "events": events,
        "deliveries": deliveries,
        "timed_deliveries": len(latencies),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "gateway_cpu_us_per_delivery": round(cpu / max(deliveries, 1) * 1e6, 1),
        "client_cpu_s": round(sum(float(r["cpu_s"]) for r in got), 1),
        "gateway_rss_before_mib": round(before / 1024, 1),
        "gateway_rss_with_clients_mib": round(held / 1024, 1),
        "memory_per_client_kib": round((held - before) / n, 1),
    }
