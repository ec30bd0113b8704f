"""What every consumer reports about its own work, on the service's own registry.

Per stream and group (labels `stream`, `group`), in every worker process (summed over
the processes in queries):

- `conveyor_messages_consumed_total`: entries taken, fresh or claimed;
- `conveyor_messages_total{outcome}`: how each ended: `applied`, `duplicate` (both
  acknowledged), `failed` (left pending for a retry), `dead_lettered`;
- `conveyor_messages_acked_total`: entries acknowledged (applied, duplicate, or moved
  to the dead-letter stream);
- `conveyor_message_duration_seconds`: handling time, taking an entry to its ack;
- `conveyor_reclaimed_total`, `conveyor_dead_letters_total`.

What the streams hold (length, lag, pending, oldest pending age, dead letters) is the
same for every process, so one process exports it: contracts/delivery/stream_gauges.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

OUTCOMES = ("applied", "duplicate", "failed", "dead_lettered")


@dataclass
class DeliveryMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        labels = ["stream", "group"]
        self.consumed = Counter(
            "conveyor_messages_consumed",
            "Stream entries taken by this process (fresh, or claimed from another consumer).",
            labels,
            registry=r,
        )
        self.messages = Counter(
            "conveyor_messages",
            "Stream entries handled, by outcome (applied, duplicate, failed, dead_lettered).",
            [*labels, "outcome"],
            registry=r,
        )
        self.acked = Counter(
            "conveyor_messages_acked",
            "Stream entries acknowledged (applied, duplicate, or dead-lettered).",
            labels,
            registry=r,
        )
        self.duration = Histogram(
            "conveyor_message_duration_seconds",
            "Time from taking an entry to acknowledging it (or giving up on this delivery).",
            labels,
            registry=r,
        )
        self.reclaimed = Counter(
            "conveyor_reclaimed",
            "Entries claimed from another consumer after they sat idle.",
            labels,
            registry=r,
        )
        self.dead_letters = Counter(
            "conveyor_dead_letters",
            "Entries moved to the dead-letter stream.",
            labels,
            registry=r,
        )

    def subscribe(self, stream: str, group: str) -> None:
        """Show every counter of (stream, group) at 0 from the start: an `increase()`
        cannot see the first increment of a series that only appears with it."""
        for counter in (self.consumed, self.acked, self.reclaimed, self.dead_letters):
            counter.labels(stream, group)
        for outcome in OUTCOMES:
            self.messages.labels(stream, group, outcome)
        self.duration.labels(stream, group)
