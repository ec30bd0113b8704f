"""Small jobs end to end beside BullMQ 5, in the same run, on the same Redis and PostgreSQL.

Ours: JOBS moves (`POST /moves`, mode copy, IDS_PER_JOB explicit ids each, every job
its own ids, all new to the target) with IN_FLIGHT requests in flight, through the
services as `make run` starts them (one gateway, mover and aggregator). Each job is
timed from its POST to its `jobs` row (the projection `GET /jobs` reads) saying
`completed`: one query every POLL_S over the jobs still open, so following costs
the stack one small SELECT, whatever the number of jobs.

Then the same again with the commands added directly (`conveyor_direct_*`): what the
gateway appends for an accepted move (MoveCompanies and JobQueued, by its script),
without the HTTP front door, as a BullMQ producer adds its jobs straight into Redis:
the mover and the projection measured apart from the intake.

Reference: BullMQ 5 (tests/perf/bullmq/bench.mjs, `npm ci` by `make bench`). A
producer process adds the same JOBS jobs with IN_FLIGHT adds in flight and follows
each to `completed` with QueueEvents (how a BullMQ user follows jobs); a worker
process, BULLMQ_CONCURRENCY jobs at once with as many PostgreSQL connections, inserts
the job's ids with `INSERT … ON CONFLICT DO NOTHING` into another empty list. Its keys
live under a prefix of their own, removed afterwards.

Reported: jobs/s (JOBS / time from the first POST to the last completion), p50/p99
latency, and the ratio ours/BullMQ (goal >= 1). The BullMQ producer adds straight into
Redis while ours goes through the gateway's HTTP front door (auth, validation in
PostgreSQL, outbox): `*_accepted_in_s` / `bullmq_added_in_s` say how long submitting
took on each side, and `conveyor_hops_p50_ms` where a job's time went after it (the
mover's command, its chunk if any, the projection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.messages import MoveCompanies, Selection, new_id
from contracts.runtime.db import connect
from contracts.runtime.settings import Settings
from gateway.catalog import demo as seed
from gateway.jobs import outbox
from tests.perf.stack import AUTH, Bench, fresh_schema, percentile, services, wait_ready
from tests.support.processes import kill

JOBS = int(os.environ.get("BENCH_JOBS", "2000"))  # fewer for a quick look
IDS_PER_JOB = 10
IN_FLIGHT = 32
WARM_UP = 32
POLL_S = 0.01
BULLMQ_CONCURRENCY = 32
BULLMQ = Path(__file__).resolve().parent / "bullmq"
TIMEOUT_S = 300.0


async def run(base: Settings) -> dict[str, object]:
    async with fresh_schema(base) as settings:
        conn = await connect(settings)
        try:
            rows = (JOBS + WARM_UP) * IDS_PER_JOB
            await seed.seed(conn, companies=rows + 100, my_list=rows, liked=10, ignore=50)
            ours = await _ours(settings, conn)
            reference = await _bullmq(settings, conn)
        finally:
            await conn.close()
    return {
        "small_jobs": {
            "jobs": JOBS, "ids_per_job": IDS_PER_JOB, "in_flight": IN_FLIGHT,
            "conveyor_jobs_per_s": ours["jobs_per_s"], "conveyor_p50_ms": ours["p50_ms"],
            "conveyor_p99_ms": ours["p99_ms"], "conveyor_accepted_in_s": ours["accepted_in_s"],
            "conveyor_hops_p50_ms": ours["hops_p50_ms"],
            "conveyor_direct_jobs_per_s": ours["direct_jobs_per_s"],
            "conveyor_direct_p50_ms": ours["direct_p50_ms"],
            "conveyor_direct_p99_ms": ours["direct_p99_ms"],
            "conveyor_direct_added_in_s": ours["direct_accepted_in_s"],
            "conveyor_direct_hops_p50_ms": ours["direct_hops_p50_ms"],
            "bullmq_jobs_per_s": reference["jobs_per_s"], "bullmq_p50_ms": reference["p50_ms"],
            "bullmq_p99_ms": reference["p99_ms"], "bullmq_added_in_s": reference["added_in_s"],
            "bullmq_worker_concurrency": BULLMQ_CONCURRENCY,
            "ratio": round(ours["jobs_per_s"] / reference["jobs_per_s"], 3),
            "ratio_direct": round(ours["direct_jobs_per_s"] / reference["jobs_per_s"], 3),
        },
    }  # fmt: skip


async def _new_list(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    list_id = uuid.uuid4()
    await conn.execute("INSERT INTO collections (id, name) VALUES ($1, $2)", list_id, name)
    return list_id


def _ids(i: int) -> list[int]:
    return list(range(1 + i * IDS_PER_JOB, 1 + (i + 1) * IDS_PER_JOB))


class _Follower:
    """Stamps each job when its `jobs` row first says completed (polled every POLL_S)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.open: dict[str, float] = {}  # job id -> when its POST began
        self.took: list[float] = []
        self.failed: list[str] = []
        self.done: list[str] = []

    async def follow(self, total: int) -> None:
        deadline = time.perf_counter() + TIMEOUT_S
        while len(self.took) + len(self.failed) < total:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(self.took)} of {total} jobs completed")
            await asyncio.sleep(POLL_S)
            if not self.open:
                continue
            rows = await self.conn.fetch(
                """SELECT id, status FROM jobs WHERE id = ANY ($1::text[])
                   AND status IN ('completed', 'failed', 'cancelled')""",
                list(self.open),
            )
            now = time.perf_counter()
            for row in rows:
                began = self.open.pop(row["id"])
                if row["status"] == "completed":
                    self.took.append(now - began)
                    self.done.append(row["id"])
                else:
                    self.failed.append(row["id"])


