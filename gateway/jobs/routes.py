"""Jobs over HTTP: list, read, count, cancel, retry, follow.

GET  /jobs                 ?status=&kind=&collection=&sort=&offset=&limit=
GET  /jobs/stats           counts by status and by kind
GET  /jobs/stats/minutes   ?minutes= (1..1440): attempts ended in each of the last minutes
GET  /jobs/{id}
GET  /jobs/{id}/timeline   ?after=&limit=: the job's events in stream order, a page at a time
POST /jobs/{id}/cancel     queued, scheduled or running -> 202; finished -> 409
POST /jobs/{id}/retry      failed or cancelled -> 202; otherwise 409
GET  /jobs/{id}/events     SSE: a `snapshot` of the job, then its events after it

Statuses (contracts/jobs.py): queued, scheduled, running, completed, failed, cancelled.

One job (read, cancel, retry, follow) is its row in `jobs`, the aggregator's
projection, or until the projection has written it, the move as this gateway accepted
it (gateway/jobs/sql.py: `job`): a GET right after the 202 answers 200. The list and
the counts read the projection only: a job shows there once its JobQueued is applied.

The feed of one job: the `snapshot` is the job's row, which records the jobs.events
entry id of the newest event applied to it (`feed_from`); the snapshot carries that
id, and the feed goes on with the job's events after it (after `Last-Event-ID`
instead, when the client sends one). The stream ends after the job's final event
(JobCompleted, JobFailed or JobCancelled of its current attempt), or right after the
snapshot when the job is final already and the client has missed nothing.

The timeline and the per-minute outcomes read `job_events`, the projection's record of
every event it applied (jobs.events itself is trimmed). Per minute counts the final
events (JobCompleted, JobFailed, JobCancelled) by their time: every attempt that ended,
so a failure later retried still shows in its minute (`jobs.finished_at` keeps only the
last attempt's end).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal, Protocol

import asyncpg
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import ServerSentEvent
from redis.asyncio import Redis

from contracts import codec, streams
from contracts.codec import entry_key, is_entry_id
from contracts.jobs import ACTIVE, FINAL_EVENTS, FINISHED, RETRYABLE, JobStatus
from contracts.messages import CancelJob, Message, RetryJob, new_id
from contracts.runtime.settings import Settings
from gateway.feeds.fanout import FeedEvent, Feeds
from gateway.feeds.sse import prepend, sse
from gateway.frontdoor.fields import NO_NUL
from gateway.frontdoor.paging import MAX_LIMIT, Limit, Offset, Page
from gateway.frontdoor.problems import ProblemError
from gateway.jobs import sql
from gateway.jobs.outbox import command_from
from gateway.jobs.views import (
    JobStats,
    JobView,
    MinuteStats,
    Timeline,
    minute_outcomes,
    stats_of,
    timeline_item,
    view,
)

Sort = Literal["created_at", "-created_at", "priority", "-priority", "status"]
MAX_JOB_ID = 64  # ids are 32 hex characters; anything longer names no job
_BIGINT = 2**63 - 1  # job_events keeps entry ids as two bigints; none is past this
Minutes = Annotated[int, QueryParameter(ge=1, le=1440, description="whole minutes back")]
TimelineLimit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="events")]
After = Annotated[
    str | None,
    QueryParameter(
        max_length=41, pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$",
        description="the entry id of the last event seen (a page's `next`)",
    ),
]  # fmt: skip


async def find(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    """The job's row, or 404 (an id no job can have, such as one with NUL, included)."""
    row = None if _impossible(job_id) else await sql.job(conn=pool, job_id=job_id)
    if row is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"job {job_id} does not exist")
    return row


