"""Batches over HTTP: start and stop here; pushes in points.py, reads in reads.py.

    POST   /batches                    start a batch (id in the body, or one is made)
    PUT    /batches/{batch_id}         start it (idempotent: running -> 200, as is)
    DELETE /batches/{batch_id}         stop it (also POST /batches/{batch_id}/stop)

A start is admitted by one atomic Redis script (contracts/runtime/batch_registry.py): at most
`max_batches` run at once across every gateway and ingest process; past that
the answer is 429 problem+json naming the limit and the running batches, with
Retry-After. A start of a running batch starts nothing: 200 with
`already_running: true`; a POST retried with the same `Idempotency-Key` answers
200 with what the first did (even after that run stopped) and starts nothing.
The admitted start and its StartBatch command are written in the same step, so
an admitted run is never lost. A stop removes the run from the admitted set at
once (its producer is fenced off on its next emission) and sends StopBatch; a
stopped batch can be started again (a new run).

Options are bounded by what the store can hold (gateway/frontdoor/fields.py): `low`,
`high` and `mean` within ±1e15, `stddev` in [0, 1e15], `rate` in [0, 20000];
the producer clamps its draws into ±1e15 (a normal draw can land anywhere), so
every point of a run fits the bounds pushed points are held to. An option out of
its bounds is a 422 problem+json whose `errors` name the field (`low` when
low > high); a body of the wrong shape (a wrong type, an unknown field) is 400.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal

import asyncpg
import msgspec
from litestar import Response, Router, delete, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from contracts.messages import StartBatch, StopBatch, id_from_key, new_id
from contracts.runtime.batch_registry import BatchRegistry
from contracts.runtime.settings import Settings
from gateway.batches import feed, points, reads, sql
from gateway.batches.deps import BatchMetrics, batch_dependencies
from gateway.batches.ids import BATCH_ID, BatchId, existing_batch_id, valid_batch_id
from gateway.frontdoor import idempotency
from gateway.frontdoor.fields import BOUNDS_AS_422, MAX_ABS_VALUE, Value
from gateway.frontdoor.idempotency import IdempotencyKey
from gateway.frontdoor.problems import ProblemError

__all__ = ["BATCH_ID", "router", "valid_batch_id"]

MAX_RATE = 20_000.0  # points a second from one run's producer
LIMIT_RETRY_AFTER_S = 5

Spread = Annotated[
    float, msgspec.Meta(ge=0, le=MAX_ABS_VALUE, description=f"within [0, {MAX_ABS_VALUE:.0e}]")
]


class StartOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the run's producer makes points (see StartBatch); rate 0: pushed points only."""

    rate: Annotated[float, msgspec.Meta(ge=0, le=MAX_RATE)] = 4.0
    distribution: Literal["uniform_int", "uniform", "normal"] = "uniform_int"
    low: Value = 0
    high: Value = 100
    mean: Value = 50
    stddev: Spread = 15


class StartRequest(StartOptions, kw_only=True, forbid_unknown_fields=True):
    batch_id: BatchId | None = None


class BatchRun(msgspec.Struct):
    batch_id: str
    run_id: str
    status: str
    already_running: bool = False
    already_stopped: bool = False


