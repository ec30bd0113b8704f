"""Copying a whole list, against the reference SQL on the same database in the same run.

1. Unthrottled: copy all of "My List" (50,000) into an empty list through the API
   until `GET /jobs/{id}` says completed, beside one
   `INSERT … SELECT … ON CONFLICT DO NOTHING` doing the same into another empty
   list. Alternating, `RUNS` times each; medians and their ratio (goal <= 1.0: the
   chunks applied side by side use both cores, the one statement uses one).
2. Throttled: the 100 ms/row insert trigger, 10,000 rows: wall time (goal <= 15 s)
   beside the reference done one row after another (timed on 20 rows, scaled to
   10,000), how often progress arrived over SSE, and the p99 of
   `GET /collections/{id}/companies` while it runs (goal < 100 ms).

The limit of (2) is 100 ms per row over the inserts in flight: the movers get as many workers as
the server has connections to spare (`max_connections`, less those in use and
`HEADROOM` for the gateway, the aggregator and this benchmark, whose pools are capped
at `SERVICE_POOL`), at most `MAX_WORKERS` each: on an otherwise idle server with
`max_connections` 100, 2 x 38. Both report how many chunks were being applied at once (the
movers' backends inside `INSERT INTO memberships`, sampled from
`pg_stat_activity`) and how many backends waited on a lock.

The client follows the job's SSE feed until its final event, then reads
`GET /jobs/{id}` until the projection says the same (it used to poll every 5 ms,
which took a share of the two cores from the copy it measured).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import httpx_sse

from contracts.runtime.db import connect
from contracts.runtime.settings import Settings
from gateway.catalog import demo as seed
from tests.perf.pg_activity import Sampler
from tests.perf.stack import AUTH, fresh_schema, percentile, services, wait_ready

RUNS = 3
SLOW_ROWS = 10_000
SLOW_MS = 100
MOVERS = 2
MAX_WORKERS = 40
SERVICE_POOL = 6  # the gateway's and the aggregator's pools (CONVEYOR_DB_POOL_MAX)
# Connections left beside the movers' workers: those two pools, this benchmark's two,
# and a mover's own few (reads after a chunk's commit, its scheduler).
HEADROOM = 2 * SERVICE_POOL + 2 + 2 * MOVERS
# pg_stat_activity sampled this often during the 1 s copy and the ~15 s throttled one
FAST_SAMPLE_S = 0.05
SLOW_SAMPLE_S = 0.25
FINAL_EVENTS = ("JobCompleted", "JobFailed", "JobCancelled")


async def run(base: Settings) -> dict[str, object]:
    async with fresh_schema(base) as settings:
        conn = await connect(settings)
        try:
            await seed.seed(conn, companies=100_000, my_list=50_000, liked=10, ignore=50)
            workers, spare = await _workers(conn)
            env = {
                "CONVEYOR_MOVER_CONCURRENCY": str(workers),
                "CONVEYOR_DB_POOL_MAX": str(SERVICE_POOL),  # a mover sizes its own
            }
            counts = {"gateway": 1, "aggregator": 1, "mover": MOVERS}
            with services(settings, counts, **env) as bench:
                await wait_ready(bench.gateway)
                movers = [p.pid for p in bench.procs[-MOVERS:]]  # started last (`counts`)
                sample = _sampler(settings, movers)
                async with httpx.AsyncClient(
                    base_url=bench.gateway, timeout=30, headers=AUTH
                ) as client:
                    fast = await _unthrottled(conn, client, sample)
                    slow = await _throttled(conn, client, sample)
        finally:
            await conn.close()
    slow |= {"workers_per_mover": workers, "spare_connections": spare}
    return {"copy_50k": fast, "copy_10k_slow_db": slow}


async def _workers(conn: asyncpg.Connection) -> tuple[int, int]:
    """Workers per mover: the connections the server has to spare, less HEADROOM, shared
    by the movers (at most MAX_WORKERS each); and how many were spare."""
    spare = await conn.fetchval(
        """SELECT current_setting('max_connections')::int
                  - current_setting('superuser_reserved_connections')::int
                  - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"""
    )
    return max(4, min(MAX_WORKERS, (int(spare) - HEADROOM) // MOVERS)), int(spare)


def _sampler(settings: Settings, pids: list[int]) -> Callable[[float], Sampler]:
    """Sampling every `every_s`: each sample is a query over every backend, which costs
    the CPU the copy is measured on (every 10 ms, one backend took 22% of a core)."""
    return lambda every_s: Sampler(settings.database_url, pids, every_s)


async def _new_list(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    list_id = uuid.uuid4()
    await conn.execute("INSERT INTO collections (id, name) VALUES ($1, $2)", list_id, name)
    return list_id


async def _reference(conn: asyncpg.Connection, source: uuid.UUID, target: uuid.UUID) -> float:
    started = time.perf_counter()
    await conn.execute(
        """INSERT INTO memberships (collection_id, company_id)
           SELECT $2, company_id FROM memberships WHERE collection_id = $1
           ON CONFLICT DO NOTHING""",
        source,
        target,
    )
    return time.perf_counter() - started


async def _through_api(
    client: httpx.AsyncClient,
    source: uuid.UUID,
    target: uuid.UUID,
    accepted_as: asyncio.Future[str] | None = None,
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    body = {"source": str(source), "target": str(target), "mode": "copy",
            "selection": {"all": True}}  # fmt: skip
    accepted = await client.post("/moves", json=body)
    accepted.raise_for_status()
    job_id = accepted.json()["id"]
    if accepted_as is not None:
        accepted_as.set_result(job_id)
    async with httpx_sse.aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as feed:
        async for sse in feed.aiter_sse():
            if sse.event in FINAL_EVENTS:
                break
    while True:  # the projection, usually there already
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return time.perf_counter() - started, job
        await asyncio.sleep(0.005)


async def _unthrottled(
    conn: asyncpg.Connection, client: httpx.AsyncClient, sample: Callable[[float], Sampler]
) -> dict[str, object]:
    ours, reference, phases, at_once = [], [], [], []
    await _through_api(client, seed.MY_LIST, await _new_list(conn, "warm-up"))
    for i in range(RUNS):
        reference.append(await _reference(conn, seed.MY_LIST, await _new_list(conn, f"ref {i}")))
        async with sample(FAST_SAMPLE_S) as sampled:
            took, job = await _through_api(client, seed.MY_LIST, await _new_list(conn, f"api {i}"))
        assert (job["status"], job["added"]) == ("completed", 50_000), job
        ours.append(took)
        phases.append(_phases(job))
        at_once.append(sampled.summary())
    return {
        "rows": 50_000,
        "runs": RUNS,
        "conveyor_s": round(statistics.median(ours), 3),
        "reference_s": round(statistics.median(reference), 3),
        "ratio": round(statistics.median(ours) / statistics.median(reference), 2),
        "conveyor_all_s": [round(t, 3) for t in ours],
        "reference_all_s": [round(t, 3) for t in reference],
        "conveyor_phases_s": phases,
        "chunks_at_once": at_once,
    }


def _phases(job: dict[str, Any]) -> dict[str, float]:
    """Where a job's time went: accepted -> started (planned) -> finished."""
    at = {k: datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")}
    return {
        "queued_to_started": round((at["started_at"] - at["created_at"]).total_seconds(), 3),
        "started_to_finished": round((at["finished_at"] - at["started_at"]).total_seconds(), 3),
    }


async def _throttled(
    conn: asyncpg.Connection, client: httpx.AsyncClient, sample: Callable[[float], Sampler]
) -> dict[str, object]:
    source = await _new_list(conn, "ten thousand")
    await conn.execute(
        "INSERT INTO memberships (collection_id, company_id) SELECT $1, g "
        "FROM generate_series(1, $2::bigint) g",
        source,
        SLOW_ROWS,
    )
    await seed.slow_db(conn, on=True, delay_ms=SLOW_MS)
    try:
        sample_target = await _new_list(conn, "one by one")
        started = time.perf_counter()
        for company in range(1, 21):
            await conn.execute(
                "INSERT INTO memberships (collection_id, company_id) VALUES ($1, $2)",
                sample_target,
                company,
            )
        sequential_s = (time.perf_counter() - started) / 20 * SLOW_ROWS

        target = await _new_list(conn, "slow target")
        progress: list[float] = []
        reads: list[float] = []
        job_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with sample(SLOW_SAMPLE_S) as sampled:
            job_task = asyncio.create_task(_through_api(client, source, target, job_id))
            watcher = asyncio.create_task(_watch(client, progress, job_id))
            reader = asyncio.create_task(_read_while(client, target, reads, job_task))
            took, job = await job_task
            await asyncio.gather(watcher, reader)
    finally:
        await seed.slow_db(conn, on=False)
    gaps = [b - a for a, b in itertools.pairwise(progress)]
    return {
        "rows": SLOW_ROWS,
        "delay_ms_per_row": SLOW_MS,
        "movers": MOVERS,
        "chunks_at_once": sampled.summary(),
        "conveyor_s": round(took, 2),
        "sequential_reference_s": round(sequential_s, 1),
        "status": job["status"],
        "added": job["added"],
        "progress_events": len(progress),
        "progress_per_s": round(len(progress) / took, 1),
        "progress_max_gap_s": round(max(gaps), 2) if gaps else None,
        "list_read_p50_ms": round(percentile(reads, 50) * 1000, 1),
        "list_read_p99_ms": round(percentile(reads, 99) * 1000, 1),
        "list_reads": len(reads),
    }


async def _watch(client: httpx.AsyncClient, seen: list[float], job: asyncio.Future[str]) -> None:
    """Record when each progress event arrives on the job's SSE feed."""
    job_id = await job
    async with httpx_sse.aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as source:
        async for sse in source.aiter_sse():
            if sse.event == "JobProgressed":
                seen.append(time.perf_counter())
            if sse.event in FINAL_EVENTS:
                return


async def _read_while(
    client: httpx.AsyncClient, target: uuid.UUID, took: list[float], job: asyncio.Task[Any]
) -> None:
    while not job.done():
        started = time.perf_counter()
        response = await client.get(f"/collections/{target}/companies?limit=50")
        response.raise_for_status()
        took.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
