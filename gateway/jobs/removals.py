"""Taking companies out of a list, and deleting a list, as jobs.

POST   /removals            {"source", "selection", "priority"?, "max_attempts"?,
                             "not_before"?} -> 202 job of kind `remove`
DELETE /collections/{id}    -> 202 job of kind `delete`

Both are accepted as a move is (gateway/jobs/accepting.py: one MoveCompanies, here of
mode `remove` or `delete` and without target, with its JobQueued; the outbox; the
`Idempotency-Key`), and the mover plans and applies them as it does a move: pages of
company ids, chunks, progress (`removed` of `total`), cancel, retry.

A `delete` job removes all of the list's companies chunk by chunk; the chunk that
completes it deletes the list's row in the same transaction. Cancelled, the list stays
with what was not removed yet; retried, it goes on. While it runs, the list takes no
companies (POST /moves into it: 422), and a list that a copy or move is filling is
not deleted (409 naming the jobs: cancel them or let them finish), so no move writes
into a list that is going away.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, post
from litestar.params import FromPath, JSONBody

from contracts.messages import MoveCompanies, Selection
from contracts.runtime.db import DbConnection
from gateway.catalog import sql as catalog_sql
from gateway.frontdoor.fields import BOUNDS_AS_422, AwareDatetime, utc
from gateway.frontdoor.idempotency import IdempotencyKey
from gateway.frontdoor.problems import ProblemError
from gateway.jobs import accepting
from gateway.jobs import sql as jobs_sql
from gateway.jobs.accepting import Selected
from gateway.jobs.views import JobView

REMOVALS, DELETIONS = "removals", "deletions"


class RemovalRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: uuid.UUID
    selection: Selected
    priority: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    not_before: AwareDatetime | None = None


class Deletion(msgspec.Struct, kw_only=True):
    """What a DELETE of a list is, for its Idempotency-Key: the list it names."""

    collection: uuid.UUID


@post(
    "/removals", summary="Remove companies from a collection (a job)", tags=["jobs"],
    exception_handlers=BOUNDS_AS_422,
)  # fmt: skip
async def create_removal(
    data: JSONBody[RemovalRequest], request: Request[Any, Any, Any],
    idempotency_key: IdempotencyKey = None,
) -> Response[JobView]:  # fmt: skip
    if data.not_before is not None:
        data = msgspec.structs.replace(data, not_before=utc(data.not_before, "not_before"))
    key, intake = idempotency_key, accepting.intake_of(request.app.state)
    async with intake.pool.acquire() as conn:
        replay = await accepting.replayed(conn, intake, scope=REMOVALS, key=key, request=data)
        if replay is not None:
            return replay
        selection = await accepting.selection(
            conn, intake.settings, lists=[data.source], selected=data.selection
        )
        job_id = accepting.job_id(REMOVALS, key)
        command = MoveCompanies(
            id=job_id, job_id=job_id, source=str(data.source), mode="remove",
            selection=selection, priority=data.priority, max_attempts=data.max_attempts,
            not_before=data.not_before,
        )  # fmt: skip
        return await accepting.accept(command, conn, intake, scope=REMOVALS, key=key, request=data)


@delete(
    "/collections/{collection_id:uuid}", summary="Delete a collection (a job)",
    tags=["collections", "jobs"], status_code=HTTPStatus.ACCEPTED,
)  # fmt: skip
async def delete_collection(
    collection_id: FromPath[uuid.UUID], request: Request[Any, Any, Any],
    idempotency_key: IdempotencyKey = None,
) -> Response[JobView]:  # fmt: skip
    key, deletion = idempotency_key, Deletion(collection=collection_id)
    intake = accepting.intake_of(request.app.state)
    async with intake.pool.acquire() as conn:
        replay = await accepting.replayed(conn, intake, scope=DELETIONS, key=key, request=deletion)
        if replay is not None:
            return replay
        if await catalog_sql.collection(conn=conn, collection_id=collection_id) is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, f"collection {collection_id} does not exist")
        await _refuse_if_busy(conn, collection_id)
        job_id = accepting.job_id(DELETIONS, key)
        command = MoveCompanies(
            id=job_id, job_id=job_id, source=str(collection_id), mode="delete",
            selection=Selection(all=True),
        )  # fmt: skip
        return await accepting.accept(
            command, conn, intake, scope=DELETIONS, key=key, request=deletion
        )


async def _refuse_if_busy(conn: DbConnection, collection: uuid.UUID) -> None:
    """409 if a job deletes the list already, or copies or moves companies into it."""
    busy = await jobs_sql.busy_with_list(conn=conn, collection=collection)
    deleting = [job["id"] for job in busy if job["kind"] == "delete"]
    if deleting:
        raise ProblemError(
            HTTPStatus.CONFLICT, f"list {collection} is being deleted already (job {deleting[0]})",
            job=deleting[0],
        )  # fmt: skip
    if busy:
        ids = [job["id"] for job in busy]
        raise ProblemError(
            HTTPStatus.CONFLICT,
            f"{len(ids)} job(s) copy or move companies into list {collection}: cancel them "
            "or let them finish, then delete it",
            jobs=ids[:50],
        )  # fmt: skip
