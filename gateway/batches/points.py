"""`POST /batches/{batch_id}/points`: points pushed by external producers.

The body is a JSON array of `{"key": <number>, "ts": <RFC 3339 time>?}` (`ts`
defaults to the arrival time). `key` is finite and within ±1e15 (gateway.frontdoor.fields:
every minute's sum then stays far inside double precision); `ts` has an offset,
is a time in UTC at all (years 0001..9999) and is at most MAX_FUTURE ahead; it
travels and is stored in UTC. A point far in the past is accepted and counted
late.

All or nothing: if any item is bad, the answer is 422 problem+json with
`errors: [{index, error}]` for every bad item (the first MAX_ERRORS of them) and
nothing is published. More than `max_points_per_request` items is 413; a batch
that was never started is 404 and one that is not running is 409 (start it, with
`rate: 0` for a batch fed only by pushes). Accepted points go as one RecordPoints
message to `ingest.points`, stamped with their arrival time (against which
lateness is judged) in one atomic step that also checks the batch runs
(contracts/runtime/batch_registry.py). An `Idempotency-Key` makes a retried request publish
nothing the second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from litestar import Request, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.openapi.spec.request_body import RequestBody
from litestar.params import FromPath, RawBody

from contracts.messages import Point, RecordPoints, id_from_key, new_id
from contracts.runtime.batch_registry import BatchRegistry
from contracts.runtime.settings import Settings
from gateway.batches import sql
from gateway.batches.deps import BatchMetrics, Clock, batch_metrics_of, batches_of, clock_of
from gateway.batches.ids import existing_batch_id
from gateway.frontdoor import idempotency
from gateway.frontdoor.fields import MAX_ABS_VALUE, AwareDatetime, Value
from gateway.frontdoor.idempotency import IdempotencyKey
from gateway.frontdoor.problems import ProblemError
from gateway.resources import pool_of, settings_of

__all__ = ["PointIn", "PointsAccepted", "parse_points", "push_points"]

MAX_FUTURE = timedelta(minutes=5)  # clock skew we tolerate in a producer's `ts`
MAX_ERRORS = 100


class PointIn(msgspec.Struct, forbid_unknown_fields=True):
    key: Value
    ts: AwareDatetime | None = None


# The body is read raw (to name every bad item), so its schema is stated here.
_POINTS_SCHEMA = Schema(
    type=OpenAPIType.ARRAY,
    min_items=1,
    description="points, at most `max_points_per_request` (413 past it); all or nothing",
    items=Schema(
        type=OpenAPIType.OBJECT,
        required=["key"],
        additional_properties=False,
        properties={
            "key": Schema(
                type=OpenAPIType.NUMBER,
                minimum=-MAX_ABS_VALUE,
                maximum=MAX_ABS_VALUE,
                description=f"a finite number within ±{MAX_ABS_VALUE:.0e}",
            ),
            "ts": Schema(
                type=OpenAPIType.STRING,
                format=OpenAPIFormat.DATE_TIME,
                description="event time with an offset (years 0001..9999 in UTC, at most "
                f"{MAX_FUTURE} ahead); defaults to the arrival time",
            ),
        },
    ),
)


@dataclass
class _PushOperation(Operation):
    """The route's OpenAPI operation, with the raw body's schema."""

    def __post_init__(self) -> None:
        media = OpenAPIMediaType(schema=_POINTS_SCHEMA)
        self.request_body = RequestBody(content={MediaType.JSON: media}, required=True)


class PointsAccepted(msgspec.Struct):
    batch_id: str
    accepted: int
    message_id: str
    duplicate: bool = False


class BadPoints(ValueError):
    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors


_ITEMS = msgspec.json.Decoder(list[PointIn])
_ITEM = msgspec.json.Decoder(PointIn)
_ANY = msgspec.json.Decoder()


def _item_error(point: PointIn, now: datetime) -> str | None:
    if point.ts is None:
        return None
    try:
        point.ts.astimezone(UTC)
    except OverflowError:
        return f"ts {point.ts.isoformat()} is outside 0001-01-01..9999-12-31 in UTC"
    if point.ts > now + MAX_FUTURE:
        return f"ts {point.ts.isoformat()} is more than {MAX_FUTURE} ahead of the server clock"
    return None


def parse_points(body: bytes, *, now: datetime, limit: int) -> list[Point]:
    """The points of a push body, or BadPoints saying which items are wrong and why."""
    try:
        items = _ITEMS.decode(body)
    except msgspec.ValidationError:
        items = _slow_path(body, limit, now)  # raises with every bad item
    except msgspec.DecodeError as exc:
        raise BadPoints(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}", []) from exc
    if len(items) > limit:
        raise _too_many(len(items), limit)
    if not items:
        raise BadPoints(HTTPStatus.UNPROCESSABLE_ENTITY, "no points in the array", [])
    errors = [  # (inline loops: a push of 100 points spent ~30 us more in calls per item)
        {"index": i, "error": error}
        for i, item in enumerate(items)
        if item.ts is not None and (error := _item_error(item, now)) is not None
    ]
    if errors:
        raise _bad(errors, len(items))
    return [Point(key=i.key, ts=now if i.ts is None else i.ts.astimezone(UTC)) for i in items]


def _slow_path(body: bytes, limit: int, now: datetime) -> list[PointIn]:
    """Decode item by item, to name every bad one."""
    try:
        raw = _ANY.decode(body)
    except msgspec.ValidationError as exc:  # e.g. a number out of range, before any type
        detail = f"a point is invalid ({exc}); nothing was accepted"
        raise BadPoints(HTTPStatus.UNPROCESSABLE_ENTITY, detail, [_located(str(exc))]) from exc
    if not isinstance(raw, list):
        detail = f"expected a JSON array of points, got {type(raw).__name__}"
        raise BadPoints(HTTPStatus.UNPROCESSABLE_ENTITY, detail, [])
    if len(raw) > limit:
        raise _too_many(len(raw), limit)
    errors = []
    for i, item in enumerate(raw):
        try:
            error = _item_error(_ITEM.decode(msgspec.json.encode(item)), now)
        except msgspec.ValidationError as exc:
            error = str(exc)
        if error is not None:
            errors.append({"index": i, "error": error})
    raise _bad(errors, len(raw))


def _located(error: str) -> dict[str, Any]:
    """`{index, error}` from msgspec's "... - at `$[3].key`"."""
    found = re.search(r"at `\$\[(\d+)\]", error)
    return {"index": int(found[1]) if found else None, "error": error}