async def _post_all(client: httpx.AsyncClient, follower: _Follower, target: uuid.UUID,
                    jobs: range) -> None:  # fmt: skip
    queue = iter(jobs)

    async def poster() -> None:
        for i in queue:
            body = {"source": str(seed.MY_LIST), "target": str(target), "mode": "copy",
                    "selection": _ids(i)}  # fmt: skip
            began = time.perf_counter()
            response = await client.post("/moves", json=body)
            if response.status_code != 202:
                raise RuntimeError(f"{response.status_code}: {response.text}")
            follower.open.setdefault(response.json()["id"], began)

    await asyncio.gather(*(poster() for _ in range(IN_FLIGHT)))


Submit = Callable[[_Follower, uuid.UUID, range], Awaitable[None]]


async def _ours(settings: Settings, conn: asyncpg.Connection) -> dict[str, Any]:
    with services(settings, {"gateway": 1, "mover": 1, "aggregator": 1}) as bench:
        await wait_ready(bench.gateway)
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        redis = aioredis.from_url(settings.redis_url)
        async with httpx.AsyncClient(
            base_url=bench.gateway, headers=AUTH, limits=limits, timeout=30
        ) as client:

            async def post(follower: _Follower, target: uuid.UUID, jobs: range) -> None:
                await _post_all(client, follower, target, jobs)

            async def xadd(follower: _Follower, target: uuid.UUID, jobs: range) -> None:
                await _xadd_all(redis, settings, follower, target, jobs)

            try:
                http = await _phase(conn, post, "http", bench)
                direct = await _phase(conn, xadd, "direct", bench)
            finally:
                await redis.aclose()
    return http | {f"direct_{k}": v for k, v in direct.items()}


async def _phase(
    conn: asyncpg.Connection, submit: Submit, name: str, bench: Bench
) -> dict[str, Any]:
    """JOBS jobs (after WARM_UP more) into a list of their own, submitted by `submit`."""
    target = await _new_list(conn, f"small jobs: conveyor, {name}")
    warm = _Follower(conn)  # every service up and its first connections made
    await asyncio.gather(warm.follow(WARM_UP), submit(warm, target, range(JOBS, JOBS + WARM_UP)))
    follower = _Follower(conn)
    began = time.perf_counter()
    with _profiled(bench.procs, bench.logs, name):
        following = asyncio.create_task(follower.follow(JOBS))
        await submit(follower, target, range(JOBS))
        accepted_in = time.perf_counter() - began
        await following
    seconds = time.perf_counter() - began
    if follower.failed:
        raise RuntimeError(f"{len(follower.failed)} jobs did not complete: {follower.failed[:5]}")
    added = await conn.fetchval("SELECT count(*) FROM memberships WHERE collection_id = $1", target)
    if added != (JOBS + WARM_UP) * IDS_PER_JOB:
        raise RuntimeError(f"{added} rows in the target, not {(JOBS + WARM_UP) * IDS_PER_JOB}")
    return {
        "jobs_per_s": round(JOBS / seconds, 1),
        "accepted_in_s": round(accepted_in, 2),
        "p50_ms": round(percentile(follower.took, 50) * 1000, 1),
        "p99_ms": round(percentile(follower.took, 99) * 1000, 1),
        "hops_p50_ms": await _hops(conn, list(follower.done)),
    }


async def _xadd_all(redis: aioredis.Redis, settings: Settings, follower: _Follower,
                    target: uuid.UUID, jobs: range) -> None:  # fmt: skip
    """What the gateway appends for an accepted move (MoveCompanies and JobQueued, by the
    same script), without the HTTP front door: how a BullMQ producer adds a job."""
    queue = iter(jobs)
    prefix = settings.stream_prefix
    commands = streams.MOVER_COMMANDS.prefixed(prefix).name
    events = streams.JOBS_EVENTS.prefixed(prefix).name

    async def adder() -> None:
        for i in queue:
            began = time.perf_counter()
            job_id = new_id()
            command = MoveCompanies(
                id=new_id(), job_id=job_id, source=str(seed.MY_LIST), target=str(target),
                mode="copy", selection=Selection(ids=_ids(i)),
            )  # fmt: skip
            follower.open[job_id] = began
            await codec.publish_all_once(
                redis, f"{prefix}moves.accepted:{job_id}",
                [(commands, command), (events, outbox.job_queued(command))],
            )  # fmt: skip

    await asyncio.gather(*(adder() for _ in range(IN_FLIGHT)))


