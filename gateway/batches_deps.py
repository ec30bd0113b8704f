"""What the batch routes get besides the app-level dependencies (gateway.resources).

By parameter name: `batches` (the BatchRegistry: admission, stop, push;
contracts/runtime/batch_registry.py), `clock` (a function giving the current UTC time; tests set
`app.state.clock` to a fixed one), `batch_metrics` (counters on the app's registry).

`outage_handlers()`: Redis or PostgreSQL unreachable -> 503 problem+json with
Retry-After (not a 500), for the batch routes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any, cast

import asyncpg
from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ExceptionHandlersMap
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.messages import utcnow
from contracts.runtime.batch_registry import BatchRegistry
from gateway.problems import problem
from gateway.resources import metrics_registry_of, redis_of, settings_of

Clock = Callable[[], datetime]


class BatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.starts = Counter(
            "conveyor_batch_starts_total",
            "Batch start requests, by outcome (started, already_running, replayed, limited).",
            ["outcome"],
            registry=registry,
        )
        self.pushed = Counter(
            "conveyor_points_pushed_total",
            "Points pushed over HTTP, by outcome (accepted, rejected).",
            ["outcome"],
            registry=registry,
        )


def batches_of(state: State) -> BatchRegistry:
    redis = redis_of(state)
    registry = state.get("batch_registry")
    if registry is None or registry.redis is not redis:  # one per Redis client (per lifespan)
        registry = BatchRegistry(redis, settings_of(state).stream_prefix)
        state.batch_registry = registry
    return cast(BatchRegistry, registry)


def clock_of(state: State) -> Clock:
    return cast(Clock, state.get("clock") or utcnow)


def batch_metrics_of(state: State) -> BatchMetrics:
    metrics = state.get("batch_metrics")
    if metrics is None:
        metrics = state.batch_metrics = BatchMetrics(metrics_registry_of(state))
    return cast(BatchMetrics, metrics)


def batch_dependencies() -> dict[str, Provide]:
    return {
        "batches": Provide(batches_of, sync_to_thread=False),
        "clock": Provide(clock_of, sync_to_thread=False),
        "batch_metrics": Provide(batch_metrics_of, sync_to_thread=False),
    }


def _unavailable(what: str) -> Any:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        detail = f"{what} is unreachable ({type(exc).__name__}: {exc}); try again shortly"
        headers = {"Retry-After": "1"}
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE, None, detail, instance=request.url.path, headers=headers
        )

    return handler


def outage_handlers() -> ExceptionHandlersMap:
    return {
        RedisConnectionError: _unavailable("Redis"),
        RedisTimeoutError: _unavailable("Redis"),
        asyncpg.PostgresConnectionError: _unavailable("PostgreSQL"),
        asyncpg.CannotConnectNowError: _unavailable("PostgreSQL"),
        OSError: _unavailable("Redis or PostgreSQL"),  # refused, timed out (asyncpg connect)
    }