def _too_many(count: int, limit: int) -> BadPoints:
    detail = f"{count} points in one request; at most {limit}"
    return BadPoints(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, detail, [])


def _bad(errors: list[dict[str, Any]], total: int) -> BadPoints:
    detail = f"{len(errors)} of {total} points are invalid; nothing was accepted"
    return BadPoints(HTTPStatus.UNPROCESSABLE_ENTITY, detail, errors[:MAX_ERRORS])


@dataclass(frozen=True)
class Pushing:
    """What a push takes, from the app's state. (Not as Litestar dependencies: it
    resolves several as the tasks of a task group, and any in a cleanup group, on every
    request.)"""

    batches: BatchRegistry
    settings: Settings
    clock: Clock
    metrics: BatchMetrics
    pool: asyncpg.Pool


def pushing_of(state: State) -> Pushing:
    return Pushing(
        batches_of(state), settings_of(state), clock_of(state), batch_metrics_of(state),
        pool_of(state),
    )  # fmt: skip


@post(
    "/batches/{batch_id:str}/points",
    status_code=HTTPStatus.ACCEPTED,
    summary="Push points into a running batch (all or nothing)",
    operation_class=_PushOperation,
)
async def push_points(
    batch_id: FromPath[str],
    body: RawBody,
    request: Request[Any, Any, Any],
    idempotency_key: IdempotencyKey = None,
) -> PointsAccepted:
    existing_batch_id(batch_id)
    pushing = pushing_of(request.app.state)
    settings, batches, now = pushing.settings, pushing.batches, pushing.clock()
    try:
        points = parse_points(body, now=now, limit=settings.max_points_per_request)
    except BadPoints as bad:
        pushing.metrics.pushed.labels("rejected").inc()
        extra: dict[str, Any] = {"errors": bad.errors} if bad.errors else {}
        limit = settings.max_points_per_request
        raise ProblemError(bad.status, bad.detail, limit=limit, **extra) from None
    scope = f"points\x00{batch_id}"
    if idempotency_key:  # the same key with other points: 422 (gateway/frontdoor/idempotency.py)
        pushed = msgspec.json.decode(body)
        await idempotency.bind(
            batches.redis, settings.stream_prefix, scope, idempotency_key, pushed
        )
    message_id = id_from_key(scope, idempotency_key) if idempotency_key else new_id()
    message = RecordPoints(id=message_id, batch_id=batch_id, points=points, received_at=now)
    code, _entry = await batches.push(message, once=idempotency_key is not None)
    if code == 0:
        await _never_started(batches, pushing.pool, batch_id)
        raise ProblemError(
            HTTPStatus.CONFLICT,
            f"batch {batch_id!r} is not running; start it first "
            f"(PUT /batches/{batch_id} with rate 0 for a batch fed only by pushes)",
        )
    pushing.metrics.pushed.labels("accepted").inc(len(points) if code == 1 else 0)
    return PointsAccepted(batch_id, len(points), message_id, duplicate=code == 2)


async def _never_started(batches: BatchRegistry, pool: asyncpg.Pool, batch_id: str) -> None:
    """404 for a batch that no run ever had (Redis's record, or the runs projection)."""
    if await batches.known(batch_id):
        return
    if await sql.latest_run_id(pool=pool, batch_id=batch_id) is None:
        raise ProblemError(
            HTTPStatus.NOT_FOUND,
            f"no batch {batch_id!r}; start it first "
            f"(PUT /batches/{batch_id} with rate 0 for a batch fed only by pushes)",
        )
