"""The streams' gauges, from the shared overview (contracts/delivery/overview.py),
exported by one worker process at a time (contracts/runtime/exporter.py).

Per stream (label `stream`, the Redis key): `conveyor_stream_length`,
`conveyor_stream_dead_letters`. Per stream and consumer group (labels `stream`,
`group`): `conveyor_stream_lag`, `conveyor_stream_pending`,
`conveyor_stream_oldest_pending_seconds` (0 when nothing is pending),
`conveyor_stream_consumers`. And `conveyor_stream_claim_idle_seconds`, the claim time
the workers run with, which the alert on old pending entries compares against.

A group whose lag Redis cannot tell (XINFO GROUPS answers nil) has no lag sample in
that round rather than a made-up one.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from contracts.delivery.overview import StreamOverview, overview
from contracts.runtime.exporter import SoleExport
from contracts.runtime.settings import Settings

# Often enough for a dashboard; the overview is ~5 Redis calls a stream.
INTERVAL_S = 5.0
LOCK = "exporter.streams"


def stream_families(streams: Sequence[StreamOverview], claim_idle_s: float) -> list[Metric]:
    group_labels = ["stream", "group"]
    length = GaugeMetricFamily(
        "conveyor_stream_length", "Entries in the stream (XLEN).", labels=["stream"]
    )
    dead = GaugeMetricFamily(
        "conveyor_stream_dead_letters",
        "Entries in the stream's dead-letter stream <stream>.dlq (XLEN).",
        labels=["stream"],
    )
    lag = GaugeMetricFamily(
        "conveyor_stream_lag",
        "Entries not yet delivered to the group (XINFO GROUPS lag).",
        labels=group_labels,
    )
    pending = GaugeMetricFamily(
        "conveyor_stream_pending",
        "Entries delivered to the group and not yet acknowledged (XPENDING).",
        labels=group_labels,
    )
    oldest = GaugeMetricFamily(
        "conveyor_stream_oldest_pending_seconds",
        "Age of the group's oldest unacknowledged entry, from its id's time; 0: none pending.",
        labels=group_labels,
    )
    consumers = GaugeMetricFamily(
        "conveyor_stream_consumers", "Consumers in the group (XINFO GROUPS).", labels=group_labels
    )
    for stream in streams:
        length.add_metric([stream.key], stream.length)
        dead.add_metric([stream.key], stream.dead_letters)
        for group in stream.groups:
            labels = [stream.key, group.name]
            if group.lag is not None:
                lag.add_metric(labels, group.lag)
            pending.add_metric(labels, group.pending)
            oldest.add_metric(labels, (group.oldest_pending_ms or 0) / 1000)
            consumers.add_metric(labels, group.consumers)
    claim = GaugeMetricFamily(
        "conveyor_stream_claim_idle_seconds",
        "How long an entry sits unacknowledged before another consumer claims it.",
        value=claim_idle_s,
    )
    return [length, dead, lag, pending, oldest, consumers, claim]


def stream_exporter(redis: aioredis.Redis, settings: Settings, *, owner: str) -> SoleExport:
    """The streams' gauges of `settings.stream_prefix`, exported by whichever worker
    holds the lock `<prefix>exporter.streams`."""
    prefix = settings.stream_prefix

    async def read() -> list[Metric]:
        return stream_families(await overview(redis, prefix), settings.claim_idle_ms / 1000)

    return SoleExport(redis, f"{prefix}{LOCK}", read, owner=owner, interval_s=INTERVAL_S)
