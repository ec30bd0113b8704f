"""`POST /moves`: copy or move companies between collections, as a job.

The command (`MoveCompanies` on mover.commands) and the job's first event
(`JobQueued` on jobs.events) are appended together by one Redis script under the
request's idempotency key, then the command is recorded in the gateway's outbox
(`accepted_moves`, gateway/jobs/outbox.py). The `jobs` row is the projection's alone;
until it is written the job is read from that record (gateway/jobs/sql.py: `job`), so
it is readable (and its feed followable) as soon as the 202 is sent. A retried request
with the same `Idempotency-Key` appends nothing and answers with the same job; the
same key with another request is 422 (gateway/idempotency.py).

Bounds (gateway/fields.py): company ids are 1..2^63-1 (PostgreSQL bigint), so the
mover can apply whatever is accepted; `not_before` carries an offset and is a time in
UTC (0001..9999): a past one means "now", a far future one waits (the mover compares
it with its own aware clock). Out of bounds: 422 naming the field, nothing published.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated, Literal

import asyncpg
import msgspec
from litestar import Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from redis.asyncio import Redis

from contracts import codec, streams
from contracts.messages import MoveCompanies, Selection, id_from_key, new_id
from contracts.runtime.settings import Settings
from gateway.catalog import sql as catalog_sql
from gateway.frontdoor import idempotency
from gateway.frontdoor.fields import BOUNDS_AS_422, AwareDatetime, Int64Id, utc
from gateway.frontdoor.idempotency import IdempotencyKey
from gateway.frontdoor.problems import ProblemError
from gateway.jobs import outbox
from gateway.jobs import sql as jobs_sql
from gateway.jobs.views import JobView, view


class AllOf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    all: Literal[True]
    exclude: list[Int64Id] = msgspec.field(default_factory=list)


class MoveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: uuid.UUID
    target: uuid.UUID
    mode: Literal["copy", "move"]
    selection: list[Int64Id] | AllOf
    priority: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    not_before: AwareDatetime | None = None


async def _validate(pool: asyncpg.Pool, data: MoveRequest, settings: Settings) -> Selection:
    if data.source == data.target:
        raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, "source and target are the same list")
    ids = data.selection if isinstance(data.selection, list) else data.selection.exclude
    if len(ids) > settings.max_ids_per_request:
        raise ProblemError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{len(ids)} company ids; at most {settings.max_ids_per_request} per request",
        )
    listed = isinstance(data.selection, list)
    if listed and not ids:
        raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, "the selection lists no company ids")
    missing, unknown = await catalog_sql.missing_for_move(
        conn=pool, collections=[data.source, data.target],
        companies=sorted(set(ids)) if listed else [],
    )  # fmt: skip
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
    if listed:
        return Selection(ids=sorted(set(ids)))
    return Selection(all=True, exclude=sorted(set(ids)))


@post(
    "/moves", summary="Copy or move companies to another collection (a job)", tags=["jobs"],
    exception_handlers=BOUNDS_AS_422,
)  # fmt: skip
async def create_move(
    data: JSONBody[MoveRequest],
    pool: NamedDependency[asyncpg.Pool],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    idempotency_key: IdempotencyKey = None,
) -> Response[JobView]:
    if data.not_before is not None:
        data = msgspec.structs.replace(data, not_before=utc(data.not_before, "not_before"))
    selection = await _validate(pool, data, settings)
    if idempotency_key:
        await idempotency.bind(redis, settings.stream_prefix, "moves", idempotency_key, data)
    job_id = id_from_key("moves", idempotency_key) if idempotency_key else new_id()
    command = MoveCompanies(
        id=job_id, job_id=job_id, source=str(data.source), target=str(data.target),
        mode=data.mode, selection=selection, priority=data.priority,
        max_attempts=data.max_attempts, not_before=data.not_before,
    )  # fmt: skip
    queued = outbox.job_queued(command)
    prefix = settings.stream_prefix
    appended, entry_ids = await codec.publish_all_once(
        redis, f"{prefix}moves.accepted:{job_id}",
        [(streams.MOVER_COMMANDS.prefixed(prefix).name, command),
         (streams.JOBS_EVENTS.prefixed(prefix).name, queued)],
    )  # fmt: skip
    row = await jobs_sql.accept(
        conn=pool, job_id=job_id, command=codec.encode(command).decode(),
        queued_entry=entry_ids[1], accepted_at=command.at,
    )  # fmt: skip
    headers = {"Location": f"/jobs/{job_id}"}
    if not appended:
        headers["Idempotent-Replayed"] = "true"
    return Response(view(row), status_code=HTTPStatus.ACCEPTED, headers=headers)
