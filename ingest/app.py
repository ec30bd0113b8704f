"""The ingest service: batch lifecycle, point sources, raw point storage.

`create_app(settings)` is its one composition root (see contracts/runtime/service.py).

- `ingest.commands` (StartBatch, StopBatch) -> ingest/lifecycle.py
- `ingest.points` (RecordPoints, pushed or generated) -> ingest/points.py: COPY into
  `points`, then PointsRecorded on `points`; many messages per transaction
- the producers of running batches, one per batch across all ingest processes
  -> ingest/supervisor.py, ingest/producers.py
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from contracts import streams
from contracts.runtime.batch_registry import BatchRegistry
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings
from ingest.lifecycle import Lifecycle
from ingest.metrics import IngestMetrics
from ingest.points import PointsRecorder
from ingest.supervisor import Supervisor

# Up to POINTS_MANY messages read together are stored in one transaction (one COPY,
# one idempotency insert, one XACK); POINTS_CONCURRENCY such reads in flight hide
# PostgreSQL's latency.
POINTS_CONCURRENCY = 2
POINTS_MANY = 50


def register(service: Service) -> None:
    """Subscribe the service's handlers; run the supervisor of its producers beside them."""
    settings, prefix = service.settings, service.settings.stream_prefix
    metrics = IngestMetrics(service.metrics.registry)
    registry = BatchRegistry(service.redis, prefix)
    supervisor = Supervisor(registry, settings, metrics)
    lifecycle = Lifecycle(service.redis, streams.BATCHES_EVENTS.prefixed(prefix).name, supervisor)
    recorder = PointsRecorder(
        service.redis, streams.POINTS.prefixed(prefix).name, settings.late_grace_s, metrics
    )
    delivery = service.delivery
    delivery.consume(
        streams.INGEST_COMMANDS,
        streams.INGEST,
        lifecycle.handle,
        after_commit=lifecycle.after_commit,
        on_dead_letter=lifecycle.on_dead_letter,  # a batch whose command fails, fails
    )
    delivery.consume(
        streams.INGEST_POINTS,
        streams.INGEST,
        recorder.handle,
        after_commit=recorder.after_commit,
        concurrency=POINTS_CONCURRENCY,
        many=POINTS_MANY,
        handle_many=recorder.handle_many,
        after_commit_many=recorder.after_commit_many,
    )
    service.background(supervisor)  # stopped before the broker: leases released at once


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    return build_service("ingest", settings, register)
