"""How the aggregator's batch parts are put together (called from aggregator/app.py).

- `register_points(service)`: consume `points` (per-minute aggregates) and
  `batches.events` (the runs projection); run the minute closer beside them.
"""

from __future__ import annotations

from aggregator.minute_closer import MinuteCloser
from aggregator.points import PointsAggregator, project_batch_event
from contracts import streams
from contracts.runtime.service import Service

# Up to POINTS_MANY PointsRecorded read together are merged in one statement, in one
# transaction; POINTS_CONCURRENCY such reads in flight hide PostgreSQL's latency (their
# rows are locked in (batch_id, minute) order, so they do not deadlock).
POINTS_CONCURRENCY = 2
POINTS_MANY = 50


def register_points(service: Service) -> None:
    aggregator = PointsAggregator(service.metrics.registry)
    service.delivery.consume(
        streams.POINTS,
        streams.AGGREGATOR,
        aggregator.handle,
        concurrency=POINTS_CONCURRENCY,
        many=POINTS_MANY,
        handle_many=aggregator.handle_many,
    )
    service.delivery.consume(streams.BATCHES_EVENTS, streams.AGGREGATOR, project_batch_event)
    closer = MinuteCloser(service.settings, service.redis, service.pool, service.metrics.registry)
    service.background(closer)  # MinuteClosed (aggregator/minute_closer.py)
