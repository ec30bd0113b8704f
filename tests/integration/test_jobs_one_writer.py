"""Issue 9: one writer for the `jobs` row, the aggregator's projection.

The gateway never writes `jobs` (a trigger refuses every statement that would); a job
it just accepted still reads 200 everywhere before the projection has its row, from
the command it published (its outbox, accepted_moves); and that outbox still heals a
command Redis lost together with its JobQueued (they are appended together)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import httpx_sse
import msgspec
import pytest
import redis.asyncio as aioredis

from aggregator.app import create_app as create_aggregator
from contracts import streams
from contracts.messages import MoveCompanies
from contracts.runtime import migrations
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from gateway.catalog import demo as seed
from mover.app import create_app as create_mover
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE
from tests.support.mover_stack import MY_LIST
from tests.support.services import ServiceUrls
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REFUSE_JOBS_WRITES = """
CREATE FUNCTION only_the_projection() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'only the projection writes jobs'; END $$;
CREATE TRIGGER only_the_projection BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobs
  FOR EACH STATEMENT EXECUTE FUNCTION only_the_projection();"""
ALLOW_JOBS_WRITES = "DROP TRIGGER only_the_projection ON jobs"


@contextlib.asynccontextmanager
async def gateway_alone(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """Demo data and a gateway, with neither the aggregator nor a mover running."""
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=1000, my_list=500, liked=10, ignore=50)
    async with (
        uvicorn_serve(create_gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE) as client,
    ):
        yield client


async def accept_a_copy(client: httpx.AsyncClient, selection: object) -> dict[str, Any]:
    target = await client.post("/collections", json={"name": "Target"})
    assert target.status_code == 201, target.text
    body = {"source": MY_LIST, "target": target.json()["id"], "mode": "copy",
            "selection": selection, "priority": 4}  # fmt: skip
    accepted = await client.post("/moves", json=body)
    assert accepted.status_code == 202, accepted.text
    return dict(accepted.json())


async def first_event(client: httpx.AsyncClient, url: str) -> httpx_sse.ServerSentEvent:
    async with httpx_sse.aconnect_sse(client, "GET", url) as source:
        async for sse in source.aiter_sse():
            if sse.event and sse.event != "message":
                return sse
    raise AssertionError(f"{url} ended with no event")


async def status_of(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("GET", url) as r:
        return r.status_code


async def entries_of_job_queued(redis: aioredis.Redis, settings: Settings) -> tuple[str, str]:
    """Where POST /moves appended the job's MoveCompanies and JobQueued."""
    prefix = settings.stream_prefix
    keys = [k async for k in redis.scan_iter(match=f"{prefix}moves.accepted:*")]
    assert len(keys) == 1
    recorded = await redis.get(keys[0])
    assert isinstance(recorded, bytes)
    command, queued = recorded.decode().split(" ")
    return command, queued


async def payloads(redis: aioredis.Redis, stream: str) -> list[bytes]:
    """The JSON of every entry of `stream`."""
    found = []
    for _, fields in await redis.xrange(stream) or []:
        assert fields is not None
        data = fields[b"__data__"]
        assert isinstance(data, bytes)
        found.append(data)
    return found


async def test_a_job_just_accepted_reads_200_everywhere_and_the_gateway_never_writes_jobs(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    await pool.execute(REFUSE_JOBS_WRITES)
    async with gateway_alone(settings, pool) as client:
        job = await accept_a_copy(client, [1, 2, 3])
        url = f"/jobs/{job['id']}"
        read = await client.get(url)
        snapshot = await first_event(client, f"{url}/events")
        lookup = await status_of(client, f"/events?topics=jobs&job_id={job['id']}")
        retry = await client.post(f"{url}/retry")
        cancel = await client.post(f"{url}/cancel")
        _, queued_entry = await entries_of_job_queued(redis, settings)
        rows = await pool.fetchval("SELECT count(*) FROM jobs")
        await pool.execute(ALLOW_JOBS_WRITES)
        async with create_aggregator(settings)[0]:
            projected = await wait_until(
                lambda: pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job["id"]),
                what="the projection wrote the job's row",
            )
            after = (await client.get(url)).json()

    assert read.status_code == 200, read.text
    assert read.json() == job, "the job as accepted, answered from its command"
    assert (job["status"], job["priority"], job["attempts"], job["total"]) == ("queued", 4, 0, None)
    assert (snapshot.event, snapshot.id) == ("snapshot", queued_entry)
    assert json.loads(snapshot.data) == job
    assert lookup == 200
    assert retry.status_code == 409, "a queued job is not retried"
    assert cancel.status_code == 202
    assert cancel.json()["id"] == job["id"]
    assert rows == 0
    assert projected is not None
    assert projected["feed_from"] == queued_entry
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in job.items() if k != "updated_at"
    }, "the projected row says what the command said"


