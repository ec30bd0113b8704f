"""`POST /moves`: copy or move companies between collections, as a job.

Accepted as every job over a list's companies is (gateway/jobs/accepting.py): the
MoveCompanies and its JobQueued appended together once, the command recorded in the
outbox, the job readable at once; a retried request with the same `Idempotency-Key`
answers with the same job, the same key with another request is 422. A list that a
job is deleting (DELETE /collections/{id}) takes no companies: 422.

Bounds (gateway/fields.py): company ids are 1..2^63-1 (PostgreSQL bigint), so the
mover can apply whatever is accepted; `not_before` carries an offset and is a time in
UTC (0001..9999): a past one means "now", a far future one waits (the mover compares
it with its own aware clock). Out of bounds: 422 naming the field, nothing published.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, post
from litestar.params import JSONBody

from contracts.messages import MoveCompanies
from gateway.frontdoor.fields import BOUNDS_AS_422, AwareDatetime, utc
from gateway.frontdoor.idempotency import IdempotencyKey
from gateway.frontdoor.problems import ProblemError
from gateway.jobs import accepting
from gateway.jobs.accepting import Selected
from gateway.jobs.views import JobView

SCOPE = "moves"


class MoveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: uuid.UUID
    target: uuid.UUID
    mode: Literal["copy", "move"]
    selection: Selected
    priority: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    not_before: AwareDatetime | None = None


@post(
    "/moves", summary="Copy or move companies to another collection (a job)", tags=["jobs"],
    exception_handlers=BOUNDS_AS_422,
)  # fmt: skip
async def create_move(
    data: JSONBody[MoveRequest], request: Request[Any, Any, Any],
    idempotency_key: IdempotencyKey = None,
) -> Response[JobView]:  # fmt: skip
    if data.not_before is not None:
        data = msgspec.structs.replace(data, not_before=utc(data.not_before, "not_before"))
    if data.source == data.target:
        raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, "source and target are the same list")
    key, intake = idempotency_key, accepting.intake_of(request.app.state)
    async with intake.pool.acquire() as conn:  # one connection: one reset on release
        replay = await accepting.replayed(conn, intake, scope=SCOPE, key=key, request=data)
        if replay is not None:
            return replay
        selection = await accepting.selection(
            conn, intake.settings, lists=[data.source, data.target], selected=data.selection,
            into=data.target,
        )  # fmt: skip
        job_id = accepting.job_id(SCOPE, key)
        command = MoveCompanies(
            id=job_id, job_id=job_id, source=str(data.source), target=str(data.target),
            mode=data.mode, selection=selection, priority=data.priority,
            max_attempts=data.max_attempts, not_before=data.not_before,
        )  # fmt: skip
        return await accepting.accept(command, conn, intake, scope=SCOPE, key=key, request=data)