async def _start(
    batch_id: str,
    options: StartOptions,
    run_id: str,
    batches: BatchRegistry,
    settings: Settings,
    metrics: BatchMetrics,
    *,
    once: bool = False,
) -> Response[BatchRun]:
    if options.low > options.high:
        message = f"low ({options.low}) must not be greater than high ({options.high})"
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY, message, errors=[{"key": "low", "message": message}]
        )
    fields = msgspec.structs.asdict(options)
    fields.pop("batch_id", None)
    start = StartBatch(id=run_id, batch_id=batch_id, **fields)
    admission = await batches.admit(start, limit=settings.max_batches, once=once)
    location = {"Location": f"/batches/{batch_id}"}
    if admission.outcome == "replayed":  # the same Idempotency-Key: what that start did
        metrics.starts.labels("replayed").inc()
        still = admission.run_id == run_id
        body = BatchRun(batch_id, run_id, "running" if still else "stopped", still)
        return Response(body, status_code=HTTPStatus.OK, headers=location)
    if admission.outcome == "full":
        metrics.starts.labels("limited").inc()
        running = list(admission.running)
        raise ProblemError(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"At most {settings.max_batches} batches run at once; running now: "
            f"{', '.join(running)}. Stop one first.",
            title="Too many running batches",
            retry_after=LIMIT_RETRY_AFTER_S,
            limit=settings.max_batches,
            running=running,
        )
    assert admission.run_id is not None
    started = admission.outcome == "started"
    metrics.starts.labels("started" if started else "already_running").inc()
    body = BatchRun(batch_id, admission.run_id, "running", already_running=not started)
    status = HTTPStatus.CREATED if started else HTTPStatus.OK
    return Response(body, status_code=status, headers=location)


def _run_id(idempotency_key: str | None) -> str:
    return id_from_key("batches", idempotency_key) if idempotency_key else new_id()


@post("/batches", summary="Start a batch (201; 200 if it runs already; 429 past the limit)")
async def start_batch(
    data: JSONBody[StartRequest],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
    batch_metrics: NamedDependency[BatchMetrics],
    idempotency_key: IdempotencyKey = None,
) -> Response[BatchRun]:
    run_id = _run_id(idempotency_key)
    batch_id = valid_batch_id(data.batch_id) if data.batch_id else run_id[:12]
    if idempotency_key:  # the same key with another request: 422 (gateway/frontdoor/idempotency.py)
        await idempotency.bind(
            batches.redis, settings.stream_prefix, "batches", idempotency_key, data
        )
    return await _start(
        batch_id, data, run_id, batches, settings, batch_metrics, once=bool(idempotency_key)
    )


@put("/batches/{batch_id:str}", summary="Start this batch unless it runs (201, or 200 as is)")
async def put_batch(
    batch_id: FromPath[str],
    batches: NamedDependency[BatchRegistry],
    settings: NamedDependency[Settings],
    batch_metrics: NamedDependency[BatchMetrics],
    data: JSONBody[StartOptions | None] = None,
) -> Response[BatchRun]:
    options = data or StartOptions()
    return await _start(
        valid_batch_id(batch_id), options, new_id(), batches, settings, batch_metrics
    )


async def _stop(batch_id: str, batches: BatchRegistry, pool: asyncpg.Pool) -> Response[BatchRun]:
    existing_batch_id(batch_id)
    for _ in range(5):  # a concurrent stop/start may change the run between read and stop
        run_id = await batches.run_of(batch_id)
        if run_id is None:
            break
        if await batches.stop(StopBatch(id=new_id(), batch_id=batch_id, run_id=run_id)):
            return Response(BatchRun(batch_id, run_id, "stopped"), status_code=HTTPStatus.OK)
    last = await sql.latest_run_id(pool=pool, batch_id=batch_id)
    if last is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"no batch {batch_id!r}")
    return Response(BatchRun(batch_id, last, "stopped", already_stopped=True))


async def _stop_route(
    batch_id: FromPath[str],
    batches: NamedDependency[BatchRegistry],
    pool: NamedDependency[asyncpg.Pool],
) -> Response[BatchRun]:
    return await _stop(batch_id, batches, pool)


# One handler, two spellings: DELETE /batches/{id} and POST /batches/{id}/stop.
delete_batch = delete("/batches/{batch_id:str}", status_code=HTTPStatus.OK, summary="Stop a batch")(
    _stop_route
)
stop_batch = post(
    "/batches/{batch_id:str}/stop", status_code=HTTPStatus.OK, summary="Stop a batch"
)(_stop_route)


router = Router(
    path="/",
    tags=["batches"],
    dependencies=batch_dependencies(),
    exception_handlers=BOUNDS_AS_422,
    route_handlers=[
        start_batch,
        put_batch,
        delete_batch,
        stop_batch,
        points.push_points,
        *reads.ROUTES,
        feed.batch_events,
    ],
)