async def test_the_outbox_sends_again_a_command_redis_lost_with_its_job_queued(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    settings = msgspec.structs.replace(settings, job_replan_after_s=1.0)
    prefix = settings.stream_prefix
    commands = streams.MOVER_COMMANDS.prefixed(prefix).name
    events = streams.JOBS_EVENTS.prefixed(prefix).name
    async with gateway_alone(settings, pool) as client:
        job = await accept_a_copy(client, {"all": True})
        command_entry, queued_entry = await entries_of_job_queued(redis, settings)
        # Redis lost both after the 202 (they are appended together), and its record of them.
        await redis.xdel(commands, command_entry)
        await redis.xdel(events, queued_entry)
        await redis.delete(f"{prefix}moves.accepted:{job['id']}")
        meanwhile = await client.get(f"/jobs/{job['id']}")
        async with create_aggregator(settings)[0], create_mover(settings)[0]:
            done = await wait_until(
                lambda: _completed(client, job["id"]), timeout=30, what="the job completed"
            )
        queued = [e for e in await payloads(redis, events) if b'"JobQueued"' in e]
        sent = await payloads(redis, commands)
        settled = await wait_until(
            lambda: pool.fetchval(
                "SELECT settled_at FROM accepted_moves WHERE job_id = $1", job["id"]
            ),
            what="the next sweep settled the move",
        )

    assert meanwhile.status_code == 200
    assert done is not None
    assert meanwhile.json()["status"] == "queued"
    assert (done["added"], done["attempts"]) == (500, 1)
    assert len(queued) == 1, "its JobQueued sent again once"
    assert len(sent) == 1, "its MoveCompanies sent again once"
    assert settled is not None


async def _completed(client: httpx.AsyncClient, job_id: str) -> dict[str, Any] | None:
    job = (await client.get(f"/jobs/{job_id}")).json()
    return dict(job) if job.get("status") == "completed" else None


async def test_the_migration_keeps_the_commands_of_moves_accepted_before_it(
    urls: ServiceUrls, tmp_path: Path
) -> None:
    for m in migrations.load():
        if m.version < 7:  # the schema as it was before accepted_moves
            (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(urls.database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        await migrations.apply(conn, tmp_path)
        source, target = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            """INSERT INTO jobs (id, kind, status, priority, max_attempts, not_before, source,
                   target, params, feed_from)
               VALUES ('a', 'copy', 'queued', 2, 4, '2030-01-01T00:00:00Z', $1, $2,
                       '{"selection": {"ids": null, "all": true, "exclude": [7]}}', '5-1'),
                      ('b', 'move', 'running', 3, 3, NULL, $1, $2,
                       '{"selection": {"ids": [1, 2], "all": false, "exclude": []}}', '6-0'),
                      ('c', 'batch', 'queued', 3, 3, NULL, NULL, NULL, '{}', '7-0')""",
            source, target,
        )  # fmt: skip
        await migrations.apply(conn)
        rows = await conn.fetch("SELECT * FROM accepted_moves ORDER BY job_id")
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    decoder = streams.MOVER_COMMANDS.decoder()
    a, b = (decoder.decode(r["command"]) for r in rows)
    assert isinstance(a, MoveCompanies)
    assert isinstance(b, MoveCompanies)
    assert (a.id, a.job_id, a.mode, a.source, a.target) == (
        "a",
        "a",
        "copy",
        str(source),
        str(target),
    )
    assert (a.selection.all, a.selection.exclude, a.priority, a.max_attempts) == (True, [7], 2, 4)
    assert a.not_before is not None
    assert a.not_before.year == 2030
    assert (b.selection.ids, b.mode, b.not_before) == ([1, 2], "move", None)
    assert [(r["queued_entry"], r["settled_at"] is None) for r in rows] == [
        ("5-1", True), ("6-0", False),
    ]  # fmt: skip
