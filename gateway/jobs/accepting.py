"""What every route that accepts a job over companies of a list shares (POST /moves,
POST /removals, DELETE /collections/{id}): the selection's checks, the answer to a
retried request, and the publish path.

The command (`MoveCompanies` on mover.commands) and the job's first event (`JobQueued`
on jobs.events) are appended together by one Redis script under the job's id, then the
command is recorded in the gateway's outbox (`accepted_moves`, gateway/jobs/outbox.py).
The `jobs` row is the projection's alone; until it is written the job is read from that
record (gateway/jobs/sql.py: `job`), so it is readable (and its feed followable) as soon
as the 202 is sent.

`Idempotency-Key`: the job's id is derived from the key (per route), and the key is
bound to the request (gateway/frontdoor/idempotency.py) once the request is valid. A
retried request whose job exists already answers with that job at once, even if what
it named changed since (a list deleted by that very job); the same key with another
request is 422.

What a request costs (issue 12, profiled with py-spy): one PostgreSQL statement for
every check (`admission`: the lists and companies exist, no job deletes the target),
one Redis script for the append, one statement for the outbox row, all on one pooled
connection. The front door adds no round trip for most requests (its rate limit
spends tokens leased in bulk, gateway/frontdoor/ratelimit.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import asyncpg
import msgspec
from litestar import Response
from litestar.datastructures import State
from redis.asyncio import Redis

from contracts import codec, streams
from contracts.messages import MoveCompanies, Selection, id_from_key, new_id
from contracts.runtime.db import DbConnection
from contracts.runtime.settings import Settings
from gateway.frontdoor import idempotency
from gateway.frontdoor.fields import Int64Id
from gateway.frontdoor.problems import ProblemError
from gateway.jobs import outbox
from gateway.jobs import sql as jobs_sql
from gateway.jobs.views import JobView, view


class AllOf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    all: Literal[True]
    exclude: list[Int64Id] = msgspec.field(default_factory=list)


Selected = list[Int64Id] | AllOf


@dataclass(frozen=True)
class Intake:
    """What accepting a job takes, from the app's state. (Not as Litestar dependencies:
    it resolves several as the tasks of a task group, and any in a cleanup group, on
    every request; a route takes the `request` and calls `intake_of`.)"""

    pool: asyncpg.Pool
    redis: Redis
    settings: Settings


def intake_of(state: State) -> Intake:
    return Intake(state.pool, state.redis, state.settings)


async def selection(
    conn: DbConnection, settings: Settings, *, lists: list[uuid.UUID], selected: Selected,
    into: uuid.UUID | None = None,
) -> Selection:  # fmt: skip
    """`selected` as a Selection, once the lists and the listed companies exist and no
    job deletes the list the companies go `into`; else 413 (too many ids) or 422 saying
    what is missing or which job deletes the list. One query."""
    ids = selected if isinstance(selected, list) else selected.exclude
    if len(ids) > settings.max_ids_per_request:
        raise ProblemError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{len(ids)} company ids; at most {settings.max_ids_per_request} per request",
        )
    listed = isinstance(selected, list)
    if listed and not ids:
        raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, "the selection lists no company ids")
    unique = sorted(set(ids))
    missing, unknown, deleting = await jobs_sql.admission(
        conn=conn, lists=lists, companies=unique if listed else [], into=into
    )
    if missing:
        names = [str(c) for c in missing]
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY, f"collections do not exist: {', '.join(names)}",
            missing=names,
        )  # fmt: skip
    if unknown:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY, f"{len(unknown)} company ids do not exist",
            unknown=unknown[:50],
        )  # fmt: skip
    if deleting is not None:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"list {into} is being deleted (job {deleting}); it takes no companies",
            job=deleting,
        )  # fmt: skip
    if listed:
        return Selection(ids=unique)
    return Selection(all=True, exclude=unique)


def job_id(scope: str, key: str | None) -> str:
    """The id of the job a request starts: derived from its Idempotency-Key, if any."""
    return id_from_key(scope, key) if key else new_id()


async def replayed(
    conn: DbConnection, intake: Intake, *, scope: str, key: str | None, request: Any
) -> Response[JobView] | None:
    """The answer to a retried request (same key, same request) whose job exists: that
    job, as it is now. None when there is no key or no such job yet."""
    if not key:
        return None
    row = await jobs_sql.job(conn=conn, job_id=id_from_key(scope, key))
    if row is None:
        return None
    await idempotency.bind(intake.redis, intake.settings.stream_prefix, scope, key, request)
    return _answer(row, replayed=True)


async def accept(
    command: MoveCompanies, conn: DbConnection, intake: Intake, *, scope: str,
    key: str | None, request: Any,
) -> Response[JobView]:  # fmt: skip
    """Publish the job's command and JobQueued once, record the command in the outbox:
    202 with the job (`Idempotent-Replayed` when this key's job was appended before)."""
    redis, prefix, job = intake.redis, intake.settings.stream_prefix, command.job_id
    if key:
        await idempotency.bind(redis, prefix, scope, key, request)
    queued = outbox.job_queued(command)
    appended, entry_ids = await codec.publish_all_once(
        redis, f"{prefix}moves.accepted:{job}",
        [(streams.MOVER_COMMANDS.prefixed(prefix).name, command),
         (streams.JOBS_EVENTS.prefixed(prefix).name, queued)],
    )  # fmt: skip
    row = await jobs_sql.accept(
        conn=conn, job_id=job, command=codec.encode(command).decode(),
        queued_entry=entry_ids[1], accepted_at=command.at,
    )  # fmt: skip
    return _answer(row, replayed=not appended)


def _answer(row: asyncpg.Record, *, replayed: bool) -> Response[JobView]:
    headers = {"Location": f"/jobs/{row['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(view(row), status_code=HTTPStatus.ACCEPTED, headers=headers)
