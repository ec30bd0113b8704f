"""What every consumer reports, on the service's own registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class DeliveryMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "conveyor_messages_total",
            "Stream entries handled, by outcome (applied, duplicate, failed, dead_lettered).",
            ["stream", "group", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "conveyor_message_duration_seconds",
            "Time from taking an entry to acknowledging it (or giving up on this delivery).",
            ["stream", "group"],
            registry=r,
        )
        self.reclaimed = Counter(
            "conveyor_reclaimed_total",
            "Entries claimed from another consumer after they sat idle.",
            ["stream", "group"],
            registry=r,
        )
        self.dead_letters = Counter(
            "conveyor_dead_letters_total",
            "Entries moved to the dead-letter stream.",
            ["stream", "group"],
            registry=r,
        )
        self.length = Gauge(
            "conveyor_stream_length", "Entries in the stream (XLEN).", ["stream"], registry=r
        )
        self.pending = Gauge(
            "conveyor_stream_pending",
            "Entries delivered to the group and not yet acknowledged.",
            ["stream", "group"],
            registry=r,
        )
        self.lag = Gauge(
            "conveyor_stream_lag",
            "Entries in the stream not yet delivered to the group (XINFO GROUPS lag).",
            ["stream", "group"],
            registry=r,
        )