# Where a job's time goes, from what the stack records anyway: the JobQueued entry's
# time (the gateway's XADD), the mover's JobStarted and JobCompleted (`at`, made after
# its commits), and when the projection's transaction applied the JobCompleted.
_HOPS = """
WITH e AS (
    SELECT je.job_id, je.type, je.entry_ms::float8 AS entry_ms,
           extract(epoch FROM je.at) * 1000 AS at_ms,
           extract(epoch FROM a.applied_at) * 1000 AS applied_ms
    FROM job_events je
    LEFT JOIN applied_messages a ON a.consumer_group = 'aggregator'
         AND a.stream LIKE '%jobs.events' AND a.entry_id = je.entry_ms || '-' || je.entry_seq
    WHERE je.job_id = ANY ($1::text[])),
j AS (
    SELECT max(entry_ms) FILTER (WHERE type = 'JobQueued') AS queued,
           max(at_ms) FILTER (WHERE type = 'JobStarted') AS started,
           max(at_ms) FILTER (WHERE type = 'JobCompleted') AS completed,
           max(applied_ms) FILTER (WHERE type = 'JobCompleted') AS projected
    FROM e GROUP BY job_id)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY started - queued) AS queued_to_started,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY completed - started) AS started_to_completed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY projected - completed)
           AS completed_to_projected
FROM j"""


async def _hops(conn: asyncpg.Connection, job_ids: list[str]) -> dict[str, float | None]:
    row = await conn.fetchrow(_HOPS, job_ids)
    assert row is not None
    return {k: None if v is None else round(float(v), 1) for k, v in row.items()}


@contextlib.contextmanager
def _profiled(procs: list[subprocess.Popen[bytes]], logs: Path, name: str) -> Iterator[None]:
    """With PYSPY=<path of py-spy>: a flame graph of each service while it runs (in its
    log directory, printed at the end)."""
    pyspy = os.environ.get("PYSPY")
    if not pyspy:
        yield
        return
    spies = [
        subprocess.Popen([pyspy, "record", "--nonblocking", "-p", str(p.pid), "-o",
                          str(logs / f"profile-{name}-{p.pid}.json"), "--format", "speedscope"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in procs
    ]  # fmt: skip
    try:
        yield
    finally:
        for spy in spies:
            kill(spy, signal.SIGINT, wait_s=60)
        print(f"py-spy profiles in {logs}", flush=True)


def _node_env(settings: Settings, target: uuid.UUID, prefix: str) -> dict[str, str]:
    return os.environ | {
        "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
        "PG_SCHEMA": settings.db_schema, "PREFIX": prefix, "QUEUE": "small-jobs",
        "TARGET": str(target), "JOBS": str(JOBS), "IN_FLIGHT": str(IN_FLIGHT),
        "CONCURRENCY": str(BULLMQ_CONCURRENCY), "POOL": str(BULLMQ_CONCURRENCY),
        "IDS": str(IDS_PER_JOB),
    }  # fmt: skip


def _node(role: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[bytes]:
    if not (BULLMQ / "node_modules" / "bullmq").exists():
        raise RuntimeError("bullmq is not installed: npm ci --prefix tests/perf/bullmq")
    return subprocess.Popen(["node", str(BULLMQ / "bench.mjs"), role], env=env, **kw)


async def _bullmq(settings: Settings, conn: asyncpg.Connection) -> dict[str, float]:
    target = await _new_list(conn, "small jobs: bullmq")
    env = _node_env(settings, target, f"{settings.stream_prefix}bullmq")
    worker = _node("worker", env, stdout=subprocess.PIPE)
    try:
        assert worker.stdout is not None
        line = await asyncio.to_thread(worker.stdout.readline)
        if line.strip() != b"ready":
            raise RuntimeError(f"BullMQ worker did not start: {line!r}")
        producer = _node("producer", env, stdout=subprocess.PIPE)
        out, _ = await asyncio.to_thread(producer.communicate, timeout=TIMEOUT_S)
        if producer.returncode != 0:
            raise RuntimeError(f"BullMQ producer exited {producer.returncode}")
        result: dict[str, float] = msgspec.json.decode(out.strip().splitlines()[-1])
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            kill(worker, 15, wait_s=10)
        kill(worker)
        await asyncio.to_thread(_node("clean", env).wait, 30)
    added = await conn.fetchval("SELECT count(*) FROM memberships WHERE collection_id = $1", target)
    if added != JOBS * IDS_PER_JOB:
        raise RuntimeError(f"BullMQ: {added} rows in the target, not {JOBS * IDS_PER_JOB}")
    return result
