"""What the batch routes get besides the app-level dependencies (gateway.resources).

By parameter name: `batches` (the BatchRegistry: admission, stop, push;
contracts/runtime/batch_registry.py), `clock` (a function giving the current UTC time; tests set
`app.state.clock` to a fixed one), `batch_metrics` (counters on the app's registry).

Redis or PostgreSQL unreachable is a 503 problem+json with Retry-After, as on
every route (gateway/frontdoor/problems.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import cast

from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client import CollectorRegistry, Counter

from contracts.messages import utcnow
from contracts.runtime.batch_registry import BatchRegistry
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
