"""Jobs over HTTP: list, read, count, cancel, retry, follow.

GET  /jobs                 ?status=&kind=&collection=&sort=&offset=&limit=
GET  /jobs/stats           counts by status and by kind
GET  /jobs/{id}
POST /jobs/{id}/cancel     queued or running -> 202; finished -> 409
POST /jobs/{id}/retry      failed or cancelled -> 202; otherwise 409
GET  /jobs/{id}/events     SSE: a `snapshot` of the job, then its events from
                           jobs.events (ids are stream entry ids; Last-Event-ID resumes)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import ServerSentEvent
from redis.asyncio import Redis

from contracts import codec, streams
from contracts.messages import CancelJob, Message, RetryJob, new_id
from contracts.settings import Settings
from gateway import jobs_sql as sql
from gateway.feeds import FeedEvent, Feeds
from gateway.paging import Limit, Offset, Page
from gateway.problems import ProblemError
from gateway.sse import sse

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
Sort = Literal["created_at", "-created_at", "priority", "-priority", "status"]
FINISHED = ("completed", "failed", "cancelled")


class Links(msgspec.Struct):
    self: str
    events: str


class JobView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    not_before: datetime | None
    source: uuid.UUID | None
    target: uuid.UUID | None
    total: int | None
    done: int
    added: int
    already_present: int
    removed: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    links: Links


class JobStats(msgspec.Struct):
    by_status: dict[str, int]
    by_kind: dict[str, dict[str, int]]
    total: int


def view(row: asyncpg.Record) -> JobView:
    fields = {k: v for k, v in dict(row).items() if k != "feed_from"}
    job_id = fields["id"]
    return JobView(**fields, links=Links(f"/jobs/{job_id}", f"/jobs/{job_id}/events"))


async def find(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    row = await sql.job(conn=pool, job_id=job_id)
    if row is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"job {job_id} does not exist")
    return row


@get("/jobs", summary="Jobs, filtered and sorted, with the total")
async def list_jobs(
    pool: NamedDependency[asyncpg.Pool],
    status: FromQuery[Status | None] = None,
    kind: Annotated[str | None, QueryParameter(max_length=50)] = None,
    collection: FromQuery[uuid.UUID | None] = None,
    sort: FromQuery[Sort] = "-created_at",
    offset: Offset = 0,
    limit: Limit = 50,
) -> Page[JobView]:
    rows, total = await sql.jobs(
        conn=pool, status=status, kind=kind, collection=collection, sort=sort,
        offset=offset, limit=limit,
    )  # fmt: skip
    return Page(items=[view(r) for r in rows], total=total, offset=offset, limit=limit)


@get("/jobs/stats", summary="How many jobs, by status and by kind")
async def job_stats(pool: NamedDependency[asyncpg.Pool]) -> JobStats:
    by_status = dict.fromkeys(("queued", "running", "completed", "failed", "cancelled"), 0)
    by_kind: dict[str, dict[str, int]] = {}
    for row in await sql.stats(conn=pool):
        by_status[row["status"]] += row["n"]
        by_kind.setdefault(row["kind"], {})[row["status"]] = row["n"]
    return JobStats(by_status=by_status, by_kind=by_kind, total=sum(by_status.values()))


@get("/jobs/{job_id:str}", summary="One job")
async def get_job(pool: NamedDependency[asyncpg.Pool], job_id: FromPath[str]) -> JobView:
    return view(await find(pool, job_id))


async def _command(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, job_id: str, command: Message
) -> Response[JobView]:
    name = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    await codec.publish(redis, name, command)
    return Response(view(await find(pool, job_id)), status_code=HTTPStatus.ACCEPTED)


@post("/jobs/{job_id:str}/cancel", summary="Cancel a queued or running job")
async def cancel_job(
    pool: NamedDependency[asyncpg.Pool],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    job_id: FromPath[str],
) -> Response[JobView]:
    job = await find(pool, job_id)
    if job["status"] in FINISHED:
        raise ProblemError(HTTPStatus.CONFLICT, f"job {job_id} is {job['status']} already")
    return await _command(pool, redis, settings, job_id, CancelJob(id=new_id(), job_id=job_id))


@post("/jobs/{job_id:str}/retry", summary="Run a failed or cancelled job again")
async def retry_job(
    pool: NamedDependency[asyncpg.Pool],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    job_id: FromPath[str],
) -> Response[JobView]:
    job = await find(pool, job_id)
    if job["status"] not in ("failed", "cancelled"):
        raise ProblemError(
            HTTPStatus.CONFLICT, f"job {job_id} is {job['status']}; only failed or cancelled "
            "jobs can be retried",
        )  # fmt: skip
    return await _command(pool, redis, settings, job_id, RetryJob(id=new_id(), job_id=job_id))


@get("/jobs/{job_id:str}/events", summary="Follow a job (SSE)")
async def job_events(
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    feeds: NamedDependency[Feeds],
    job_id: FromPath[str],
) -> ServerSentEvent:
    job = await find(pool, job_id)
    after = request.headers.get("last-event-id") or job["feed_from"]
    feed = feeds.get(streams.JOBS_EVENTS)
    events = await feed.subscribe(match=lambda m: getattr(m, "job_id", None) == job_id, after=after)
    snapshot = FeedEvent("", "snapshot", msgspec.json.encode(view(job)))
    return sse(_prepend(snapshot, events))


async def _prepend(first: FeedEvent, rest: AsyncIterator[FeedEvent]) -> AsyncIterator[FeedEvent]:
    yield first
    async for event in rest:
        yield event


router = Router(
    path="/",
    route_handlers=[list_jobs, job_stats, get_job, cancel_job, retry_job, job_events],
    tags=["jobs"],
)