@get("/jobs", summary="Jobs, filtered and sorted, with the total")
async def list_jobs(
    pool: NamedDependency[asyncpg.Pool],
    status: FromQuery[JobStatus | None] = None,
    kind: Annotated[str | None, QueryParameter(max_length=50, pattern=NO_NUL)] = None,
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
    return stats_of(await sql.stats(conn=pool))


@get("/jobs/stats/minutes", summary="Attempts completed, failed, cancelled per minute")
async def job_minutes(pool: NamedDependency[asyncpg.Pool], minutes: Minutes = 60) -> MinuteStats:
    rows = await sql.ended_per_minute(conn=pool, minutes=minutes)
    return MinuteStats(minutes=[minute_outcomes(r) for r in rows])


@get("/jobs/{job_id:str}", summary="One job")
async def get_job(pool: NamedDependency[asyncpg.Pool], job_id: FromPath[str]) -> JobView:
    return view(await find(pool, job_id))


@get("/jobs/{job_id:str}/timeline", summary="A job's events in order, a page at a time")
async def job_timeline(
    pool: NamedDependency[asyncpg.Pool],
    job_id: FromPath[str],
    after: After = None,
    limit: TimelineLimit = 200,
) -> Timeline:
    await find(pool, job_id)
    start = entry_key(after) if after is not None else (0, 0)
    rows = await sql.timeline(
        conn=pool, job_id=job_id, after=(min(start[0], _BIGINT), min(start[1], _BIGINT)),
        limit=limit + 1,
    )  # fmt: skip
    items = [timeline_item(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Timeline(
        job_id=job_id, items=items, limit=limit, next=items[-1].entry_id if more else None
    )


@dataclass(frozen=True)
class JobCommands:
    """What cancel and retry need: the job, and a way to send the mover a command."""

    pool: asyncpg.Pool
    redis: Redis
    settings: Settings

    async def send(self, job_id: str, command: Message) -> Response[JobView]:
        name = streams.MOVER_COMMANDS.prefixed(self.settings.stream_prefix).name
        await codec.publish(self.redis, name, command)
        return Response(view(await find(self.pool, job_id)), status_code=HTTPStatus.ACCEPTED)


def _job_commands(
    pool: NamedDependency[asyncpg.Pool],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
) -> JobCommands:
    return JobCommands(pool, redis, settings)


@post("/jobs/{job_id:str}/cancel", summary="Cancel a queued, scheduled or running job")
async def cancel_job(
    job_commands: NamedDependency[JobCommands], job_id: FromPath[str]
) -> Response[JobView]:
    job = await find(job_commands.pool, job_id)
    if job["status"] not in ACTIVE:
        raise ProblemError(HTTPStatus.CONFLICT, f"job {job_id} is {job['status']} already")
    return await job_commands.send(job_id, CancelJob(id=new_id(), job_id=job_id))


@post("/jobs/{job_id:str}/retry", summary="Run a failed or cancelled job again")
async def retry_job(
    job_commands: NamedDependency[JobCommands], job_id: FromPath[str]
) -> Response[JobView]:
    job = await find(job_commands.pool, job_id)
    if job["status"] not in RETRYABLE:
        raise ProblemError(
            HTTPStatus.CONFLICT, f"job {job_id} is {job['status']}; only failed or cancelled "
            "jobs can be retried",
        )  # fmt: skip
    accepted = await sql.accepted_command(conn=job_commands.pool, job_id=job_id)
    retry = RetryJob(id=new_id(), job_id=job_id, move=command_from(accepted) if accepted else None)
    return await job_commands.send(job_id, retry)


@get("/jobs/{job_id:str}/events", summary="Follow a job (SSE) until its final event")
async def job_events(
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    feeds: NamedDependency[Feeds],
    job_id: FromPath[str],
) -> ServerSentEvent:
    job = await find(pool, job_id)
    resume = request.headers.get("last-event-id") or None
    if resume is not None and not is_entry_id(resume):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, f"Last-Event-ID {resume[:100]!r} is not an event id"
        )
    after = resume or job["feed_from"]
    snapshot = FeedEvent(after, "snapshot", msgspec.json.encode(view(job)))
    final = job["status"] in FINISHED
    if final and (resume is None or not _later(job["feed_from"], resume)):
        return sse(prepend(snapshot))
    feed = feeds.get(streams.JOBS_EVENTS)
    events = await feed.subscribe(match=lambda m: getattr(m, "job_id", None) == job_id, after=after)
    until = job["feed_from"] if final else None
    return sse(_follow(snapshot, events, attempt=job["attempts"], until=until), releasing=[events])


class _Events(Protocol):
    """A feed subscription: its events, and `aclose()` to let it go."""

    def __aiter__(self) -> AsyncIterator[FeedEvent]: ...

    async def aclose(self) -> None: ...


class _Attempt(msgspec.Struct):
    attempt: int = 0


async def _follow(
    snapshot: FeedEvent, events: _Events, *, attempt: int, until: str | None
) -> AsyncIterator[FeedEvent]:
    """The snapshot, then the events until the job's final one: one of its attempt
    `attempt` or later, or (a job final already) the newest one its row had applied."""
    try:
        yield snapshot
        async for event in events:
            yield event
            if until is not None and event.id and not _later(until, event.id):
                return
            if event.event in FINAL_EVENTS:
                ended = msgspec.json.decode(event.data, type=_Attempt).attempt
                if ended == 0 or ended >= attempt:
                    return
    finally:
        await events.aclose()


def _later(a: str, b: str) -> bool:
    """Whether stream entry id `a` comes after `b`."""
    return entry_key(a) > entry_key(b)


def _impossible(job_id: str) -> bool:
    return len(job_id) > MAX_JOB_ID or "\x00" in job_id


router = Router(
    path="/",
    route_handlers=[
        list_jobs,
        job_stats,
        job_minutes,
        get_job,
        job_timeline,
        cancel_job,
        retry_job,
        job_events,
    ],
    dependencies={"job_commands": Provide(_job_commands, sync_to_thread=False)},
    tags=["jobs"],
)
